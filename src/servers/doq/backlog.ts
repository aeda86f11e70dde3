// The DoQ socket's datagrams that wait for the next turn of the event loop (quic.ts, GuardedSocket.receive), kept
// per source so that one source cannot take the room every other source needs. Before this, one queue of 1024
// served every source: an attacker at one address sending junk or Initials faster than one per turn kept it full,
// and a client at another address lost every datagram that had to wait (its handshakes, and its queries once one
// of its datagrams waited) until the flood stopped.

import { reservedSlots, sourceKey } from '../fairness.js';

/** How many datagrams may wait, and how a source is told apart (fairness.ts, sourceKey). */
export interface BacklogLimits {
  /** Datagrams waiting at most, all sources together. */
  readonly total: number;
  /** Datagrams one source may have waiting. */
  readonly perSource: number;
  /** IPv6 sources are grouped by this prefix length (ConnectionLimits.ipv6SourcePrefix). */
  readonly ipv6SourcePrefix: number;
}

/**
 * The defaults: 1024 in all, a few batches' worth (batch-socket.ts reads up to 64 at a time), as the single queue
 * held before; a source may fill at most a quarter of it, so the other three quarters stay open to at least three
 * other sources whatever one source sends.
 */
export const BACKLOG_LIMITS = Object.freeze({ total: 1024, perSource: 256 });

/**
 * Why a datagram could not wait (a `reason` of lexa_doq_datagrams_dropped_total): every source together holds
 * `total`; its source holds `perSource`; the reserve is for sources holding less than their share.
 */
export type BacklogRefusal = 'backlog-full' | 'source-backlog-full' | 'backlog-reserved';

/**
 * Per-source FIFO queues under one total, served round-robin. Promises, with r = reservedSlots(total) (a quarter):
 * - at most `total` datagrams wait, at most `perSource` of one source;
 * - once total − r are waiting, a source may add one only while it holds fewer than its share,
 *   ⌊(total − r) / sources waiting⌋ (itself counted): sources that already hold their share of the open part cannot
 *   take the reserve, so a source that has little waiting still finds room while a few sources flood;
 * - nothing already waiting is ever pushed out: a flooding source only loses its own newest datagrams;
 * - a source's datagrams leave in the order they came.
 */
export class SourceBacklog<T> {
  readonly #queues = new Map<string, T[]>();
  readonly #reserved: number;
  #waiting = 0;
  /** The last source looked up, and its key: a batch usually holds runs of one source's datagrams. */
  #lastHost = '';
  #lastKey = '';

  constructor(readonly limits: BacklogLimits) {
    this.#reserved = reservedSlots(limits.total);
  }

  /** Datagrams waiting now, all sources. */
  get waiting(): number {
    return this.#waiting;
  }

  /** True while the source of `host` has datagrams waiting: its next ones must wait behind them. */
  holds(host: string): boolean {
    return this.#waiting > 0 && this.#queues.has(this.#key(host));
  }

  /** Adds one datagram of `host` at the back of its source's queue; or, without adding it, why not. */
  push(host: string, item: T): BacklogRefusal | undefined {
    const key = this.#key(host);
    const queue = this.#queues.get(key);
    const held = queue?.length ?? 0;
    const { total, perSource } = this.limits;
    if (this.#waiting >= total) return 'backlog-full';
    if (held >= perSource) return 'source-backlog-full';
    const open = total - this.#reserved;
    if (this.#waiting >= open && held >= Math.floor(open / (this.#queues.size + (queue === undefined ? 1 : 0)))) return 'backlog-reserved';
    if (queue === undefined) this.#queues.set(key, [item]);
    else queue.push(item);
    this.#waiting++;
    return undefined;
  }

  /**
   * One turn: each source with datagrams waiting, in round-robin order, hands them to `route` from the oldest until
   * `route` returns false (a datagram whose work may go on after it returns: the rest of that source waits for the
   * next turn) or none is left. A source served and still waiting goes to the back of the order. `route` must not
   * throw.
   */
  turn(route: (item: T) => boolean): void {
    for (const [key, queue] of [...this.#queues]) {
      let served = 0;
      let more = true;
      while (more && served < queue.length) more = route(queue[served++]!);
      queue.splice(0, served);
      this.#waiting -= served;
      this.#queues.delete(key);
      if (queue.length > 0) this.#queues.set(key, queue);
    }
  }

  /** Drops everything waiting (the socket closed). */
  clear(): void {
    this.#queues.clear();
    this.#waiting = 0;
  }

  #key(host: string): string {
    if (host !== this.#lastHost) {
      this.#lastKey = sourceKey(host, this.limits.ipv6SourcePrefix);
      this.#lastHost = host;
    }
    return this.#lastKey;
  }
}
