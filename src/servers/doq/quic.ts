// Everything that knows @matrixai/quic's internals lives in this file and packets.ts. The
// package is pinned to an exact version (2.0.9); `assertLibraryShape` fails
// loudly at start-up if an upgrade removes what the replacement below needs.
//
// STREAMS: lexa serves a connection's streams itself (streams.ts, directly on
// quiche's streamRecv/streamSend) instead of through the library's QUICStream
// (web streams, promises, events and errors per stream: the largest cost per
// DoQ query in the profile, see docs/performance.md). Each server connection
// gets an own-property `processStreams`, the method the library's `recv()`
// calls after feeding quiche a datagram once the handshake is done, and just
// before its `send()`; ours reads, answers and writes there, so the reply
// leaves in the same turn. No QUICStream is ever created for a peer's stream.
//
// THE DEFECT this also removes (@matrixai/quic 2.0.9, dist/QUICConnection.js):
// the library's `processStreams()` treats a connection that has not finished
// `start()` as stopping and resets every stream whose data arrives in the
// datagram that completes the handshake (RESET_STREAM + STOP_SENDING); quic-go
// sends its first query coalesced with that datagram, so the first query
// failed on 200 of 200 new connections. Our `processStreams` serves those
// streams like any other: the connection is established (recv() calls it only
// then), and quiche has the bytes.
//
// The same hook keeps peers from crashing the process through the library:
// Evented objects re-throw any listener error (EventError) as an uncaught
// exception unless someone listens for EventError, and QUICSocket's async UDP
// 'message' handler lets rejections escape as unhandled. We listen for
// EventError on the socket, server and every connection, catch the message
// handler's rejections, and listen for the UDP socket's 'error'; the
// connection timer's sends (packets.ts) catch their failures too.
//
// PACKETS (packets.ts): the per-datagram work of a connection without the
// library's lock, timer objects and send events; here, the socket's routing of
// 1-RTT datagrams and its direct sends. Where native/udp_batch.c is built, the
// socket's datagrams come and go in batches (batch-socket.ts): the library
// binds its dgram socket on an ephemeral port of the same address, and start()
// swaps it for the batch socket bound where asked; the library's own sends
// (handshake, Retry, version negotiation: `send_`) are routed to the queue.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { QUICConnection, QUICServer, QUICSocket, events, native } from '@matrixai/quic';
import type { QUICServerCrypto } from '@matrixai/quic';
import type { Clock } from '../../time/clock.js';
import { countDroppedDatagram } from '../../metrics/datagrams.js';
import { ADDRESS_BYTES, ResponseRateLimiter, writeAddress } from '../dns/rate-limit.js';
import { deadline, SourceGate, type ConnectionLimits, type RefusalLog } from '../fairness.js';
import { BACKLOG_LIMITS, SourceBacklog, type BacklogRefusal } from './backlog.js';
import { classifyDatagram, SERVER_CONNECTION_ID_LENGTH, type DropReason } from './datagram.js';
import { DoqErrorCode } from './framing.js';
import { assertServerConfig, hasLeanPath, internalsOf, leanPacketPath, type ConnectionInternals } from './packets.js';
import { QueryStreams, type Answer } from './streams.js';
import { QuicBatchSocket, quicBatchAddon } from './batch-socket.js';

/** RFC 9000 §17: the header form bit (long = 1) and the fixed bit (always 1) of a packet's first byte. */
const HEADER_FORM_FIXED_BITS = 0xc0;
const SHORT_HEADER = 0x40;
/** QUICServer.acceptConnection gives every server connection an ID of quiche's maximum length. */
const SERVER_CONN_ID_LENGTH = native.quiche.MAX_CONN_ID_LEN;

/**
 * The default of server.dns.quic.limits.handshakes_per_second (config/schema.ts gives the reason there too).
 * Initials for no connection one source may have handled a second (each costs a signed Retry, or a new connection
 * and its handshake): 128 new connections a second with their Retry round trip, more than any resolver opens to
 * one server, while a flood of Initials from one source costs lexa at most 256 Retries a second. Beyond it they are
 * dropped unread; a real client's Initial is resent by QUIC's loss recovery.
 */
export const HANDSHAKES_PER_SECOND = 256;
/**
 * Sources whose handshake budget is tracked at most (the rate limiter's bound: the oldest is forgotten beyond it,
 * which only ever grants a forgotten source what a new one gets): 4096 entries, well under a megabyte.
 */
const HANDSHAKE_SOURCES = 4096;

/** Why a datagram never reached the library: the `reason` of lexa_doq_datagrams_dropped_total. */
type DatagramDrop = DropReason | BacklogRefusal | 'handshake-rate';

/** Listens for the library's EventError under its name (the class is in @matrixai/events, not a dependency of ours). */
const EVENT_ERROR = 'EventError';

/** Fails loudly if this library version lacks what STREAMS and PACKETS (packets.ts) rely on; internalsOf checks each connection. */
export function assertLibraryShape(): void {
  // recv() itself is wrapped by a decorator (its source is not the library's), so check the method it calls: the
  // one place the library turns quiche's readable streams into QUICStreams.
  const connection = QUICConnection.prototype as unknown as Partial<ConnectionInternals>;
  const server = QUICServer.prototype as unknown as { acceptConnection?: unknown };
  if (
    typeof connection.processStreams !== 'function' ||
    typeof connection.send !== 'function' ||
    typeof server.acceptConnection !== 'function' ||
    !String(connection.processStreams).includes('this.conn.readable()')
  ) {
    throw new Error(
      '@matrixai/quic changed: QUICConnection.processStreams/send or QUICServer.acceptConnection are not what src/servers/doq/quic.ts replaces (STREAMS); re-check it',
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

/** How the socket's datagrams move: batched through native/udp_batch.c, or Node's dgram one by one. */
export type SocketIo = 'recvmmsg' | 'dgram';

export interface GuardedSocketOptions {
  /** false forces dgram; by default the batch addon is used where it is built. */
  readonly batch?: boolean;
  /** Where to load the addon from (tests point it at a missing file to prove the fallback). */
  readonly addonPath?: string;
  /** SO_RCVBUF, bytes (server.dns.udp_receive_buffer, as plain UDP's); absent or 0: the kernel's default. */
  readonly receiveBuffer?: number;
  /** IPv6 sources are told apart by this prefix length (ConnectionLimits.ipv6SourcePrefix); 64 by default. */
  readonly ipv6SourcePrefix?: number;
  /** Initials for no connection a source may have handled a second; HANDSHAKES_PER_SECOND by default. */
  readonly handshakesPerSecond?: number;
}

/** A datagram waiting for its turn (SourceBacklog). */
interface Waiting {
  readonly data: Buffer;
  readonly host: string;
  readonly port: number;
}

/** A QUICSocket whose UDP message handler cannot leak a rejection. */
export class GuardedSocket extends QUICSocket {
  private readonly serverConnections: Map<string, QUICConnection>;
  private batched: QuicBatchSocket | undefined;
  /** The library's handler for datagrams that are not 1-RTT for a known connection (handshakes, new connections). */
  private readonly libraryRoute: QUICSocket['handleSocketMessage'];
  /** Set by start(): how datagrams move, and why not batched when they are not. */
  io: SocketIo = 'dgram';
  ioFallback: string | undefined;
  /** Set by start(): SO_RCVBUF as the kernel granted it (Linux reports twice what was set). */
  receiveBuffer: number | undefined;
  /** Datagrams waiting for a turn, per source (see receive). */
  private readonly backlog: SourceBacklog<Waiting>;
  /** Initials for no connection, per source (HANDSHAKES_PER_SECOND): plain UDP's rate limiter, reused. */
  private readonly handshakes: ResponseRateLimiter;
  /** The last source the handshake budget was asked about, in the limiter's address form. */
  private readonly budgetSource = new Uint8Array(ADDRESS_BYTES);
  private budgetHost = '';

  constructor(
    private readonly onError: (error: unknown) => void,
    private readonly options: GuardedSocketOptions = {},
  ) {
    super({ logger: silentLibraryLogger });
    // The library's map of server connections by hex connection ID (QUICConnectionMap, internal).
    const connections = (this as unknown as { connectionMap?: { serverConnections?: unknown } }).connectionMap?.serverConnections;
    if (!(connections instanceof Map) || SERVER_CONN_ID_LENGTH !== SERVER_CONNECTION_ID_LENGTH) {
      throw new Error('@matrixai/quic changed: QUICSocket.connectionMap.serverConnections is gone, or quiche.MAX_CONN_ID_LEN is not datagram.ts\'s 20');
    }
    this.serverConnections = connections as Map<string, QUICConnection>;
    const route = this.handleSocketMessage;
    if (typeof route !== 'function') throw new Error('@matrixai/quic changed: QUICSocket.handleSocketMessage is gone');
    this.libraryRoute = route;
    // dgram's datagrams take the same way as the batch socket's (receive): checked, budgeted, waiting per source.
    this.handleSocketMessage = async (data, remoteInfo) => this.receive(data, remoteInfo.address, remoteInfo.port);
    this.addEventListener(EVENT_ERROR, (evt: Event) => onError((evt as CustomEvent).detail));
    const ipv6SourcePrefix = options.ipv6SourcePrefix ?? 64;
    this.backlog = new SourceBacklog({ ...BACKLOG_LIMITS, ipv6SourcePrefix });
    this.handshakes = new ResponseRateLimiter({
      responsesPerSecond: options.handshakesPerSecond ?? HANDSHAKES_PER_SECOND,
      slip: 0,
      // The shortest the limiter allows: a source that flooded gets Initials through again within 1–2 s of stopping.
      windowMs: 1_000,
      ipv4Prefix: 32,
      ipv6Prefix: ipv6SourcePrefix,
      maxPrefixes: HANDSHAKE_SOURCES,
      exempt: [],
    });
  }

  /**
   * PACKETS (packets.ts): the connection a 1-RTT datagram (RFC 9000 §17.3: short header) is for, found from its destination
   * connection ID without the library's header parse (quiche's Header.fromSlice builds an object of buffers per
   * datagram: ~10 µs here). Anything else (long headers, unknown IDs, not QUIC) takes the library's route.
   */
  private shortHeaderConnection(data: Buffer): Pick<ConnectionInternals, 'recv'> | undefined {
    if (((data[0] ?? 0) & HEADER_FORM_FIXED_BITS) !== SHORT_HEADER || data.byteLength <= 1 + SERVER_CONN_ID_LENGTH) return undefined;
    const connection = this.serverConnections.get(data.toString('hex', 1, 1 + SERVER_CONN_ID_LENGTH));
    return connection as unknown as Pick<ConnectionInternals, 'recv'> | undefined;
  }

  /**
   * Sends one datagram straight on the UDP socket (PACKETS, packets.ts): no event, promise or address check per datagram. A
   * failed send is a lost datagram, which QUIC's loss recovery repairs: it is reported, never thrown.
   */
  sendDatagram(data: Uint8Array, length: number, port: number, host: string): void {
    if (this.batched !== undefined) return this.batched.send(data, length, port, host);
    try {
      this.socket.send(data, 0, length, port, host, this.afterSend);
    } catch (error) {
      this.onError(error); // the socket is closed
    }
  }

  private readonly afterSend = (error: Error | null) => {
    if (error) this.onError(error);
  };

  /**
   * The library's own sends (handshake datagrams, Retry, version negotiation): on the batch socket, queued like the
   * connections' datagrams; a failure is a lost datagram, reported, never thrown.
   */
  override async send_(...params: Parameters<QUICSocket['send_']> | [msg: Uint8Array, port: number, address: string]): Promise<number> {
    if (this.batched === undefined) return super.send_(...(params as Parameters<QUICSocket['send_']>));
    // Both of dgram's forms, as the library calls both: (msg, port, address) and (msg, offset, length, port, address).
    const [msg, offset, length, port, host] = params.length === 3 ? [params[0], 0, undefined, params[1], params[2]] : params;
    const data = typeof msg === 'string' ? Buffer.from(msg) : msg.subarray(offset);
    this.batched.send(data, length ?? data.byteLength, port, host);
    return length ?? data.byteLength;
  }

  override async start(options: Parameters<QUICSocket['start']>[0] = {}): Promise<void> {
    const { host = '::', port = 0 } = options;
    const addon = this.options.batch === false ? new Error('batching turned off') : quicBatchAddon(this.options.addonPath);
    let batched: QuicBatchSocket | undefined;
    if (addon instanceof Error) this.ioFallback = addon.message.split('\n')[0];
    else if (!isIP(host)) this.ioFallback = `${host} is not an IP address`;
    else batched = new QuicBatchSocket(addon, host, port, this.receive, this.onError, this.options.receiveBuffer ?? 0); // throws as a bind does
    try {
      // With the batch socket bound, the library's dgram socket takes an ephemeral port on the same address, so
      // that everything the library sets up at start (address, type, events) is as it expects.
      await super.start(batched === undefined ? options : { ...options, port: 0 });
    } catch (error) {
      batched?.close();
      throw error;
    }
    // The library listens for the UDP socket's 'error' only while binding; an
    // 'error' event with no listener would be thrown by Node.
    this.socket.on('error', this.onError);
    if (batched === undefined) {
      // dgram sets SO_RCVBUF only once bound, and cannot exceed net.core.rmem_max (no SO_RCVBUFFORCE).
      if ((this.options.receiveBuffer ?? 0) > 0) this.socket.setRecvBufferSize(this.options.receiveBuffer!);
      this.receiveBuffer = this.socket.getRecvBufferSize();
      // What waits for a turn is dropped with the socket, as the batch socket's is below.
      const close = this.socketClose;
      this.socketClose = async () => {
        this.backlog.clear();
        return close();
      };
      return;
    }
    this.receiveBuffer = batched.receiveBuffer;
    // The swap: the library's dgram socket is closed, and what the library does with it from now on (send, close,
    // its port) goes to the batch socket.
    this.socket.off('message', this.handleSocketMessage);
    this.socket.close();
    this.batched = batched;
    this.io = 'recvmmsg';
    this._port = batched.port as unknown as QUICSocket['_port'];
    this.socketSend = async (...params: unknown[]) => this.send_(...(params as Parameters<QUICSocket['send_']>));
    this.socketClose = async () => {
      batched.close();
      this.backlog.clear();
    };
  }

  /**
   * Every datagram of the socket (the batch socket's, and dgram's through handleSocketMessage), in the order the
   * kernel delivered them. Never throws.
   *
   * ORDER. dgram runs each datagram's callback and then every microtask it queued before the next datagram; a batch
   * has no such pause between its datagrams. A connection's 1-RTT datagram once packets.ts has made it lean is done
   * with when recv() returns, so those go straight through. Anything else (a handshake, a new connection, a
   * connection that has not started) may continue in microtasks that the next datagram depends on: the library's
   * acceptConnection registers a new connection only after awaiting its token checks, so a second datagram of the
   * same handshake in the same batch (a ClientHello can span two Initial datagrams) would be routed before the
   * connection exists. Routed straight through, a batch lost new connections' first queries under the bench load,
   * and in test/doq/batch.test.ts. So such a datagram waits for the next turn of the event loop (setImmediate: after
   * every microtask), and so does everything its source sends after it, in order.
   *
   * FAIRNESS. What waits is bounded per source (backlog.ts: 1024 in all, 256 a source, a quarter reserved), and each
   * turn routes one such datagram of every source waiting, so a source flooding junk or Initials holds at most its
   * own share and delays another source's handshake by one turn. Before anything waits, datagrams the library
   * would drop anyway are dropped here (datagram.ts), and Initials for no connection are held to
   * HANDSHAKES_PER_SECOND per source. Each drop is counted in lexa_doq_datagrams_dropped_total, never logged: a
   * flood must not become a flood of log lines.
   */
  private readonly receive = (data: Buffer, host: string, port: number): void => {
    const connection = this.shortHeaderConnection(data);
    if (connection !== undefined && hasLeanPath(connection) && !this.backlog.holds(host)) {
      connection.recv(data, { host, port }).catch(this.onError);
      return;
    }
    const verdict = connection !== undefined ? 'connection' : classifyDatagram(data, this.knownConnection);
    if (verdict !== 'connection' && verdict !== 'new') return this.drop(verdict);
    if (verdict === 'new' && !this.handshakeAllowed(host)) return this.drop('handshake-rate');
    const refused = this.backlog.push(host, { data, host, port });
    if (refused !== undefined) return this.drop(refused);
    if (!this.turnScheduled) {
      this.turnScheduled = true;
      setImmediate(this.turn);
    }
  };

  private turnScheduled = false;

  /** One turn of the backlog (see receive); another follows while anything waits. */
  private readonly turn = (): void => {
    this.turnScheduled = false;
    this.backlog.turn(this.routeWaiting);
    if (this.backlog.waiting > 0) {
      this.turnScheduled = true;
      setImmediate(this.turn);
    }
  };

  private readonly routeWaiting = (d: Waiting): boolean => this.routeDatagram(d.data, d.host, d.port);

  private drop(reason: DatagramDrop): void {
    countDroppedDatagram(reason);
  }

  /**
   * Whether a destination connection ID (a view into a received Buffer) is one of this server's connections. An ID
   * of another length cannot be (a new client's Initial has its own, 8 bytes from quic-go): no hex string is made.
   */
  private readonly knownConnection = (id: Uint8Array): boolean =>
    id.byteLength === SERVER_CONNECTION_ID_LENGTH && this.serverConnections.has(Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex'));

  /** Debits one Initial from the budget of `host`'s source; false when it has none left this second. */
  private handshakeAllowed(host: string): boolean {
    if (host !== this.budgetHost) {
      if (!writeAddress(host, this.budgetSource, 0)) {
        this.budgetHost = '';
        return true; // not an address: nothing to count it against
      }
      this.budgetHost = host;
    }
    return this.handshakes.check(this.budgetSource, 0) === 'send';
  }

  /** Routes one datagram; true when it was a lean connection's (done with on return), false when it may go on later. */
  private routeDatagram(data: Buffer, host: string, port: number): boolean {
    const connection = this.shortHeaderConnection(data);
    if (connection !== undefined) {
      connection.recv(data, { host, port }).catch(this.onError);
      return hasLeanPath(connection);
    }
    this.libraryRoute(data, { address: host, port, family: host.includes(':') ? 'IPv6' : 'IPv4', size: data.byteLength }).catch(this.onError);
    return false;
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
  /** Answers one complete query (streams.ts); called synchronously while the library is inside recv(). */
  answer: Answer;
  /** A stream whose query has not fully arrived by then is reset. */
  queryReadMs: number;
  /** The peer broke RFC 9250 on `connection`; called outside the library's recv(), so the connection may stop. */
  onProtocolError: (connection: QUICConnection, why: string) => void;
  onError: (error: unknown, where: string) => void;
};

/**
 * QUICServer with lexa's stream path (STREAMS above), a connection limit, and every
 * library error routed to `onError` instead of the process.
 */
export class DoqQuicServer extends QUICServer {
  private readonly gate: SourceGate;
  private readonly refusals: RefusalLog;

  constructor({ limits, refusals, firstRequestMs, idleMs, clock, answer, queryReadMs, onProtocolError, onError, ...options }: DoqQuicServerOptions) {
    assertServerConfig(options.config);
    super(options);
    const socket = options.socket;
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
        const internals = internalsOf(connection);
        if (typeof release === 'string') {
          this.refusals.note(release, connection.remoteHost);
          internals.processStreams = () => {}; // a refused connection's queries get no answer
          forward(evt);
          queueMicrotask(() => shut(connection));
          return;
        }
        // Re-armed by each new query stream: only queries keep a connection, not PINGs or trickled bytes.
        let disarm = deadline(firstRequestMs, () => shut(connection), clock);
        leanPacketPath(connection, internals, (...datagram) => socket.sendDatagram(...datagram), onError);
        const streams = new QueryStreams(internals.conn, {
          answer,
          clock,
          readTimeoutMs: queryReadMs,
          onStream: () => {
            disarm();
            disarm = deadline(idleMs, () => shut(connection), clock);
          },
          // The library is inside recv() here; stopping a connection from within it is not safe.
          protocolError: (why) => queueMicrotask(() => onProtocolError(connection, why)),
          flush: () => void internals.send().catch((error) => onError(error, 'connection send')),
        });
        internals.processStreams = () => streams.process();
        void connection.closedP.then(() => {
          streams.close();
          disarm();
          release();
        });
        connection.addEventListener(EVENT_ERROR, (e: Event) => onError((e as CustomEvent).detail, 'connection'));
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

function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

function toArrayBuffer(data: Uint8Array): ArrayBuffer {
  return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
}
