// Everything that knows @matrixai/quic's internals lives in this file. The
// package is pinned to an exact version (2.0.9); `assertLibraryShape` fails
// loudly at start-up if an upgrade removes what the work-around below needs.
//
// THE DEFECT (@matrixai/quic 2.0.9, dist/QUICConnection.js):
// A server connection is created by QUICServer.acceptConnection and then
// `start()`ed; `start()` feeds the client's packets to `recv()` and resolves
// once the handshake is done. `recv()` calls `processStreams()` as soon as the
// handshake completes, inside the very `recv()` that completes it. But the
// connection only counts as running (`this[startStop.running]`, set by the
// @matrixai/async-init StartStop wrapper) after `start()` has returned, a few
// microtasks later. `processStreams()` treats "not running" as "stopping":
//
//     if (this[startStop.running] === false || this[startStop.status] === 'stopping') {
//         // We should reject new connections when stopping
//         this.conn.streamShutdown(streamId, Shutdown.Write, ...);
//         this.conn.streamShutdown(streamId, Shutdown.Read, ...);
//
// so every stream whose data arrives in the datagram that completes the
// handshake is reset (RESET_STREAM + STOP_SENDING). quic-go sends its first
// 1-RTT packet (the first query) coalesced with the handshake-completing packet:
// without the fix below, the first query failed on 200 of 200 new connections
// here. Streams in later datagrams were fine: by then `start()` had returned.
//
// THE FIX (no change to node_modules): until the connection has started, we
// defer `processStreams()` instead of letting it reject: each server connection
// gets an own-property `processStreams` that only records that streams are
// waiting, and on EventQUICConnectionStarted (dispatched right after `running`
// becomes true) we remove it and run the library's `processStreams()` once,
// then `send()`. quiche keeps the streams' data buffered meanwhile, so nothing
// is lost. We reach each connection before its first `recv()` through
// QUICServer's protected `handleEventQUICConnection`, which sees the
// connection's EventQUICConnectionStart (dispatched before `start()` runs).
//
// The same hook keeps peers from crashing the process through the library:
// Evented objects re-throw any listener error (EventError) as an uncaught
// exception unless someone listens for EventError, and QUICSocket's async UDP
// 'message' handler lets rejections escape as unhandled. We listen for
// EventError on the socket, server, every connection and every stream, catch
// the message handler's rejections, and listen for the UDP socket's 'error'.
// One path remains out of reach: a connection's timers (idle/loss, keep-alive)
// call `send()`, and if quiche's native send itself failed the rejection would
// be unhandled. That is a local fault, not something a peer can cause.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { QUICConnection, QUICServer, QUICSocket, events } from '@matrixai/quic';
import type { QUICServerCrypto, QUICStream } from '@matrixai/quic';
import type { Clock } from '../../time/clock.js';
import { deadline, SourceGate, type ConnectionLimits, type RefusalLog } from '../fairness.js';
import { DoqErrorCode } from './framing.js';

/** The internal members of QUICConnection the work-around uses (see THE FIX). */
type ConnectionInternals = {
  processStreams(): void;
  send(): Promise<void>;
};

/** Listens for the library's EventError under its name (the class is in @matrixai/events, not a dependency of ours). */
const EVENT_ERROR = 'EventError';

/** Fails loudly if this library version lacks what the work-around relies on. */
export function assertLibraryShape(): void {
  const connection = QUICConnection.prototype as unknown as Partial<ConnectionInternals>;
  const server = QUICServer.prototype as unknown as { acceptConnection?: unknown };
  if (
    typeof connection.processStreams !== 'function' ||
    typeof connection.send !== 'function' ||
    typeof server.acceptConnection !== 'function' ||
    !String(connection.processStreams).includes('running')
  ) {
    throw new Error(
      '@matrixai/quic changed: QUICConnection.processStreams/send or QUICServer.acceptConnection are not what src/servers/doq/quic.ts works around; re-check the defect described there',
    );
  }
}

/**
 * Retry-token signing for QUICServer (it sends a stateless Retry before every
 * new connection): HMAC-SHA256 under a key made at start-up. `sign` must return
 * an exact ArrayBuffer: the library slices the new connection ID out of it.
 */
export function hmacCrypto(): QUICServerCrypto {
  const key = toArrayBuffer(randomBytes(32));
  const mac = (k: ArrayBuffer, data: ArrayBuffer) => createHmac('sha256', new Uint8Array(k)).update(bytes(data)).digest();
  return {
    key,
    ops: {
      sign: async (k, data) => toArrayBuffer(mac(k, data)),
      verify: async (k, data, sig) => {
        const expected = mac(k, data);
        const given = bytes(sig);
        return given.byteLength === expected.byteLength && timingSafeEqual(expected, given);
      },
    },
  };
}

/**
 * A logger for the library that discards its records: it logs at info on every
 * stream and connection, and everything we act on reaches us through events.
 */
export const silentLibraryLogger = (() => {
  const logger = { debug() {}, info() {}, warn() {}, error() {}, getChild: () => logger };
  return logger as unknown as ConstructorParameters<typeof QUICSocket>[0]['logger'];
})();

/** A QUICSocket whose UDP message handler cannot leak a rejection. */
export class GuardedSocket extends QUICSocket {
  constructor(private readonly onError: (error: unknown) => void) {
    super({ logger: silentLibraryLogger });
    const route = this.handleSocketMessage;
    if (typeof route !== 'function') throw new Error('@matrixai/quic changed: QUICSocket.handleSocketMessage is gone');
    this.handleSocketMessage = async (data, remoteInfo) => {
      try {
        await route(data, remoteInfo);
      } catch (error) {
        onError(error);
      }
    };
    this.addEventListener(EVENT_ERROR, (evt: Event) => onError((evt as CustomEvent).detail));
  }

  override async start(options?: Parameters<QUICSocket['start']>[0]): Promise<void> {
    await super.start(options);
    // The library listens for the UDP socket's 'error' only while binding; an
    // 'error' event with no listener would be thrown by Node.
    this.socket.on('error', this.onError);
  }
}

export type DoqQuicServerOptions = ConstructorParameters<typeof QUICServer>[0] & {
  socket: GuardedSocket;
  /**
   * Fair admission (fairness.ts): a connection the gate refuses is dropped before the handshake (its packets get no
   * answer), or, if the gate filled up while its handshake ran, closed as soon as it starts.
   */
  limits: ConnectionLimits;
  /** Refusals are counted and logged here. */
  refusals: RefusalLog;
  /**
   * A connection that opens no query stream for this long (the first within `firstRequestMs`) is closed, whatever
   * else it sends: QUIC PINGs keep a connection from QUIC's own idle timeout, not from this.
   */
  firstRequestMs: number;
  idleMs: number;
  /** Times firstRequestMs and idleMs. */
  clock: Clock;
  /** Called for every stream the peer opens, with the stream's EventError already handled. */
  onStream: (connection: QUICConnection, stream: QUICStream) => void;
  onError: (error: unknown, where: string) => void;
};

/**
 * QUICServer with the stream work-around, a connection limit, and every
 * library error routed to `onError` instead of the process.
 */
export class DoqQuicServer extends QUICServer {
  private readonly gate: SourceGate;
  private readonly refusals: RefusalLog;

  constructor({ limits, refusals, firstRequestMs, idleMs, clock, onStream, onError, ...options }: DoqQuicServerOptions) {
    super(options);
    this.gate = new SourceGate(limits);
    this.refusals = refusals;
    const live = new WeakSet<QUICConnection>();
    /** Closes a connection quietly (DOQ_NO_ERROR): refused, or silent past its deadline. */
    const shut = (connection: QUICConnection) =>
      void connection.stop({ isApp: true, errorCode: DoqErrorCode.NoError, force: true }).catch((error) => onError(error, 'connection stop'));
    this.addEventListener(EVENT_ERROR, (evt: Event) => onError((evt as CustomEvent).detail, 'server'));
    const forward = this.handleEventQUICConnection;
    if (typeof forward !== 'function') throw new Error('@matrixai/quic changed: QUICServer.handleEventQUICConnection is gone');
    this.handleEventQUICConnection = (evt) => {
      const connection = evt.target as QUICConnection;
      if (evt.detail instanceof events.EventQUICConnectionStart && !live.has(connection)) {
        live.add(connection);
        const release = this.gate.admit(connection.remoteHost);
        if (typeof release === 'string') {
          this.refusals.note(release, connection.remoteHost);
          forward(evt);
          queueMicrotask(() => shut(connection));
          return;
        }
        // Re-armed by each new query stream: only queries keep a connection, not PINGs or trickled bytes.
        let disarm = deadline(firstRequestMs, () => shut(connection), clock);
        void connection.closedP.then(() => {
          disarm();
          release();
        });
        connection.addEventListener(EVENT_ERROR, (e: Event) => onError((e as CustomEvent).detail, 'connection'));
        deferStreamsUntilStarted(connection, onError);
        connection.addEventListener(events.EventQUICConnectionStream.name, (e: Event) => {
          const stream = (e as events.EventQUICConnectionStream).detail;
          disarm();
          disarm = deadline(idleMs, () => shut(connection), clock);
          stream.addEventListener(EVENT_ERROR, (se: Event) => onError((se as CustomEvent).detail, 'stream'));
          // This event fires inside processStreams(), before it calls stream.read();
          // a stream cancelled synchronously here makes that read() throw. So hand
          // the stream over only after processStreams() has returned.
          queueMicrotask(() => onStream(connection, stream));
        });
      }
      forward(evt);
    };
  }

  /**
   * Internal QUICServer method (absent from its .d.ts), called by the socket for
   * every packet of an unknown connection. When the gate refuses its source we drop the packet:
   * the client sees no answer and times out, and the server spends nothing.
   */
  async acceptConnection(...args: unknown[]): Promise<unknown> {
    const host = (args[0] as { host?: string } | undefined)?.host ?? '';
    const why = this.gate.refusal(host);
    if (why !== undefined) {
      this.refusals.note(why, host);
      return undefined;
    }
    const accept = (QUICServer.prototype as unknown as { acceptConnection: (...a: unknown[]) => Promise<unknown> })
      .acceptConnection;
    return accept.apply(this, args);
  }
}

/** THE FIX: see the comment at the top of this file. */
function deferStreamsUntilStarted(connection: QUICConnection, onError: (error: unknown, where: string) => void): void {
  const internals = connection as unknown as ConnectionInternals;
  const processStreams = internals.processStreams;
  let deferred = false;
  internals.processStreams = () => {
    deferred = true;
  };
  connection.addEventListener(
    events.EventQUICConnectionStarted.name,
    () => {
      delete (internals as Partial<ConnectionInternals>).processStreams; // back to the prototype's
      if (!deferred) return;
      try {
        processStreams.call(connection);
        internals.send().catch((error) => onError(error, 'connection send'));
      } catch (error) {
        onError(error, 'connection processStreams');
      }
    },
    { once: true },
  );
}

function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

function toArrayBuffer(data: Uint8Array): ArrayBuffer {
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}
