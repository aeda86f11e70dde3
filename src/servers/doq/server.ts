// DNS over QUIC (RFC 9250). This transport only moves bytes: it takes one
// length-prefixed query per client-initiated bidirectional stream (streams.ts), passes the
// message to lexa's shared handler, and writes the reply back on the same
// stream. Protocol violations close the connection with DOQ_PROTOCOL_ERROR.

import tls from 'node:tls';
import type { QUICConnection } from '@matrixai/quic';
import type { Bind } from '../../config/index.js';
import { describeError } from '../../log/index.js';
import { frameMessage } from '../dns/index.js';
import { MAX_DNS_MESSAGE, MESSAGE_LIMIT } from '../../dns/index.js';
import { realClock } from '../../time/clock.js';
import { RefusalLog, type ConnectionLimits } from '../fairness.js';
import { openEach } from '../listen.js';
import type { TlsListeners, TlsTransportOptions } from '../transport.js';
import type { TlsMaterial } from '../../tls/index.js';
import { DoqErrorCode, MAX_FRAMED_MESSAGE } from './framing.js';
import { DoqQuicServer, GuardedSocket, HANDSHAKES_PER_SECOND, assertLibraryShape, hmacCrypto, silentLibraryLogger } from './quic.js';

/** RFC 9250 §4.1: the ALPN token for DoQ. A client offering anything else fails the TLS handshake. */
export const DOQ_ALPN = 'doq';

/**
 * Fair admission (fairness.ts; maxConnections bounds memory: each connection can hold up to MAX_STREAMS × 64 KiB
 * of queries) and deadlines.
 */
export interface DoqLimits extends ConnectionLimits {
  /**
   * A connection that opens no query stream for this long is closed; QUIC's own idle timeout (the same value)
   * drops it silently when nothing at all arrives. Keep it at 5 s or more: quic-go clients assume a peer's idle
   * timeout is at least 5 s and would send queries into connections the server has already forgotten.
   */
  readonly idleTimeoutMs: number;
  /** A handshake (including the stateless Retry round trip) that has not finished by then is abandoned. */
  readonly handshakeTimeoutMs: number;
  /** A connection must open its first query stream within this of starting. */
  readonly firstRequestTimeoutMs: number;
  /**
   * Batched datagrams (recvmmsg/sendmmsg through native/udp_batch.c, batch-socket.ts) when the addon is built;
   * false forces Node's dgram. Default true: the same behaviour at a lower CPU cost per query.
   */
  readonly batch?: boolean;
  /** Where to load the addon from (tests point it at a missing file to prove the fallback). */
  readonly addonPath?: string;
  /**
   * SO_RCVBUF of each socket, bytes: plain UDP's `server.dns.udp_receive_buffer` (the same reasons: datagrams that
   * arrive while lexa is off the CPU wait here instead of being dropped, a real client's among a flood's); absent
   * or 0: the kernel's default.
   */
  readonly receiveBuffer?: number;
  /** Initials for no connection one source may have handled a second (quic.ts, GuardedSocketOptions). */
  readonly handshakesPerSecond?: number;
}

/** The defaults the configuration declares (config/schema.ts, server.dns.quic.limits), for tests and benchmarks. */
export const DOQ_LIMITS: DoqLimits = Object.freeze({
  // RFC 9250 lets servers close idle connections; 30 s keeps a resolver's connection warm between bursts.
  idleTimeoutMs: 30_000,
  maxConnections: 512,
  maxPerSource: 16,
  ipv6SourcePrefix: 64,
  handshakeTimeoutMs: 10_000,
  firstRequestTimeoutMs: 10_000,
  receiveBuffer: 4 * 1024 * 1024, // server.dns.udp_receive_buffer's default
  handshakesPerSecond: HANDSHAKES_PER_SECOND,
});
/** A query is one small message followed by FIN; a stream that has not delivered it in this time is reset. */
const QUERY_READ_TIMEOUT_MS = 10_000;
/** Concurrent query streams per connection; quiche re-grants credit as streams finish. */
const MAX_STREAMS = 100;
/** Per-stream receive window: a client can never send more than one framed DNS message of bytes. */
const STREAM_WINDOW = MAX_FRAMED_MESSAGE;

/**
 * DoQ on every bind address (one UDP socket and QUIC server each). On a bind failure, closes what it opened and
 * rejects. setTls swaps the certificate as the TLS listeners do (TlsListeners): connections accepted from then on
 * present the new one; open connections keep theirs.
 */
export async function startDoq(opts: TlsTransportOptions<DoqLimits>): Promise<TlsListeners> {
  const servers: DoqServer[] = [];
  const listeners = await openEach(opts.binds, async (bind) => {
    const server = createDoqServer(bind, opts);
    const port = await server.listen();
    servers.push(server);
    return { port, close: () => server.close() };
  });
  return {
    ...listeners,
    setTls(m) {
      // The library builds each connection's TLS from the configuration as it accepts it, so a bad pair would fail
      // every new connection: check it now (OpenSSL matches key to certificate), before any server changes.
      tls.createSecureContext({ cert: m.cert, key: m.key });
      for (const s of servers) s.setTls(m);
      opts.log.info('doq: certificate replaced', { sha256: m.fingerprint });
    },
  };
}

interface DoqServer {
  /** Binds the UDP socket; resolves with the bound port (useful with port 0). */
  listen(): Promise<number>;
  /** Connections accepted from now on present `m` (the library copies its configuration into each new one). */
  setTls(m: TlsMaterial): void;
  /** Closes every connection (DOQ_NO_ERROR) and the socket. */
  close(): Promise<void>;
}

/**
 * One DoQ server. The deadlines lexa keeps itself (first query stream, idle between streams, reading a query) run
 * on `options.clock`; QUIC's own idle and handshake timeouts are the library's, on the process's timers.
 */
function createDoqServer({ host, port }: Bind, options: TlsTransportOptions<DoqLimits>): DoqServer {
  assertLibraryShape();
  const { handle, log: logger } = options;
  const clock = options.clock ?? realClock;
  const { limits } = options;
  const { idleTimeoutMs } = limits;
  if (!(idleTimeoutMs > 0)) throw new Error('DoQ idleTimeoutMs must be > 0 (the library treats 0 as "never")');

  // Errors the library raises while handling one peer (its streams, its packets) are the
  // peer's business: debug. Errors of the server as a whole deserve a warning.
  const onError = (error: unknown, where: string) =>
    logger[where === 'server' ? 'warn' : 'debug']('doq: library error', { where, error: describeError(error) });
  const socket = new GuardedSocket((error) => onError(error, 'socket'), {
    batch: limits.batch,
    addonPath: limits.addonPath,
    receiveBuffer: limits.receiveBuffer,
    ipv6SourcePrefix: limits.ipv6SourcePrefix,
    handshakesPerSecond: limits.handshakesPerSecond,
  });
  const server = new DoqQuicServer({
    socket,
    crypto: hmacCrypto(),
    config: {
      cert: options.tls.cert,
      key: options.tls.key,
      verifyPeer: false,
      applicationProtos: [DOQ_ALPN],
      enableEarlyData: false, // 0-RTT data can be replayed by an attacker (RFC 9250's 0-RTT section); we accept none
      maxIdleTimeout: idleTimeoutMs,
      initialMaxStreamsBidi: MAX_STREAMS,
      initialMaxStreamDataBidiRemote: STREAM_WINDOW,
      initialMaxStreamDataBidiLocal: 0, // the server never opens streams
      maxStreamWindow: STREAM_WINDOW,
      // One unidirectional stream of credit, so that a client that opens one is
      // seen and told DOQ_PROTOCOL_ERROR (RFC 9250 §4.2) rather than blocked.
      initialMaxStreamsUni: 1,
      initialMaxStreamDataUni: 64,
    },
    // The library resets streams itself only when a connection fails to start (the handshake deadline passed, an
    // error as the reason: DOQ_INTERNAL_ERROR); streams.ts resets all others with its own codes.
    reasonToCode: (_type, reason) => (reason == null ? DoqErrorCode.NoError : DoqErrorCode.InternalError),
    minIdleTimeout: limits.handshakeTimeoutMs,
    logger: silentLibraryLogger,
    limits,
    refusals: new RefusalLog(logger, 'doq'),
    firstRequestMs: limits.firstRequestTimeoutMs,
    idleMs: idleTimeoutMs,
    clock,
    onError,
    answer,
    queryReadMs: QUERY_READ_TIMEOUT_MS,
    onProtocolError: protocolError,
  });

  const peer = (c: QUICConnection) => `${c.remoteHost}:${c.remotePort}`;

  /** RFC 9250 §4.3.3: a protocol violation is fatal to the connection (streams.ts has reset the offending stream). */
  function protocolError(connection: QUICConnection, why: string): void {
    logger.info('doq: closing connection on protocol error', { peer: peer(connection), why });
    connection
      .stop({ isApp: true, errorCode: DoqErrorCode.ProtocolError, reason: new TextEncoder().encode(why), force: true })
      .catch((error) => onError(error, 'connection stop'));
  }

  /** One complete query: the framed reply, or the DoQ code its stream is reset with. Never throws. */
  function answer(query: Uint8Array): Uint8Array | DoqErrorCode {
    let reply: Uint8Array | null;
    try {
      reply = handle(query, MESSAGE_LIMIT);
    } catch (error) {
      logger.warn('doq: handler threw', { error: describeError(error) });
      return DoqErrorCode.InternalError;
    }
    if (reply === null) return DoqErrorCode.RequestCancelled;
    if (reply.byteLength > MAX_DNS_MESSAGE) return DoqErrorCode.InternalError;
    return frameMessage(reply);
  }

  let listening = false;
  return {
    async listen() {
      await socket.start({ host, port });
      try {
        await server.start();
      } catch (error) {
        await socket.stop({ force: true });
        throw error;
      }
      listening = true;
      if (socket.ioFallback !== undefined && limits.batch !== false) logger.info('doq: batched I/O unavailable, using dgram', { reason: socket.ioFallback });
      const { receiveBuffer } = socket;
      logger.info('doq: listening', { host: socket.host, port: socket.port, io: socket.io, receiveBuffer });
      // Linux reports twice what was set (the doubling covers its bookkeeping): less than asked means capped.
      const wanted = limits.receiveBuffer ?? 0;
      if (wanted > 0 && receiveBuffer !== undefined && receiveBuffer < wanted)
        logger.warn('doq: receive buffer capped by the kernel; raise net.core.rmem_max (or run with CAP_NET_ADMIN)', { host: socket.host, wanted, granted: receiveBuffer });
      return socket.port;
    },
    setTls(m) {
      server.updateConfig({ cert: m.cert, key: m.key });
    },
    async close() {
      if (!listening) return;
      listening = false;
      await server.stop({ isApp: true, errorCode: DoqErrorCode.NoError, force: true });
      await socket.stop({ force: true });
    },
  };
}

