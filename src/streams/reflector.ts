import { describeError, type Logger } from '../log/index.js';
import { realClock, sleep, type Clock } from './clock.js';
import { reconnectDelay } from './backoff.js';
import { EventConnection } from './connection.js';
import { originOf } from './failover-client.js';
import type { LxdClient } from './lxd-client.js';
import {
  daemonKind,
  type DaemonKind,
  instanceKey,
  toInstance,
  toMember,
  toStandaloneMember,
  type LxdEvent,
  type LxdInstance,
  type LxdLease,
  type LxdMember,
  type LxdServerEnvironment,
} from './lxd-model.js';
import { resolveMemberHosts } from './member-addresses.js';
import type { ClusterMember, Instance } from './model.js';
import { toSubnets, type LxdNetwork } from './networks.js';
import { leaseScope, leasingNetworks, networkFacts, withLeases, type Evidence } from './trust.js';
import { planEvent } from './plan.js';
import { notify, type ReflectorObserver } from './observer.js';
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

/**
 * How often the member list is read while LXD is clustered. A member that dies emits no event; LXD marks it
 * Offline after missed heartbeats (~10–20 s on LXD 5.0), and lexa learns that only by asking. Every 5 s adds at
 * most a quarter of that to the time a dead member's instances keep answering (see unreachable.ts).
 */
export const MEMBER_POLL_MS = 5_000;
/**
 * A member that comes back forwards its events again only some seconds after it is Online (measured ~7 s on LXD
 * 5.0.2), and events of that gap are lost: one more full re-list this long after a member's return repairs them.
 */
export const MEMBER_RETURN_RESYNC_MS = 10_000;

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
  /** Told about events, connections and how soon events show in the snapshot (metrics); none by default. */
  readonly observer?: ReflectorObserver;
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
  /** Events that arrived meanwhile (and when), applied once the list has landed. */
  readonly events: { readonly ev: LxdEvent; readonly at: number }[];
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
  /** LXD or Incus, and its version, as the last list found it (logged on every (re)connection). */
  #daemon: DaemonKind | undefined;
  /** The list in flight, if any. */
  #listing: Listing | undefined;
  #memberTimer: unknown;
  #returnTimer: unknown;
  #memberPoll: Promise<void> | undefined;
  /**
   * When the oldest event not yet reflected in the snapshot arrived, by the instance key it asked to re-read;
   * the instance's next stored read (or removal) reports the delay to the observer. Cleared per connection.
   */
  readonly #pendingSince = new Map<string, number>();

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
    this.#clock.clearInterval(this.#memberTimer);
    this.#clock.clearTimeout(this.#returnTimer);
    await this.#running;
  }

  /**
   * The LXD endpoint lexa talks to now, and the cluster member it is (by the member list's URLs; null on a
   * standalone LXD or before the first list).
   */
  get watching(): { readonly target: string; readonly member: string | null } {
    const target = this.#client.target;
    const origin = originOf(target);
    let member: string | null = null;
    for (const m of this.#store.current.members.values()) if (origin !== undefined && originOf(m.url) === origin) member = m.name;
    return { target, member };
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
      const observer = this.#opts.observer;
      const reconnect = this.#connections > 1;
      if (observer?.connected) notify(() => observer.connected?.(reconnect));
      this.#log.info(this.#connections === 1 ? 'lxd connected' : 'lxd reconnected', {
        target: this.#client.target,
        server: this.#daemon?.kind,
        version: this.#daemon?.version,
        instances: this.#store.current.instances.size,
        buffered: listing.events.length,
      });
      this.#endList(listing, signal);
      this.#scheduleResync();
      this.#scheduleMemberPoll();
      const code = await conn.closed;
      this.#log.warn('lxd events connection closed', { target: this.#client.target, code });
    } finally {
      // Any list of this connection (the first or a resync) is moot now; the next connection lists afresh.
      this.#listing = undefined;
      this.#pendingSince.clear();
      this.#clock.clearInterval(this.#resyncTimer);
      this.#clock.clearInterval(this.#memberTimer);
      this.#clock.clearTimeout(this.#returnTimer);
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
    for (const { ev, at } of listing.events.splice(0)) this.#apply(ev, signal, at);
  }

  #onEvent(ev: LxdEvent): void {
    const at = this.#clock.now();
    const observer = this.#opts.observer;
    if (observer?.event) notify(() => observer.event?.(ev?.metadata?.action ?? ''));
    if (this.#listing) this.#listing.events.push({ ev, at });
    else this.#apply(ev, this.#connAbort.signal, at);
  }

  #scope(): string {
    return this.#opts.allProjects ? 'all-projects=true' : `project=${encodeURIComponent(this.#opts.project)}`;
  }

  /**
   * Full list: instances (and members when clustered), replacing the snapshot. LXD's networks are read beside the
   * instances, and the leases of every lease-backed network a running instance is on after them (one request per
   * network and project): a lease precedes the address it gives in `/state`, so every leased address the list
   * shows is in a lease list read after it, and is trusted (trust.ts).
   */
  async #list(signal: AbortSignal, listing: Listing): Promise<void> {
    const started = this.#clock.now();
    const [server, raw, networks] = await Promise.all([
      this.#client.get<{ environment?: LxdServerEnvironment }>('/1.0', signal),
      this.#client.get<LxdInstance[]>(`/1.0/instances?recursion=2&${this.#scope()}`, signal),
      this.#readNetworks(signal),
    ]);
    this.#daemon = daemonKind(server?.environment, this.#client.target);
    const clustered = server?.environment?.server_clustered === true;
    const facts = networks === undefined ? this.#refetcher.evidence.networks : networkFacts(networks);
    const [members, leases] = await Promise.all([
      clustered ? this.#readMembers(signal) : [toStandaloneMember(server?.environment)],
      this.#readLeases(raw ?? [], facts, signal),
    ]);
    // The lease reads never reject: a list whose connection ended meanwhile must not land.
    signal.throwIfAborted();
    // Merged into what the refetcher knows now: lease lists it read meanwhile, for networks this list did not
    // read, stay.
    let evidence: Evidence = { networks: facts, leases: this.#refetcher.evidence.leases };
    for (const read of leases) evidence = withLeases(evidence, read.project, read.network, read.leases);
    this.#refetcher.evidence = evidence;
    const instances = (raw ?? []).map((r) => toInstance(r, evidence));
    const keep = [...listing.read];
    this.#store.dispatch({ type: 'listed', instances, members, clustered, keep, at: this.#clock.now() });
    if (networks !== undefined) this.#store.dispatch({ type: 'networks', subnets: toSubnets(networks), at: this.#clock.now() });
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
   * Reads LXD's networks: their subnets (the reverse zones lexa derives) and which hand out addresses (trust.ts).
   * Never rejects: a failure keeps what the last list learnt (the reverse zones, the networks' facts) until the
   * next list, and never costs the instances.
   */
  #readNetworks(signal: AbortSignal): Promise<LxdNetwork[] | undefined> {
    return this.#client.get<LxdNetwork[]>('/1.0/networks?recursion=1', signal).then(
      (n) => n ?? [],
      (err) => {
        if (!signal.aborted) this.#log.warn('lxd network list failed', { error: describeError(err) });
        return undefined;
      },
    );
  }

  /**
   * The lease lists of every lease-backed network (by `facts`) a running instance of `raw` is on, each read once
   * per project. A list that fails to read is left out (the last one read stays in force). Never rejects.
   */
  async #readLeases(
    raw: readonly LxdInstance[],
    facts: Evidence['networks'],
    signal: AbortSignal,
  ): Promise<{ project: string; network: string; leases: LxdLease[] }[]> {
    const scopes = new Map<string, { project: string; network: string }>();
    for (const r of raw) {
      if ((r.state?.status ?? r.status) !== 'Running') continue;
      const project = r.project || 'default';
      for (const network of leasingNetworks(r.expanded_devices, facts)) scopes.set(leaseScope(project, network), { project, network });
    }
    const lists = await Promise.all(
      [...scopes.values()].map(({ project, network }) =>
        this.#client
          .get<LxdLease[]>(`/1.0/networks/${encodeURIComponent(network)}/leases?project=${encodeURIComponent(project)}`, signal)
          .then(
            (leases) => ({ project, network, leases }),
            (err) => {
              if (!signal.aborted) this.#log.warn('lxd lease list failed', { network, project, error: describeError(err) });
              return undefined;
            },
          ),
      ),
    );
    return lists.filter((l) => l !== undefined);
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

  /** Applies one event that arrived at `arrived`. */
  #apply(ev: LxdEvent, signal: AbortSignal, arrived: number): void {
    const plan = planEvent(ev);
    const at = this.#clock.now();
    for (const key of plan.remove) {
      this.#refetcher.forget(key);
      this.#store.dispatch({ type: 'instance-gone', key, at });
      this.#reflected(key, arrived);
    }
    for (const t of plan.refetch) {
      this.#awaitRead(instanceKey(t.project, t.name), arrived);
      this.#refetcher.refetch(t.project, t.name, plan.settle, signal);
    }
    if (plan.profile) {
      for (const inst of this.#store.current.instancesUsingProfile(plan.profile.project, plan.profile.name)) {
        this.#awaitRead(inst.key, arrived);
        this.#refetcher.refetch(inst.project, inst.name, true, signal);
      }
    }
    if (plan.members) void this.#pollMembers(signal);
  }

  /**
   * The cluster's members with their addresses (host names resolved), taught to the client as failover
   * candidates.
   */
  async #readMembers(signal: AbortSignal): Promise<ClusterMember[]> {
    const raw = (await this.#client.get<LxdMember[]>('/1.0/cluster/members?recursion=1', signal)) ?? [];
    const members = await resolveMemberHosts(raw.map(toMember), undefined, (member, host, error) =>
      this.#log.warn('cluster member host name does not resolve', { member, host, error }),
    );
    this.#client.learnMembers?.(members.map((m) => m.url).filter((u) => u !== ''));
    return members;
  }

  #scheduleMemberPoll(): void {
    this.#clock.clearInterval(this.#memberTimer);
    if (!this.#store.current.clustered) return;
    const signal = this.#connAbort.signal;
    this.#memberTimer = this.#clock.setInterval(() => {
      if (!this.#memberPoll) void this.#pollMembers(signal);
    }, MEMBER_POLL_MS);
  }

  /**
   * Reads the member list; when a member's status changed (it died, or came back), re-lists: LXD reports its
   * instances differently now (unreachable.ts), and no event said so. A member back Online gets a second
   * re-list MEMBER_RETURN_RESYNC_MS later, for the events it did not forward meanwhile.
   */
  #pollMembers(signal: AbortSignal): Promise<void> {
    const poll = (async () => {
      const before = this.#store.current.members;
      const members = await this.#readMembers(signal);
      if (signal.aborted) return;
      this.#store.dispatch({ type: 'members', members, clustered: true, at: this.#clock.now() });
      const changed = members.filter((m) => before.get(m.name)?.status !== m.status);
      if (changed.length === 0 && members.length === before.size) return;
      this.#log.info('cluster members changed; re-listing', {
        members: changed.map((m) => `${m.name}: ${before.get(m.name)?.status ?? 'new'} → ${m.status}`),
      });
      this.#resync();
      if (changed.some((m) => m.status === 'Online')) {
        this.#clock.clearTimeout(this.#returnTimer);
        this.#returnTimer = this.#clock.setTimeout(() => this.#resync(), MEMBER_RETURN_RESYNC_MS);
      }
    })()
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd member list failed', { error: describeError(err) });
      })
      .finally(() => (this.#memberPoll = undefined));
    this.#memberPoll = poll;
    return poll;
  }

  /** An event asked to re-read `key`: remember when, unless an older event already waits for the same read. */
  #awaitRead(key: string, arrived: number): void {
    if (!this.#opts.observer?.eventApplied) return;
    if (!this.#pendingSince.has(key)) this.#pendingSince.set(key, arrived);
  }

  /** The snapshot now reflects events about `key`: report the delay since the oldest of them (or `arrived`). */
  #reflected(key: string, arrived?: number): void {
    const observer = this.#opts.observer;
    if (!observer?.eventApplied) return;
    const since = this.#pendingSince.get(key) ?? arrived;
    this.#pendingSince.delete(key);
    if (since !== undefined) notify(() => observer.eventApplied?.(this.#clock.now() - since));
  }

  /** Stores one instance as just read, and logs its config problems when they changed. */
  #stored(inst: Instance): void {
    this.#listing?.read.add(inst.key);
    const before = this.#store.current.instances.get(inst.key);
    this.#store.dispatch({ type: 'instance', instance: inst, at: this.#clock.now() });
    this.#reflected(inst.key);
    if (inst.configErrors.join() !== before?.configErrors.join()) this.#logProblems([inst]);
  }

  /** LXD answered 404 on a re-read. */
  #gone(key: string): void {
    this.#listing?.read.add(key);
    this.#store.dispatch({ type: 'instance-gone', key, at: this.#clock.now() });
    this.#reflected(key);
  }

  #logProblems(instances: readonly Instance[]): void {
    for (const inst of instances) {
      for (const problem of inst.configErrors) this.#log.warn('instance service config ignored', { instance: inst.key, problem });
    }
  }
}
