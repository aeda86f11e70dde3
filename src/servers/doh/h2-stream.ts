import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import { MAX_DNS_MESSAGE, type HandleQuery } from '../../dns/index.js';
import type { Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import { answerBody, CONTINUE, routeHttp2, timedOut, tooLarge, type DohReply } from './exchange.js';

/**
 * DoH over HTTP/2 on node:http2's stream API, where the native session (h2-session.ts) is not used: its addon not
 * built or refused (native-h2.ts), or LEXA_DOH_HTTP2=node: a stream's headers in, `stream.respond()` and the body out,
 * with none of the compatibility layer's per-request objects (a request and a response stream wrapping the
 * HTTP/2 stream, with listeners of their own). Measured with h2load (10 connections × 10 streams, POST), server
 * CPU per query on a busy 2-core machine: the compatibility layer 47–60 µs, this path 33–38 µs, a bare node:http2
 * server answering a fixed body 28 µs (docs/performance.md, "DoH").
 *
 * Per request this allocates what node:http2 itself needs (the stream, its header objects), the reply and its
 * header object, the body write's callback (AFTER_WRITE), and for a POST one PendingBody and its deadline's timer;
 * the stream's listeners are created once per server.
 */

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_LENGTH, HTTP2_METHOD_HEAD, HTTP_STATUS_CONTINUE, NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR } =
  http2.constants;

/** The informational response that invites the body of a request expecting it; built once. */
const CONTINUE_HEADERS = Object.freeze({ [HTTP2_HEADER_STATUS]: HTTP_STATUS_CONTINUE });
/*
 * AFTER_WRITE: the body is written, and the stream ended once the write completes, rather than `end(body)`.
 * With end(body) Node 20 puts END_STREAM on the body's DATA frame; the stream then closes (the client had ended
 * its side) before the write's completion comes back, and that completion builds an ERR_STREAM_DESTROYED, stack
 * trace and all, for nobody (streams/writable.js errorBuffer): 8–10 % of a request's CPU in the profile, ~4 µs
 * measured with h2load on a bare stream server (30–31 against 34–38 µs per request). Ending after the write
 * costs an empty DATA frame carrying END_STREAM instead.
 */

/** respond() options for a reply with no DATA frame (HEAD); built once. */
const NO_BODY = Object.freeze({ endStream: true });

/** What the stream path needs from the server: the same as the HTTP/1.1 path. */
export interface StreamServing {
  /** The one path queries are served on. */
  readonly path: string;
  readonly handle: HandleQuery;
  readonly log: Logger;
  /** lexa's own deadline for a request body, on `clock`. */
  readonly clock: Clock;
  readonly requestMs: number;
}

/** A POST body being read: held on its stream under PENDING until the body ends, overflows or times out. */
interface PendingBody {
  /** The first chunk: a DoH query nearly always arrives in one DATA frame, so no array for it. */
  first: Buffer | undefined;
  /** Any further chunks, once there are some. */
  rest: Buffer[] | undefined;
  size: number;
  timer: unknown;
  /** A reply has been chosen: later chunks, the end and the deadline are ignored. */
  settled: boolean;
}

const PENDING = Symbol('doh.pendingBody');
type Stream = http2.ServerHttp2Stream & { [PENDING]?: PendingBody };

/**
 * The server's 'stream' listener: answers every HTTP/2 stream by its headers (exchange.ts decides what a request
 * means), reading a POST body up to MAX_DNS_MESSAGE bytes within `requestMs`. Never throws: a reply that cannot
 * be sent resets its stream, never the session or the process.
 */
export function streamListener(s: StreamServing): (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void {
  const { path, handle, log, clock, requestMs } = s;

  /** Resets a stream whose reply could not be sent. */
  const abort = (stream: http2.ServerHttp2Stream, err: unknown) => {
    log.warn('doh: request failed', { error: err instanceof Error ? err.message : String(err) });
    if (!stream.destroyed) stream.close(NGHTTP2_INTERNAL_ERROR);
  };

  /**
   * Sends `reply` unless the stream is already answered or gone. `unread`: the client may still be sending a body
   * we will not read; RST_STREAM(NO_ERROR) after the complete reply tells it to stop (RFC 9113 §8.1; Node sends it
   * once the reply is flushed). `head`: a HEAD request, answered with the headers alone.
   */
  const send = (stream: http2.ServerHttp2Stream, reply: DohReply, unread: boolean, head = false) => {
    if (stream.headersSent || stream.destroyed || stream.closed) return;
    try {
      const headers = { [HTTP2_HEADER_STATUS]: reply.status, ...reply.headers, [HTTP2_HEADER_CONTENT_LENGTH]: reply.body.length };
      if (head) stream.respond(headers, NO_BODY);
      else {
        stream.respond(headers);
        // close() below waits for an ended stream's data, but would reset a stream still writing.
        if (unread) stream.end(reply.body);
        else stream.write(reply.body, (err) => err ?? stream.end()); // see AFTER_WRITE
      }
      if (unread) stream.close(NGHTTP2_NO_ERROR);
    } catch (err) {
      return abort(stream, err); // nothing above should throw; if it does, lose this request, not the process
    }
    if (reply.status !== 200) {
      log[reply.status >= 500 ? 'warn' : 'debug']('doh: request refused', { status: reply.status, http: '2.0' });
    }
  };

  /** Settles a POST: the deadline is cleared and `reply` sent. */
  const settle = (stream: Stream, body: PendingBody, reply: DohReply, unread: boolean) => {
    body.settled = true;
    clock.clearTimeout(body.timer);
    send(stream, reply, unread);
  };

  function onBodyData(this: Stream, chunk: Buffer): void {
    const body = this[PENDING];
    if (body === undefined || body.settled) return;
    body.size += chunk.length;
    if (body.size > MAX_DNS_MESSAGE) settle(this, body, tooLarge(), true);
    else if (body.first === undefined) body.first = chunk;
    else (body.rest ??= [body.first]).push(chunk);
  }

  function onBodyEnd(this: Stream): void {
    const body = this[PENDING];
    if (body === undefined || body.settled) return;
    const bytes = body.rest === undefined ? (body.first ?? EMPTY) : Buffer.concat(body.rest, body.size);
    settle(this, body, answerBody(bytes, handle), false);
  }

  /** The stream is gone (answered, reset by the client, or its session closed): its deadline goes with it. */
  function onBodyClose(this: Stream): void {
    const body = this[PENDING];
    if (body === undefined) return;
    body.settled = true;
    clock.clearTimeout(body.timer);
    this[PENDING] = undefined;
  }

  /** A stream's 'error' (a reset with an error code, a broken session) with no listener would end the process. */
  function onStreamError(this: Stream, err: Error): void {
    log.debug('doh: stream error', { error: err.message });
  }

  /** Reads a POST body: its PendingBody and its deadline's closure are all it allocates. */
  const readBody = (stream: Stream, expectsContinue: boolean) => {
    const body: PendingBody = { first: undefined, rest: undefined, size: 0, timer: undefined, settled: false };
    body.timer = clock.setTimeout(() => body.settled || settle(stream, body, timedOut(), true), requestMs);
    stream[PENDING] = body;
    stream.on('data', onBodyData);
    stream.on('end', onBodyEnd);
    stream.on('close', onBodyClose);
    if (expectsContinue) stream.additionalHeaders(CONTINUE_HEADERS);
  };

  return (stream, headers) => {
    stream.on('error', onStreamError);
    try {
      const method = headers[':method'];
      const unread = !stream.endAfterHeaders;
      const expect = headers.expect;
      const routed = routeHttp2(
        {
          method,
          url: headers[':path'],
          contentType: headers['content-type'],
          contentLength: headers['content-length'],
          expect,
        },
        path,
        handle,
      );
      if (routed !== 'read-body') send(stream, routed, unread, method === HTTP2_METHOD_HEAD);
      else if (!unread) send(stream, answerBody(EMPTY, handle), false); // a POST that ended with its headers
      else readBody(stream, expect === CONTINUE);
    } catch (err) {
      abort(stream, err); // nothing above should throw; if it does, lose this request, not the process
    }
  };
}

const EMPTY = new Uint8Array(0);
