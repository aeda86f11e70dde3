import { describeError, type Logger } from '../../log/index.js';
import { realClock, sleep, type Clock } from '../../time/clock.js';
import { reconnectDelay } from '../../time/backoff.js';
import { EventConnection } from './connection.js';
import type { LxdClient } from './lxd-client.js';
import { EventLatency } from './latency.js';
import { LeaseWatch } from './lease-watch.js';
import type { ReflectorOptions } from './reflector-options.js';
import { readList, recentStarts, scopeQuery } from './list.js';
import { ListFence, type Listing } from './list-fence.js';
import { instanceKey, type DaemonKind, type LxdEvent } from './lxd-model.js';
import { memberAt, MemberPoller } from './members.js';
import type { Instance } from '../model/model.js';
import { toSubnets } from './networks.js';
import { planEvent } from './plan.js';
import { notify } from './observer.js';
import { logChangedProblems, logProblems } from './problems.js';
import { Refetcher } from './refetch.js';
import type { SnapshotStore } from '../state/store.js';

/**
 * The reflector keeps a SnapshotStore equal to LXD, client-go style (list, then watch):
 *   1. open the events websocket (so nothing that happens during the list is missed),
 *   2. list every instance (and cluster member) and replace the snapshot,
 *   3. apply events as they come, re-reading what each names (refetch.ts),
 *   4. when the socket dies or goes silent, back off and start again at 1 (LXD replays nothing).
 * A periodic full re-list repairs anything a lost event would leave wrong. Beside it, in their own files: the
 * cluster member polling (members.ts), the network and lease reads of each list (networks.ts, leases.ts), the
 * event-to-snapshot timing (latency.ts) and the logging of instance config problems (problems.ts).
 */

export type { ReflectorOptions } from './reflector-options.js';

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
  /** LXD or Incus, and its version, as the last list found it (logged on every (re)connection). */
  #daemon: DaemonKind | undefined;
  readonly #fence = new ListFence();
  readonly #members: MemberPoller;
  readonly #latency: EventLatency;
  readonly #leaseWatch: LeaseWatch | undefined;

  constructor(client: LxdClient, store: SnapshotStore, opts: ReflectorOptions) {
    this.#client = client;
    this.#store = store;
    this.#opts = opts;
    this.#log = opts.logger;
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
    const [clock, logger] = [this.#clock, this.#log];
    const directory = opts.leaseDirectory;
    this.#leaseWatch = directory === undefined ? undefined : new LeaseWatch({ directory, clock, logger, onChange: (n) => this.#refetcher.leaseFileChanged(n) });
    const [onRead, onGone] = [(inst: Instance) => this.#stored(inst), (key: string) => this.#gone(key)];
    this.#refetcher = new Refetcher({ client, clock, logger, site: opts.site, onRead, onGone, leaseFiles: this.#leaseWatch });
    this.#members = new MemberPoller({ client, store, clock, logger, resync: () => this.#resync() });
    this.#latency = new EventLatency(opts.observer, clock);
  }

  /** Starts the list-and-watch loop. Returns at once; progress shows in the store. */
  start(): void {
    this.#running ??= this.#loop();
  }

  /** Stops watching and leaves no request, socket or timer behind; the store keeps its last snapshot. */
  async stop(): Promise<void> {
    this.#halt.abort();
    this.#connAbort.abort();
    this.#conn?.close();
    this.#clock.clearInterval(this.#resyncTimer);
    this.#members.stop();
    this.#leaseWatch?.close();
    await this.#running;
  }

  /**
   * The LXD endpoint lexa talks to now, and the cluster member it is (by the member list's URLs; null on a
   * standalone LXD or before the first list).
   */
  get watching(): { readonly target: string; readonly member: string | null } {
    const target = this.#client.target;
    return { target, member: memberAt(target, this.#store.current.members.values()) };
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
      // In a cluster any member will do: the next attempt goes to the next one lexa knows (failover-client.ts).
      const before = this.#client.target;
      const next = this.#client.failover?.() ?? before;
      if (next !== before) this.#log.warn('lxd failing over to another member', { from: before, to: next });
      await sleep(this.#clock, reconnectDelay(failures, this.#random), this.#halt.signal);
    }
  }

  /** One connection's life: open events, list, then apply events until the socket ends. */
  async #connectOnce(): Promise<void> {
    this.#connAbort = new AbortController();
    const signal = this.#connAbort.signal;
    // Buffer from the socket's creation: events that happen during the list are applied after it.
    const listing = this.#fence.begin();
    const conn = new EventConnection(this.#client, `type=lifecycle&${scopeQuery(this.#opts)}`, {
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
      notify(() => this.#opts.observer?.connected?.(this.#connections > 1));
      this.#log.info(this.#connections === 1 ? 'lxd connected' : 'lxd reconnected', {
        target: this.#client.target,
        server: this.#daemon?.kind,
        version: this.#daemon?.version,
        instances: this.#store.current.instances.size,
        buffered: listing.events.length,
      });
      this.#fence.end(listing, signal, (ev, at) => this.#apply(ev, signal, at));
      this.#scheduleResync();
      this.#members.start(signal);
      const code = await conn.closed;
      this.#log.warn('lxd events connection closed', { target: this.#client.target, code });
    } finally {
      // Any list of this connection (the first or a resync) is moot now; the next connection lists afresh.
      this.#fence.drop();
      this.#latency.clear();
      this.#clock.clearInterval(this.#resyncTimer);
      this.#members.stop();
      conn.close();
    }
  }

  #onEvent(ev: LxdEvent): void {
    const at = this.#clock.now();
    notify(() => this.#opts.observer?.event?.(ev?.metadata?.action ?? ''));
    if (!this.#fence.hold(ev, at)) this.#apply(ev, this.#connAbort.signal, at);
  }

  /** A full list (list.ts) replacing the snapshot; the instances it finds just started are re-read until settled. */
  async #list(signal: AbortSignal, listing: Listing): Promise<void> {
    const started = this.#clock.now();
    const list = await readList(this.#client, this.#log, scopeQuery(this.#opts), () => this.#refetcher.evidence, signal, this.#opts.site);
    const { instances, members, clustered, networks } = list;
    this.#daemon = list.daemon;
    this.#refetcher.evidence = list.evidence;
    const keep = [...listing.read];
    this.#store.dispatch({ type: 'listed', instances, members, clustered, keep, at: this.#clock.now() });
    if (networks !== undefined) this.#store.dispatch({ type: 'networks', subnets: toSubnets(networks), at: this.#clock.now() });
    logProblems(this.#log, instances);
    for (const inst of recentStarts(list, this.#clock.now())) void this.#refetcher.settle(inst.project, inst.name, inst, signal);
    this.#log.debug('lxd listed', { instances: instances.length, members: members.length, ms: this.#clock.now() - started });
  }

  #scheduleResync(): void {
    this.#clock.clearInterval(this.#resyncTimer);
    if (this.#opts.resyncIntervalMs <= 0) return;
    this.#resyncTimer = this.#clock.setInterval(() => this.#resync(), this.#opts.resyncIntervalMs);
  }

  /** A periodic re-list, fenced like the first (see Listing). Skipped while a list is still in flight. */
  #resync(): void {
    if (this.#fence.busy) return;
    const signal = this.#connAbort.signal;
    const listing = this.#fence.begin();
    this.#list(signal, listing)
      .then(() => this.#log.info('lxd resynced', { instances: this.#store.current.instances.size }))
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd resync failed', { error: describeError(err) });
      })
      .finally(() => this.#fence.end(listing, signal, (ev, at) => this.#apply(ev, signal, at)));
  }

  /** Applies one event that arrived at `arrived`. */
  #apply(ev: LxdEvent, signal: AbortSignal, arrived: number): void {
    const plan = planEvent(ev, this.#opts.site);
    const at = this.#clock.now();
    for (const key of plan.remove) {
      this.#refetcher.forget(key);
      this.#store.dispatch({ type: 'instance-gone', key, at });
      this.#latency.reflected(key, arrived);
    }
    for (const t of plan.refetch) {
      this.#latency.awaitRead(instanceKey(t.project, t.name, this.#opts.site), arrived);
      this.#refetcher.refetch(t.project, t.name, plan.settle, signal);
    }
    if (plan.profile) {
      for (const inst of this.#store.current.instancesUsingProfile(plan.profile.project, plan.profile.name)) {
        this.#latency.awaitRead(inst.key, arrived);
        this.#refetcher.refetch(inst.project, inst.name, true, signal);
      }
    }
    if (plan.members) void this.#members.poll(signal);
  }

  /** Stores one instance as just read, and logs its config problems when they changed. */
  #stored(inst: Instance): void {
    this.#fence.read(inst.key);
    const before = this.#store.current.instances.get(inst.key);
    this.#store.dispatch({ type: 'instance', instance: inst, at: this.#clock.now() });
    this.#latency.reflected(inst.key);
    logChangedProblems(this.#log, before, inst);
  }

  /** LXD answered 404 on a re-read. */
  #gone(key: string): void {
    this.#fence.read(key);
    this.#store.dispatch({ type: 'instance-gone', key, at: this.#clock.now() });
    this.#latency.reflected(key);
  }
}
