import { Buffer } from 'node:buffer';
import type { TLSSocket } from 'node:tls';
import type { HandleQuery } from '../../dns/index.js';
import type { Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import { answerBody, CONTINUE, routeHttp2, timedOut, tooLarge, type DohReply } from './exchange.js';
import {
  EV_CLOSED,
  EV_COMPLETE,
  EV_HEAD,
  EV_TOO_LARGE,
  EVENT_SLOTS,
  RESPOND_HEAD,
  RESPOND_UNREAD,
  STATE_CLOSE,
  STATE_SLOTS,
  STATE_STREAMS,
  type H2Addon,
  type H2Handle,
} from './native-h2.js';

/**
 * DoH over HTTP/2 on the native session (native/h2_session.c): one TLS socket that negotiated `h2`, its decrypted
 * bytes fed to nghttp2 one read at a time, the requests a read completed answered through exchange.ts (the same
 * HTTP semantics as h2-stream.ts on node:http2), the bytes to send written once per read. Measured with h2load
 * (10 connections × 10 streams, POST): docs/performance.md, "DoH".
 *
 * The session's limits inside nghttp2 are h2_session.c's (docs/security.md); the deadlines are kept here.
 */

/**
 * Output waiting in the socket beyond this stops reading from it until it drains: a client that sends requests
 * (or PINGs, SETTINGS) and does not read the answers cannot make the session buffer without bound.
 */
export const MAX_BUFFERED_BYTES = 64 * 1024;
/**
 * After a reply to a request whose body we did not read, its RST_STREAM(NO_ERROR) goes this much later: time for
 * the client to take in the reply first (h2_session.c, on_frame_send: curl fails a request reset sooner), while
 * its window, not reopened, bounds what it can still send.
 */
export const UNREAD_RESET_MS = 100;
/** After a GOAWAY, the connection is destroyed this much later at most: time for open streams and the frame itself. */
export const CLOSE_GRACE_MS = 1_000;

/** What a native session needs from the server: the same as the stream path, plus its session limits. */
export interface NativeServing {
  readonly path: string;
  readonly handle: HandleQuery;
  readonly log: Logger;
  /**
   * Every deadline of the session runs on it: a request's body, the first request, idle, the close grace. (The reset
   * after a reply to an unread body is a pacing delay against the client's real reading: the process's timers.)
   */
  readonly clock: Clock;
  readonly requestMs: number;
  readonly firstRequestMs: number;
  readonly idleMs: number;
  readonly maxConcurrentStreams: number;
}

const EMPTY = new Uint8Array(0);

/** The `date` header, formatted at most once a second. */
let dateText = '';
let dateSecond = -1;
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateText = new Date(now).toUTCString();
  }
  return dateText;
}

/** Serves `socket` (ALPN h2, handshake done) with a native session until it closes. Never throws. */
export function serveNative(addon: H2Addon, socket: TLSSocket, s: NativeServing): void {
  const { path, handle, log, clock, requestMs } = s;
  const state = new Int32Array(STATE_SLOTS);
  let session: H2Handle;
  try {
    session = addon.open(s.maxConcurrentStreams, state);
  } catch (err) {
    log.warn('doh: native HTTP/2 session failed to open', { error: (err as Error).message });
    socket.destroy();
    return;
  }
  /** Request bodies being awaited: their deadlines, by stream. */
  const pending = new Map<number, unknown>();
  let open = true;
  let closing = false;
  let lastActivity = clock.now();
  let idleTimer: unknown;
  const destroy = () => socket.destroy();
  /** A timer on the session's clock that keeps no process alive: the socket does. */
  const later = (fn: () => void, ms: number): unknown => {
    const timer = clock.setTimeout(fn, ms);
    clock.unref(timer);
    return timer;
  };
  let firstRequest: unknown = later(destroy, s.firstRequestMs);

  /** Writes what nghttp2 has to send; ends the connection once the session wants neither to read nor to write. */
  const flush = () => {
    if (!open) return;
    const out = addon.flush(session);
    if (out !== null) socket.write(out);
    if (state[STATE_CLOSE] === 1) {
      socket.end();
      graceThenDestroy();
      return;
    }
    if (socket.writableLength > MAX_BUFFERED_BYTES && !socket.isPaused()) socket.pause();
  };

  const graceThenDestroy = () => {
    if (closing) return;
    closing = true;
    later(destroy, CLOSE_GRACE_MS);
  };

  /** GOAWAY: no new streams; the connection ends once open ones are answered, or CLOSE_GRACE_MS later at most. */
  const goaway = () => {
    if (!open) return;
    addon.goaway(session);
    flush();
    graceThenDestroy();
  };

  const onIdle = () => {
    idleTimer = undefined;
    if (!open) return;
    const quiet = clock.now() - lastActivity;
    if (state[STATE_STREAMS]! > 0 || quiet < s.idleMs) idleTimer = later(onIdle, Math.max(1, s.idleMs - quiet));
    else goaway();
  };
  idleTimer = later(onIdle, s.idleMs);

  /** Sends `reply` on stream `id`; `unread`: the client may still be sending a body (reset after the reply). */
  const send = (id: number, reply: DohReply, unread: boolean, head = false) => {
    const headers: string[] = [];
    for (const name in reply.headers) headers.push(name, reply.headers[name]!);
    headers.push('content-length', String(reply.body.length), 'date', httpDate());
    const flags = (head ? RESPOND_HEAD : 0) | (unread ? RESPOND_UNREAD : 0);
    addon.respond(session, id, reply.status, headers, head ? null : reply.body, flags);
    // A pacing delay against the client's real reading (see UNREAD_RESET_MS), not a deadline: the process's timers.
    if (unread) setTimeout(resetUnread, UNREAD_RESET_MS, id).unref();
    if (reply.status !== 200) {
      log[reply.status >= 500 ? 'warn' : 'debug']('doh: request refused', { status: reply.status, http: '2.0' });
    }
  };

  /** A request's head: the reply it gets before any body, or 'read-body'. */
  const routeHead = (method: unknown, url: unknown, contentType: unknown, contentLength: unknown, expect: unknown): DohReply | 'read-body' =>
    routeHttp2(
      {
        method: method as string,
        url: url as string,
        contentType: contentType as string | undefined,
        contentLength: contentLength as string | undefined,
        expect: expect as string | undefined,
      },
      path,
      handle,
    );

  const settle = (id: number) => {
    const timer = pending.get(id);
    if (timer === undefined) return false;
    clock.clearTimeout(timer);
    pending.delete(id);
    return true;
  };

  const resetUnread = (id: number) => {
    if (!open) return;
    addon.reset(session, id);
    flush();
  };

  const onDeadline = (id: number) => {
    if (!open || !pending.delete(id)) return;
    send(id, timedOut(), true);
    flush();
  };

  /** Answers the events of one read (EVENT_SLOTS values each; see native-h2.ts). */
  const serve = (events: unknown[]) => {
    for (let i = 0; i < events.length; i += EVENT_SLOTS) {
      const kind = events[i] as number;
      const id = events[i + 1] as number;
      if (kind === EV_CLOSED) {
        settle(id);
        continue;
      }
      const method = events[i + 2];
      // An event for a stream whose head was reported earlier carries no head: its body was awaited.
      const awaited = method === undefined && settle(id);
      const routed = awaited ? 'read-body' : routeHead(method, events[i + 3], events[i + 4], events[i + 5], events[i + 6]);
      if (kind === EV_COMPLETE) {
        const body = (events[i + 7] as Buffer | undefined) ?? EMPTY;
        send(id, routed === 'read-body' ? answerBody(body, handle) : routed, false, method === 'HEAD');
      } else if (kind === EV_TOO_LARGE) send(id, routed === 'read-body' ? tooLarge() : routed, true);
      else if (kind === EV_HEAD) {
        if (routed !== 'read-body') send(id, routed, true, method === 'HEAD');
        else {
          const timer = clock.setTimeout(() => onDeadline(id), requestMs);
          pending.set(id, timer);
          if (events[i + 6] === CONTINUE) addon.informational(session, id);
        }
      }
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (!open) return;
    try {
      const events = addon.feed(session, chunk);
      if (typeof events === 'number') {
        log.debug('doh: HTTP/2 session error', { code: events });
      } else if (events.length > 0) {
        lastActivity = clock.now();
        if (firstRequest !== undefined) {
          clock.clearTimeout(firstRequest);
          firstRequest = undefined;
        }
        serve(events);
      }
      flush();
      if (typeof events === 'number') graceThenDestroy();
    } catch (err) {
      // nothing above should throw; if it does, lose this connection, not the process
      log.warn('doh: HTTP/2 session failed', { error: (err as Error).message });
      destroy();
    }
  });
  socket.on('drain', () => socket.isPaused() && open && socket.resume());
  socket.on('error', (err) => log.debug('doh: connection error', { error: err.message }));
  socket.on('close', () => {
    open = false;
    for (const timer of pending.values()) clock.clearTimeout(timer);
    pending.clear();
    if (firstRequest !== undefined) clock.clearTimeout(firstRequest);
    if (idleTimer !== undefined) clock.clearTimeout(idleTimer);
    addon.close(session);
  });
  flush(); // the server's SETTINGS
}
