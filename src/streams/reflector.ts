import { describeError, type Logger } from '../log/index.js';
import { realClock, sleep, type Clock } from './clock.js';
import { EventConnection, reconnectDelay } from './connection.js';
import type { LxdClient } from './lxd-client.js';
import {
  toInstance,
  toMember,
  toStandaloneMember,
  type LxdEvent,
  type LxdInstance,
  type LxdMember,
  type LxdServerEnvironment,
} from './lxd-model.js';
import type { Instance } from './model.js';
import { toSubnets, type LxdNetwork } from './networks.js';
import { planEvent } from './plan.js';
import { complete, Refetcher } from './refetch.js';
import type { SnapshotStore } from './store.js';

/**
 * The reflector keeps a SnapshotStore equal to LXD, client-go style (list, then watch):
 *   1. open the events websocket (so nothing that happens during the list is missed),
 *   2. list every instance (and cluster member) and replace the snapshot,
 *   3. apply events as they come, re-reading what each names (refetch.ts),
 *   4. when the socket dies or goes silent, back off and start again at 1 (LXD replays nothing).
 * A periodic full re-list repairs anything a lost event would leave wrong.
 */

/**
 * A list can catch an instance that started moments ago, before its addresses arrived; no event will follow. Those
 * that started within this window and lack addresses are re-read on the settle schedule. Bounded by recency so a
 * host full of IPv4-only instances is not polled after every re-list.
 */
export const RECENT_START_MS = 30_000;

export interface ReflectorOptions {
  readonly project: string;
  readonly allProjects: boolean;
  /** How often to re-list while connected; 0 turns it off. */
  readonly resyncIntervalMs: number;
  /** Silence on the events socket longer than this means LXD is gone or hung: reconnect. */
  readonly watchdogMs: number;
  readonly logger: Logger;
  /** Source of time for every delay and timestamp; the real clock by default. Tests pass a fake. */
  readonly clock?: Clock;
  /** Numbers in [0, 1) for the reconnect jitter; Math.random by default. */
  readonly random?: () => number;
}

/**
 * What happens while a full list is in flight. A list takes a while (~1–2 s for 200 instances) and shows LXD at
 * some moment during that time; anything learnt meanwhile may be newer, and must not be replaced by it:
 * - events are buffered and applied after the list has landed, so the reads they cause start after it;
 * - reads already under way (coalesced re-reads, settle loops) that land meanwhile are recorded, and the list
 *   keeps their result instead of its own copy (`keep` in the `listed` action).
 * The same holds on connect and on every periodic resync.
 */
interface Listing {
  /** Events that arrived meanwhile, applied once the list has landed. */
  readonly events: LxdEvent[];
  /** Keys whose instance was read (or found gone) one by one meanwhile. */
  readonly read: Set<string>;
}

export class Reflector {
  readonly #client: LxdClient;
  readonly #store: SnapshotStore;
  readonly #opts: ReflectorOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #refetcher: Refetcher;
  /** Aborted by stop(): ends the backoff wait. */
  readonly #halt = new AbortController();
  /** Aborts every request and wait of the current connection when it ends. */
  #connAbort = new AbortController();
  #conn: EventConnection | undefined;
  #running: Promise<void> | undefined;
  #resyncTimer: unknown;
  #connections = 0;
  /** The list in flight, if any. */
  #listing: Listing | undefined;

  constructor(client: LxdClient, store: SnapshotStore, opts: ReflectorOptions) {
    this.#client = client;
    this.#store = store;
    this.#opts = opts;
    this.#log = opts.logger;
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
    this.#refetcher = new Refetcher({
      client,
      clock: this.#clock,
      logger: this.#log,
      onRead: (inst) => this.#stored(inst),
      onGone: (key) => this.#gone(key),
    });
  }

  /** Starts the list-and-watch loop. Returns at once; progress shows in the store. */
  start(): void {
    if (this.#running) return;
    this.#running = this.#loop();
  }

  /** Stops watching and leaves no request, socket or timer behind; the store keeps its last snapshot. */
  async stop(): Promise<void> {
    this.#halt.abort();
    this.#connAbort.abort();
    this.#conn?.close();
    this.#clock.clearInterval(this.#resyncTimer);
    await this.#running;
  }

  /** Drops the events connection as if the network cut it (for tests and operators' `kill -USR2`-style use). */
  dropConnection(): void {
    this.#conn?.close();
  }

  get #stopped(): boolean {
    return this.#halt.signal.aborted;
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const started = this.#clock.now();
      try {
        await this.#connectOnce();
      } catch (err) {
        if (this.#stopped) break;
        this.#log.warn('lxd connection failed', { target: this.#client.target, error: describeError(err) });
      }
      this.#connAbort.abort();
      this.#store.dispatch({ type: 'connection', connected: false, at: this.#clock.now() });
      if (this.#stopped) break;
      // A connection that stayed up a while was healthy: start the backoff over.
      failures = this.#clock.now() - started > this.#opts.watchdogMs ? 0 : failures + 1;
      await sleep(this.#clock, reconnectDelay(failures, this.#random), this.#halt.signal);
    }
  }

  /** One connection's life: open events, list, then apply events until the socket ends. */
  async #connectOnce(): Promise<void> {
    this.#connAbort = new AbortController();
    const signal = this.#connAbort.signal;
    // Buffer from the socket's creation: events that happen during the list are applied after it.
    const listing = this.#beginList();
    const conn = new EventConnection(this.#client, `type=lifecycle&${this.#scope()}`, {
      clock: this.#clock,
      watchdogMs: this.#opts.watchdogMs,
      logger: this.#log,
      onEvent: (ev) => this.#onEvent(ev),
    });
    this.#conn = conn;
    try {
      await conn.opened;
      await this.#list(signal, listing);
      this.#connections++;
      this.#store.dispatch({ type: 'connection', connected: true, at: this.#clock.now() });
      this.#log.info(this.#connections === 1 ? 'lxd connected' : 'lxd reconnected', {
        target: this.#client.target,
        instances: this.#store.current.instances.size,
        buffered: listing.events.length,
      });
      this.#endList(listing, signal);
      this.#scheduleResync();
      const code = await conn.closed;
      this.#log.warn('lxd events connection closed', { target: this.#client.target, code });
    } finally {
      // Any list of this connection (the first or a resync) is moot now; the next connection lists afresh.
      this.#listing = undefined;
      this.#clock.clearInterval(this.#resyncTimer);
      conn.close();
    }
  }

  /** Starts buffering events for a list about to be sent. */
  #beginList(): Listing {
    const listing: Listing = { events: [], read: new Set() };
    this.#listing = listing;
    return listing;
  }

  /** The list has landed (or failed): stop buffering and apply what was buffered, unless the connection ended. */
  #endList(listing: Listing, signal: AbortSignal): void {
    if (this.#listing !== listing) return;
    this.#listing = undefined;
    if (signal.aborted) return;
    for (const ev of listing.events.splice(0)) this.#apply(ev, signal);
  }

  #onEvent(ev: LxdEvent): void {
    if (this.#listing) this.#listing.events.push(ev);
    else this.#apply(ev, this.#connAbort.signal);
  }

  #scope(): string {
    return this.#opts.allProjects ? 'all-projects=true' : `project=${encodeURIComponent(this.#opts.project)}`;
  }

  /** Full list: instances (and members when clustered), replacing the snapshot. */
  async #list(signal: AbortSignal, listing: Listing): Promise<void> {
    const started = this.#clock.now();
    const [server, raw] = await Promise.all([
      this.#client.get<{ environment?: LxdServerEnvironment }>('/1.0', signal),
      this.#client.get<LxdInstance[]>(`/1.0/instances?recursion=2&${this.#scope()}`, signal),
    ]);
    const clustered = server?.environment?.server_clustered === true;
    const members = clustered
      ? ((await this.#client.get<LxdMember[]>('/1.0/cluster/members?recursion=1', signal)) ?? []).map(toMember)
      : [toStandaloneMember(server?.environment)];
    const instances = (raw ?? []).map((r) => toInstance(r));
    const keep = [...listing.read];
    this.#store.dispatch({ type: 'listed', instances, members, clustered, keep, at: this.#clock.now() });
    this.#readNetworks(signal);
    this.#logProblems(instances);
    const now = this.#clock.now();
    for (const [i, inst] of instances.entries()) {
      const startedAt = Date.parse(raw?.[i]?.last_used_at ?? '');
      if (inst.running && !complete(inst) && now - startedAt < RECENT_START_MS)
        void this.#refetcher.settle(inst.project, inst.name, inst, signal);
    }
    this.#log.debug('lxd listed', { instances: instances.length, members: members.length, ms: this.#clock.now() - started });
  }

  /**
   * Reads LXD's managed networks for their subnets (the reverse zones lexa derives). Not awaited by the list: a
   * failure here costs the reverse zones until the next list, never the instances.
   */
  #readNetworks(signal: AbortSignal): void {
    this.#client
      .get<LxdNetwork[]>('/1.0/networks?recursion=1', signal)
      .then((n) => this.#store.dispatch({ type: 'networks', subnets: toSubnets(n ?? []), at: this.#clock.now() }))
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd network list failed', { error: describeError(err) });
      });
  }

  #scheduleResync(): void {
    this.#clock.clearInterval(this.#resyncTimer);
    if (this.#opts.resyncIntervalMs <= 0) return;
    this.#resyncTimer = this.#clock.setInterval(() => this.#resync(), this.#opts.resyncIntervalMs);
  }

  /** A periodic re-list, fenced like the first (see Listing). Skipped while a list is still in flight. */
  #resync(): void {
    if (this.#listing) return;
    const signal = this.#connAbort.signal;
    const listing = this.#beginList();
    this.#list(signal, listing)
      .then(() => this.#log.info('lxd resynced', { instances: this.#store.current.instances.size }))
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd resync failed', { error: describeError(err) });
      })
      .finally(() => this.#endList(listing, signal));
  }

  #apply(ev: LxdEvent, signal: AbortSignal): void {
    const plan = planEvent(ev);
    const at = this.#clock.now();
    for (const key of plan.remove) {
      this.#refetcher.forget(key);
      this.#store.dispatch({ type: 'instance-gone', key, at });
    }
    for (const t of plan.refetch) this.#refetcher.refetch(t.project, t.name, plan.settle, signal);
    if (plan.profile) {
      for (const inst of this.#store.current.instancesUsingProfile(plan.profile.project, plan.profile.name))
        this.#refetcher.refetch(inst.project, inst.name, true, signal);
    }
    if (plan.members) {
      this.#client
        .get<LxdMember[]>('/1.0/cluster/members?recursion=1', signal)
        .then((m) => this.#store.dispatch({ type: 'members', members: (m ?? []).map(toMember), clustered: true, at: this.#clock.now() }))
        .catch((err) => this.#log.warn('lxd member list failed', { error: describeError(err) }));
    }
  }

  /** Stores one instance as just read, and logs its config problems when they changed. */
  #stored(inst: Instance): void {
    this.#listing?.read.add(inst.key);
    const before = this.#store.current.instances.get(inst.key);
    this.#store.dispatch({ type: 'instance', instance: inst, at: this.#clock.now() });
    if (inst.configErrors.join() !== before?.configErrors.join()) this.#logProblems([inst]);
  }

  /** LXD answered 404 on a re-read. */
  #gone(key: string): void {
    this.#listing?.read.add(key);
    this.#store.dispatch({ type: 'instance-gone', key, at: this.#clock.now() });
  }

  #logProblems(instances: readonly Instance[]): void {
    for (const inst of instances) {
      for (const problem of inst.configErrors) this.#log.warn('instance service config ignored', { instance: inst.key, problem });
    }
  }
}
