import type { EventEmitter } from 'node:events';
import type { Http2Session } from 'node:http2';
import { isIPv4, isIPv6 } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../log/index.js';
import { countRefusedConnection } from '../metrics/connections.js';
import { realClock, type Clock } from '../time/clock.js';

/**
 * Fair sharing of a connection listener: what every stream and QUIC listener applies the same way, so that one
 * client (one address, or one IPv6 /64) cannot hold the slots everyone else needs. The numbers come from one place
 * (each listener's `limits` block in the configuration, resolved in config/load.ts); this file only enforces them.
 */

/** The limits every connection listener shares (TCP, DoT, DoH, DoQ, REST, agent). */
export interface ConnectionLimits {
  /** Open connections the listener holds at most; new ones beyond it are closed on accept. */
  readonly maxConnections: number;
  /**
   * Open connections one source may hold (see sourceKey for what a source is). Also, a source never holds more
   * than maxConnections − reservedSlots(maxConnections): the last slots belong to sources holding none.
   */
  readonly maxPerSource: number;
  /**
   * IPv6 clients are grouped by this prefix length: 64 (one subscriber's network, as RRL and most rate limiters
   * group them) or 128 (each address apart, for clients that share one /64, such as containers on one bridge).
   */
  readonly ipv6SourcePrefix: number;
}

/**
 * The share of a listener's slots kept for sources that hold no connection yet: once the listener is this full,
 * only a new source's first connection is accepted. So whatever any set of already-connected sources does, a
 * client at a new address gets a slot while fewer than a quarter of the slots are held by first connections.
 */
export const RESERVED_SHARE = 0.25;

/** Slots of `max` reserved for sources without a connection: ⌈max × RESERVED_SHARE⌉, but never all of them. */
export function reservedSlots(max: number): number {
  return max <= 1 ? 0 : Math.min(max - 1, Math.ceil(max * RESERVED_SHARE));
}

/**
 * The source a connection from `address` is counted against: an IPv4 address itself (an IPv4-mapped IPv6 address
 * is its IPv4 address), an IPv6 address cut to its first `ipv6Prefix` bits. Anything else counts as itself.
 */
export function sourceKey(address: string, ipv6Prefix: number): string {
  const plain = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (!isIPv6(plain) || ipv6Prefix >= 128) return plain;
  const groups = expandIPv6(plain);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const keep = Math.max(0, Math.min(16, ipv6Prefix - 16 * i));
    const mask = keep === 0 ? 0 : (0xffff << (16 - keep)) & 0xffff;
    out.push((groups[i]! & mask).toString(16));
  }
  return `${out.join(':')}/${ipv6Prefix}`;
}

/** The eight 16-bit groups of an IPv6 address (with `::` and a trailing dotted quad expanded). */
function expandIPv6(a: string): number[] {
  let text = a.split('%')[0]!;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad !== null) {
    const [b0, b1, b2, b3] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((b0 << 8) | b1).toString(16)}:${((b2 << 8) | b3).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** Why a connection was refused, for logs and tests. */
export type Refusal = 'listener-full' | 'source-limit' | 'reserved-for-others';

/**
 * Counts open connections per source and decides, on accept, whether a new one may stay. Promise: with
 * limits (max, perSource) and reserve r = reservedSlots(max), a source holds at most min(perSource, max − r)
 * connections, the listener at most max, and a source holding none is refused only when every one of the
 * last r slots is taken (by other sources' first connections). Each admitted connection must be released once.
 */
export class SourceGate {
  readonly #bySource = new Map<string, number>();
  #open = 0;
  readonly #reserved: number;

  constructor(readonly limits: ConnectionLimits) {
    this.#reserved = reservedSlots(limits.maxConnections);
  }

  /** Open connections right now. */
  get open(): number {
    return this.#open;
  }

  /** Why a connection from `address` would be refused now, or undefined when it would be admitted. */
  refusal(address: string): Refusal | undefined {
    const held = this.#bySource.get(sourceKey(address, this.limits.ipv6SourcePrefix)) ?? 0;
    if (this.#open >= this.limits.maxConnections) return 'listener-full';
    if (held >= this.limits.maxPerSource) return 'source-limit';
    if (held > 0 && this.#open >= this.limits.maxConnections - this.#reserved) return 'reserved-for-others';
    return undefined;
  }

  /** Admits a connection from `address`: a release function to call when it closes, or why it was refused. */
  admit(address: string): (() => void) | Refusal {
    const why = this.refusal(address);
    if (why !== undefined) return why;
    const key = sourceKey(address, this.limits.ipv6SourcePrefix);
    const held = this.#bySource.get(key) ?? 0;
    this.#bySource.set(key, held + 1);
    this.#open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open--;
      const n = (this.#bySource.get(key) ?? 1) - 1;
      if (n === 0) this.#bySource.delete(key);
      else this.#bySource.set(key, n);
    };
  }
}

/**
 * Refused connections are logged at debug level, but at most once per this interval per listener (with the count
 * since the last line): a flood of refused connections must not become a flood of log lines.
 */
export const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Logs refusals of one listener, bounded (see REFUSAL_LOG_INTERVAL_MS); counts them all (lexa_connections_refused_total). */
export class RefusalLog {
  #sinceLine = 0;
  #lastLine = -Infinity;

  constructor(
    private readonly log: Logger,
    private readonly name: string,
    /** Whose time bounds the lines (the process's own by default). */
    private readonly clock: Clock = realClock,
  ) {}

  note(why: Refusal, address: string | undefined): void {
    countRefusedConnection(this.name, why);
    this.#sinceLine++;
    const now = this.clock.now();
    if (now - this.#lastLine < REFUSAL_LOG_INTERVAL_MS) return;
    this.log.debug(`${this.name}: connection refused (${why})`, { from: address, refusedSinceLastLine: this.#sinceLine });
    this.#lastLine = now;
    this.#sinceLine = 0;
  }
}

/**
 * A deadline that only the caller meets: `onExpire` runs `ms` from now unless the returned function (call it when
 * a complete request arrived, or when the connection closed) runs first. Bytes trickling in do not move it. The
 * timer is on `clock` and unref'd: the connection, not its deadline, keeps the process alive.
 */
export function deadline(ms: number, onExpire: () => void, clock: Clock = realClock): () => void {
  const timer = clock.setTimeout(onExpire, ms);
  clock.unref(timer);
  return () => clock.clearTimeout(timer);
}

/**
 * Closes an HTTPS connection whose first request has not arrived whole (all its headers) within `ms` of the TLS
 * handshake's end, however its bytes trickle (slow-loris): an HTTP/1.1 connection until its first 'request', an
 * HTTP/2 session until its first stream. Node's own headersTimeout is not enough for the first request: it is only
 * checked every connectionsCheckingInterval, and a connection that sends nothing at all after the handshake has
 * no request for it to time out. Later requests on a kept-alive connection are bounded by headersTimeout and
 * keepAliveTimeout, which the caller sets. The deadlines run on `clock`.
 */
export function guardFirstRequest(server: EventEmitter, ms: number, clock: Clock = realClock): void {
  const waiting = new WeakMap<object, () => void>();
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return; // an HTTP/2 session: see 'session'
    const met = deadline(ms, () => socket.destroy(), clock);
    waiting.set(socket, met);
    socket.once('close', met);
  });
  server.on('request', (req: { readonly socket: object }) => waiting.get(req.socket)?.());
  server.on('session', (session: Http2Session) => {
    const met = deadline(ms, () => session.destroy(), clock);
    session.once('stream', met);
    session.once('close', met);
  });
}
