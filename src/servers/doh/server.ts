import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { MAX_DNS_MESSAGE } from '../../dns/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import { guardFirstRequest, type ConnectionLimits } from '../fairness.js';
import { contextOptions, listenTls, type TlsListeners } from '../tls-servers.js';
import type { TlsTransportOptions } from '../transport.js';
import { answerBody, route, timedOut, tooLarge, type DohReply } from './exchange.js';
import { serveNative } from './h2-session.js';
import { streamListener } from './h2-stream.js';
import { loadH2Addon, type H2Addon } from './native-h2.js';

/**
 * DNS over HTTPS (RFC 8484) on node:http2's secure server, which speaks HTTP/2 and, on the same port, HTTP/1.1
 * (ALPN `h2` or `http/1.1`; a client offering neither ALPN is served HTTP/1.1). This file sets the server up,
 * enforces the connection limits and serves HTTP/1.1 through Node's request/response objects. HTTP/2 connections
 * go to the native session (h2-session.ts on native/h2_session.c) when its addon loads (native-h2.ts), else to
 * node:http2, whose streams h2-stream.ts serves on the stream API. What a request means is exchange.ts.
 */

export const DEFAULT_DOH_PATH = '/dns-query';

/** Fair admission (fairness.ts: a connection is an HTTP/2 session or an HTTP/1.1 connection) and deadlines. */
export interface DohLimits extends ConnectionLimits {
  /**
   * A connection idle this long is closed: an HTTP/2 session with no stream activity, an HTTP/1.1 connection
   * between requests (Node adds 1 s to keep-alive timeouts).
   */
  readonly idleTimeoutMs: number;
  /** A client that does not complete the TLS handshake in this time is dropped. */
  readonly handshakeTimeoutMs: number;
  /**
   * The first request's headers (HTTP/1.1) or first stream (HTTP/2) must arrive within this of the handshake's
   * end, however its bytes trickle (guardFirstRequest); later HTTP/1.1 requests' headers get as long (Node's
   * headersTimeout).
   */
  readonly firstRequestTimeoutMs: number;
  /** A request must arrive whole (head and body) within this; answered with 408. */
  readonly requestTimeoutMs: number;
  /** Concurrent streams per HTTP/2 session (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
}

/** DoH's limits, and why: the defaults the configuration declares (config/schema.ts, server.dns.doh.limits). */
export const DOH_LIMITS: DohLimits = Object.freeze({
  // Like DoT and plain TCP, 10 s keeps a resolver's connection across bursts.
  idleTimeoutMs: 10_000,
  // A bound on descriptors and TLS state.
  maxConnections: 256,
  // A resolver or proxy keeps a few connections; a sixteenth of the slots each.
  maxPerSource: 16,
  ipv6SourcePrefix: 64,
  // As for DoT: a handshake is one or two round trips; 5 s is generous and frees a silent client's slot.
  handshakeTimeoutMs: 5_000,
  // A client connects to ask: its first request follows the handshake at once.
  firstRequestTimeoutMs: 5_000,
  // Queries are a few hundred bytes; a client trickling a body cannot hold a stream (and its buffer) longer.
  requestTimeoutMs: 10_000,
  // RFC 9113 §6.5.2 recommends at least 100 so clients can pipeline; each stream holds at most one 64 KiB query,
  // so a session holds at most ~6.5 MB.
  maxConcurrentStreams: 100,
});
/**
 * How often Node checks HTTP/1.1 connections against the request timeout (its default, 30 s, would let a slow
 * request live up to 30 s past its deadline).
 */
const HTTP1_CHECK_INTERVAL_MS = 1_000;
/**
 * After refusing the rest of an HTTP/1.1 body, how long the half-closed connection goes on discarding what the
 * client still sends, so that it reads our reply instead of a reset (see lingerOnClose).
 */
export const LINGER_MS = 2_000;

export interface DohOptions extends TlsTransportOptions<DohLimits> {
  /** The one path queries are served on; default /dns-query (RFC 8484's example, and what dig and kdig use). */
  readonly path?: string;
  /** The native HTTP/2 session addon, or why node:http2 serves HTTP/2 (default: loadH2Addon()). */
  readonly http2?: H2Addon | Error;
}

/**
 * Starts DoH on every bind address. On a bind failure, closes what it opened and rejects. The deadlines lexa keeps
 * itself (a request's body, the first request, lingering after a refused body, and on the native HTTP/2 session
 * idle and the close grace too) run on `opts.clock`; those Node keeps (handshake, node:http2's idle, HTTP/1.1
 * headers and request) on the process's timers.
 */
export function startDoh(opts: DohOptions): Promise<TlsListeners> {
  const { handle, log, limits } = opts;
  const clock = opts.clock ?? realClock;
  const path = opts.path ?? DEFAULT_DOH_PATH;
  const idleMs = limits.idleTimeoutMs;
  const requestMs = limits.requestTimeoutMs;

  /** Drops an HTTP/1.1 request whose reply cannot be sent: its connection is closed. */
  const abort = (req: http2.Http2ServerRequest, err: unknown) => {
    log.warn('doh: request failed', { error: err instanceof Error ? err.message : String(err) });
    req.socket.destroy();
  };

  /** Sends `reply`; when the request still has a body we will not read, closes the connection after it. Never throws. */
  const send = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, reply: DohReply, unread: boolean) => {
    if (res.headersSent || res.writableEnded) return;
    try {
      const headers: Record<string, string> = { ...reply.headers, 'content-length': String(reply.body.length) };
      // HTTP/1.1 has no way to refuse the rest of a body but to close the connection once the reply is out.
      if (unread) {
        headers.connection = 'close';
        lingerOnClose(req.socket, clock);
      }
      res.writeHead(reply.status, headers);
      res.end(reply.body);
    } catch (err) {
      return abort(req, err); // nothing above should throw; if it does, lose this request, not the process
    }
    if (reply.status !== 200) {
      const fields = { status: reply.status, method: req.method, http: req.httpVersion };
      log[reply.status >= 500 ? 'warn' : 'debug']('doh: request refused', fields);
    }
  };

  const readBody = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (reply: DohReply, unread: boolean) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      send(req, res, reply, unread);
    };
    const timer = clock.setTimeout(() => finish(timedOut(), true), requestMs);
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size > MAX_DNS_MESSAGE) finish(tooLarge(), true);
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!settled) finish(answerBody(Buffer.concat(chunks, size), handle), false);
    });
    res.on('close', () => {
      settled = true;
      clock.clearTimeout(timer);
    });
  };

  /**
   * An HTTP/1.1 request (HTTP/2 streams never come here: see servedByStreams). `expectsContinue`: the client waits
   * for 100 Continue before sending its body (and gets it only if wanted).
   */
  const onRequest = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, expectsContinue = false) => {
    try {
      req.on('error', (err) => log.debug('doh: request error', { error: err.message }));
      const routed = route(
        {
          method: req.method,
          url: req.url,
          contentType: req.headers['content-type'],
          contentLength: req.headers['content-length'],
        },
        path,
        handle,
      );
      if (routed === 'read-body') {
        if (expectsContinue) res.writeContinue();
        readBody(req, res);
      } else send(req, res, routed, hasBody(req));
    } catch (err) {
      abort(req, err); // nothing above should throw; if it does, lose this request, not the process
    }
  };
  const onStream = streamListener({ path, handle, log, clock, requestMs });
  const native = opts.http2 ?? loadH2Addon();
  const serving = {
    path,
    handle,
    log,
    clock,
    requestMs,
    firstRequestMs: limits.firstRequestTimeoutMs,
    idleMs,
    maxConcurrentStreams: limits.maxConcurrentStreams,
  };

  const create = () => {
    const server = http2.createSecureServer({
      ...contextOptions(opts.tls),
      allowHTTP1: true,
      handshakeTimeout: limits.handshakeTimeoutMs,
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
    });
    // Idle for idleMs: an HTTP/1.1 socket with no bytes either way, or an HTTP/2 session with no stream activity,
    // is destroyed (Node's default when nobody listens to 'timeout'). PINGs do not count while no 'ping' listener
    // is attached (Node answers them natively, unseen): keep it so, or a pinging client never idles out.
    server.setTimeout(idleMs);
    // HTTP/1.1 limits Node applies itself on this server (with allowHTTP1), not in @types/node's Http2SecureServer.
    Object.assign(server, {
      keepAliveTimeout: idleMs,
      headersTimeout: Math.min(limits.firstRequestTimeoutMs, requestMs),
      requestTimeout: requestMs,
      connectionsCheckingInterval: HTTP1_CHECK_INTERVAL_MS,
    });
    guardFirstRequest(server, limits.firstRequestTimeoutMs, clock);
    server.on('sessionError', (err) => log.debug('doh: session error', { error: err.message }));
    server.on('request', (req, res) => onRequest(req, res));
    // Without this listener Node sends 100 Continue itself, inviting a body we may be about to refuse (413, 415).
    server.on('checkContinue', (req, res) => onRequest(req, res, true));
    servedByStreams(server, onStream);
    if (!(native instanceof Error)) servedNatively(server, (socket) => serveNative(native, socket, serving));
    return server;
  };
  const stack = native instanceof Error ? { http2: 'node:http2', nativeUnavailable: native.message.split('\n')[0] } : { http2: 'native (nghttp2)' };
  return listenTls(opts.binds, create, limits, log, 'doh', {}, stack);
}

/**
 * Node ends a `connection: close` reply with socket.destroySoon(): the socket is destroyed once the reply is
 * written, and data the client is still sending then meets a TCP reset, which can discard our reply in the
 * client's receive buffer before it reads it (curl: "Send failure: Broken pipe", no status). Instead the connection
 * lingers (RFC 9112 §9.6): half-closed after the reply, input still read and discarded, destroyed LINGER_MS later.
 */
function lingerOnClose(socket: net.Socket, clock: Clock): void {
  socket.destroySoon = () => {
    socket.end();
    clock.unref(clock.setTimeout(() => socket.destroy(), LINGER_MS));
  };
}

/**
 * Serves HTTP/2 streams with `onStream` alone. node:http2 puts its compatibility layer (a request and a response
 * object around every stream) on the server's 'stream' event as soon as anything listens to 'request', which
 * HTTP/1.1 needs here (allowHTTP1 delivers HTTP/1.1 only as 'request'): that listener is taken off again, so
 * HTTP/2 streams reach `onStream` only and 'request' carries HTTP/1.1 only. Call it after every 'request'
 * listener is attached. Throws if Node attached anything else, so a Node that changes this fails at start-up
 * rather than answering every HTTP/2 stream twice.
 */
function servedByStreams(server: http2.Http2SecureServer, onStream: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => void): void {
  const compat = server.listeners('stream');
  if (compat.length !== 1) throw new Error(`doh: expected node:http2's one compatibility 'stream' listener, found ${compat.length}`);
  server.removeAllListeners('stream');
  server.on('stream', onStream);
}

/**
 * Hands TLS connections that negotiated `h2` to `serve` instead of node:http2; HTTP/1.1 stays node:http2's.
 * node:http2 takes connections on the one 'secureConnection' listener it attached: that listener is replaced by a
 * dispatcher calling it for everything else. Call it before any other 'secureConnection' listener is attached
 * (guardFirstRequest's skips h2 sockets; the native session keeps its own first-request deadline). Throws if Node
 * attached something else, so a Node that changes this fails at start-up.
 */
function servedNatively(server: http2.Http2SecureServer, serve: (socket: TLSSocket) => void): void {
  const own = server.listeners('secureConnection').filter((l) => l.name === 'connectionListener');
  if (own.length !== 1) throw new Error(`doh: expected node:http2's one 'secureConnection' listener, found ${own.length}`);
  const nodeHttp2 = own[0] as (this: http2.Http2SecureServer, socket: TLSSocket) => void;
  server.removeListener('secureConnection', nodeHttp2);
  server.prependListener('secureConnection', function (this: http2.Http2SecureServer, socket: TLSSocket) {
    if (socket.alpnProtocol === 'h2') serve(socket);
    else nodeHttp2.call(this, socket);
  });
}

/** Whether an HTTP/1.1 request has a body still to come (one we will not read if we reply now). */
function hasBody(req: http2.Http2ServerRequest): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}
