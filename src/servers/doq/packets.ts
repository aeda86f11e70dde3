// PACKETS: the per-datagram machinery of a @matrixai/quic server connection, made lean, and the connection
// internals lexa reaches (with quic.ts, the only files that know the library's internals: @matrixai/quic is pinned
// to 2.0.9, and `internalsOf` checks each connection for what is used here).

import { QUICConnection, errors, events } from '@matrixai/quic';
import type { QuicheStreams } from './streams.js';

/** The internal members of QUICConnection lexa's stream and packet paths use (see STREAMS and PACKETS). */
export type ConnectionInternals = {
  /** Feeds one datagram to quiche, then processStreams() and send() (behind a decorator that checks the state). */
  recv(data: Uint8Array, remote: { host: string; port: number }): Promise<void>;
  /** Called by recv() after quiche took a datagram, once established, right before send(). */
  processStreams(): void;
  send(): Promise<void>;
  /** Called at the end of every send(): arms the timer that drives quiche's loss recovery, idle timeout and close. */
  setConnTimeoutTimer(): void;
  /** Serialises recv() (with its send()) against itself. */
  recvLock: { withF(f: () => Promise<void>): Promise<void> };
  resolveClosedP(): void;
  config: { maxSendUdpPayloadSize: number };
  /** quiche's connection (native); set in the constructor. */
  conn: QuicheStreams & QuicheTimers;
};

/** quiche's calls for sending and timing (native/types.d.ts). */
interface QuicheTimers {
  /** Writes the next datagram into `out`: its length and where it goes, or null when there is nothing to send. */
  send(out: Uint8Array): [number, { to: { host: string; port: number } }] | null;
  /** Milliseconds until onTimeout() is due, or null when no timer is needed. */
  timeout(): number | null;
  onTimeout(): void;
  isClosed(): boolean;
  isTimedOut(): boolean;
}

/** The connection's internals, checked: throws if the library or the native object lacks what lexa replaces or calls. */
export function internalsOf(connection: QUICConnection): ConnectionInternals {
  const internals = connection as unknown as Partial<ConnectionInternals>;
  const conn = internals.conn;
  const calls = ['readable', 'streamReadable', 'streamRecv', 'streamSend', 'streamShutdown', 'send', 'timeout', 'onTimeout', 'isClosed', 'isTimedOut'] as const;
  for (const call of calls) {
    if (typeof conn?.[call] !== 'function') throw new Error(`@matrixai/quic changed: the native connection has no ${call}()`);
  }
  if (typeof internals.recvLock?.withF !== 'function' || typeof internals.resolveClosedP !== 'function') {
    throw new Error('@matrixai/quic changed: QUICConnection has no recvLock.withF or resolveClosedP');
  }
  return internals as ConnectionInternals;
}

/**
 * The per-datagram machinery of a connection, made lean. Profiled (docs/performance.md, DoQ), after the
 * streams the library's costs per datagram were its recv lock (each acquisition builds a timed, cancellable promise
 * with a timeout error whose stack is captured, an AbortController and a Timer) and its connection timer (a new
 * @matrixai/timer Timer, with its promise and AbortController, re-created or cancelled on every send).
 *
 * - The lock: recv() holds it across quiche's recv, processStreams() and send(). With lexa's configuration that
 *   body never yields: processStreams() is synchronous (streams.ts), and send() only awaits when a custom
 *   verifyCallback is set with verifyPeer (lexa sets neither; `assertServerConfig` checks). A lock that is never
 *   contended can be a plain call.
 * - The timer: one Node timer per connection, re-armed to quiche's timeout() after every send(), doing what the
 *   library's handler does when it fires: quiche's onTimeout(), then either resolve closedP (reporting an idle
 *   timeout as the library does) or send() what the timeout produced (which re-arms).
 * - Sending: the library wraps each datagram in an event, dispatched through an EventTarget to an async handler that
 *   sends through a promisified dgram send. Ours writes quiche's datagrams straight to the UDP socket, then runs the
 *   library's send(), which finds nothing left to send and does the rest of its work (the timer, noticing that the
 *   peer closed the connection).
 */
/** Connections leanPacketPath has made lean: their recv() reaches quiche and lexa's streams before it yields. */
const lean = new WeakSet<object>();

/** True once leanPacketPath has run on `connection`: a datagram handed to its recv() is done with when recv() returns. */
export function hasLeanPath(connection: object): boolean {
  return lean.has(connection);
}

export function leanPacketPath(
  connection: QUICConnection,
  internals: ConnectionInternals,
  /** Sends one datagram on the server's UDP socket (GuardedSocket.sendDatagram). */
  sendDatagram: (data: Uint8Array, length: number, port: number, host: string) => void,
  onError: (error: unknown, where: string) => void,
): void {
  const conn = internals.conn;
  internals.recvLock = { withF: (f) => f() };
  lean.add(connection);
  const librarySend = QUICConnection.prototype as unknown as Pick<ConnectionInternals, 'send'>;
  const size = internals.config.maxSendUdpPayloadSize;
  internals.send = () => {
    for (;;) {
      const out = Buffer.allocUnsafe(size); // held by dgram until sent: one per datagram
      let next: ReturnType<QuicheTimers['send']>;
      try {
        next = conn.send(out);
      } catch {
        break; // the library's send() below meets the same failure and reports it as it always has
      }
      if (next === null) break;
      sendDatagram(out, next[0], next[1].to.port, next[1].to.host);
    }
    return librarySend.send.call(connection);
  };
  let timer: NodeJS.Timeout | undefined;
  /** True when quiche has closed the connection: closedP resolves, as the library's timer handler does it. */
  const closed = () => {
    if (!conn.isClosed()) return false;
    internals.resolveClosedP();
    if (conn.isTimedOut()) {
      connection.dispatchEvent(new events.EventQUICConnectionError({ detail: new errors.ErrorQUICConnectionIdleTimeout() }));
    }
    return true;
  };
  const fire = () => {
    timer = undefined;
    conn.onTimeout();
    if (!closed()) internals.send().catch((error) => onError(error, 'connection send'));
  };
  internals.setConnTimeoutTimer = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const timeout = conn.timeout();
    if (timeout === null) {
      closed();
      return;
    }
    // +1 ms as the library does: quiche's timeout() is rounded down, and firing early would do nothing.
    timer = setTimeout(fire, timeout + 1);
  };
}

/** PACKETS relies on these: no custom certificate verification (it would make send() yield inside the lock). */
export function assertServerConfig(config: { verifyPeer?: boolean; verifyCallback?: unknown }): void {
  if (config.verifyPeer === true || config.verifyCallback != null) {
    throw new Error('DoQ: verifyPeer/verifyCallback are not supported: src/servers/doq/quic.ts (PACKETS) assumes send() never yields');
  }
}
