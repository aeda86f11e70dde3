import type { Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import { LxdError, type EventSocket, type LxdClient } from './lxd-client.js';
import type { LxdEvent } from './lxd-model.js';
import { lxdEventOf } from './wire-shapes.js';

/** The watchdog looks four times per timeout, but no more often than this: a tick is a timer and maybe a ping. */
export const WATCHDOG_MIN_TICK_MS = 250;
/** How much of LXD's reason for a refused upgrade is kept: enough for its JSON error, not a whole HTML page. */
const REFUSAL_BODY_MAX = 4096;

export interface ConnectionOptions {
  readonly clock: Clock;
  /** Silence (no message, ping or pong) longer than this ends the connection. */
  readonly watchdogMs: number;
  readonly logger: Logger;
  /** Receives every lifecycle event, in LXD's order, from the socket's creation until it ends; nothing after. */
  readonly onEvent: (ev: LxdEvent) => void;
}

/**
 * One `/1.0/events` websocket from opening to its end; reconnecting means a new EventConnection.
 *
 * Contract:
 * - `opened` resolves once the socket is open, and rejects if it ends first (with LXD's reason when LXD refused
 *   the upgrade, e.g. HTTP 500 "Project not found").
 * - `closed` resolves with the close code when the socket ends, or rejects with the error that ended it. A
 *   daemon that stops or is killed drops the TCP connection with no close frame: code 1006.
 * - The opening is bounded by `watchdogMs` too: a daemon that accepts the TCP connection but never answers the
 *   upgrade (a frozen cluster member, SIGSTOP: its kernel still completes the handshake) ends the attempt, so
 *   `opened` rejects and the caller can fail over to another member instead of waiting for this one forever.
 * - Once open, a watchdog notices a hung LXD, which keeps the TCP connection open but says nothing: LXD pings every
 *   10 s and we ping it too, so more than `watchdogMs` without a message, ping or pong terminates the socket.
 * - LXD replays nothing after a reconnect: whoever uses this must re-list after every `opened`.
 */
export class EventConnection {
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  readonly #ws: EventSocket;
  readonly #clock: Clock;
  #lastSeen: number;
  #watchdog: unknown;
  #ended = false;

  constructor(client: LxdClient, query: string, opts: ConnectionOptions) {
    const { clock, logger, watchdogMs } = opts;
    this.#clock = clock;
    this.#lastSeen = clock.now();
    const ws = client.events(query);
    this.#ws = ws;

    this.closed = new Promise<number>((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => {
        // LXD explains a refused upgrade in a JSON body (e.g. "Project not found"): read a little of it.
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body = (body + chunk).slice(0, REFUSAL_BODY_MAX)));
        res.on('error', () => undefined);
        res.on('end', () => {
          let why = '';
          try {
            why = (JSON.parse(body) as { error?: string }).error ?? '';
          } catch {
            why = body.trim().slice(0, 200);
          }
          reject(new LxdError(`events: HTTP ${res.statusCode} from LXD${why ? `: ${why}` : ''}`, res.statusCode ?? 0));
          ws.terminate();
        });
      });
      ws.on('error', (err) => reject(err));
      ws.on('close', (code) => resolve(code));
    });
    this.closed.catch(() => undefined);
    const end = () => {
      this.#ended = true;
      clock.clearInterval(this.#watchdog);
    };
    this.closed.then(end, end);

    ws.on('message', (data) => {
      if (this.#ended) return;
      this.#lastSeen = clock.now();
      let ev: LxdEvent;
      try {
        ev = lxdEventOf(JSON.parse(data.toString()));
      } catch {
        logger.warn('lxd sent an unreadable event', { bytes: String(data).length });
        return;
      }
      opts.onEvent(ev);
    });
    ws.on('ping', () => (this.#lastSeen = clock.now()));
    ws.on('pong', () => (this.#lastSeen = clock.now()));

    const open = new Promise<void>((resolve) => ws.once('open', () => resolve()));
    let unanswered: unknown;
    const timedOut = new Promise<never>((_, reject) => {
      unanswered = clock.setTimeout(() => {
        reject(new LxdError(`events: no answer to the upgrade within ${watchdogMs} ms`, 0));
        ws.terminate();
      }, watchdogMs);
    });
    this.opened = Promise.race([open, this.closed, timedOut])
      .finally(() => clock.clearTimeout(unanswered))
      .then(() => {
        if (this.#ended || ws.readyState !== ws.OPEN) throw new LxdError('events: connection closed before it opened', 0);
        this.#startWatchdog(watchdogMs, logger, client.target);
      });
    this.opened.catch(() => undefined);
    timedOut.catch(() => undefined);
  }

  /** Ends the connection now (as a network cut would); `closed` settles soon after. */
  close(): void {
    this.#ws.terminate();
  }

  #startWatchdog(watchdogMs: number, logger: Logger, target: string): void {
    const tick = Math.max(WATCHDOG_MIN_TICK_MS, Math.floor(watchdogMs / 4));
    this.#lastSeen = this.#clock.now();
    this.#watchdog = this.#clock.setInterval(() => {
      const silentMs = this.#clock.now() - this.#lastSeen;
      if (silentMs > watchdogMs) {
        logger.warn('lxd went silent; reconnecting', { target, silentMs });
        this.#ws.terminate();
      } else if (this.#ws.readyState === this.#ws.OPEN) this.#ws.ping();
    }, tick);
  }
}
