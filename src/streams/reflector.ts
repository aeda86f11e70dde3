import type WebSocket from 'ws';
import type { Logger } from '../log/index.js';
import { LxdError, type LxdClient } from './lxd-client.js';
import {
  instanceKey,
  toInstance,
  toMember,
  toStandaloneMember,
  type LxdEvent,
  type LxdServerEnvironment,
  type LxdInstance,
  type LxdMember,
} from './lxd-model.js';
import type { Instance } from './model.js';
import { planEvent } from './plan.js';
import type { SnapshotStore } from './store.js';

/**
 * The reflector keeps a SnapshotStore equal to LXD, client-go style:
 *   1. open the events websocket (so nothing that happens during the list is missed),
 *   2. list every instance (and cluster member) and replace the snapshot,
 *   3. apply events as they come, re-reading what each names,
 *   4. when the socket dies or goes silent, back off and start again at 1 (LXD replays nothing).
 * A periodic full re-list repairs anything a lost event would leave wrong.
 */

/** First reconnect delay; doubles per failed attempt up to the maximum, with full jitter. */
export const RECONNECT_BASE_MS = 500;
/** Cap on the reconnect delay: a restarted LXD is back within seconds and names must follow it quickly; one
 * attempt per ~5 s does not hammer a dead one. */
export const RECONNECT_MAX_MS = 5_000;
/**
 * When to re-read an instance after it starts, restarts or changes (ms after the previous read). IPv4 arrives by
 * DHCP ~0.1 s after start and the SLAAC IPv6 after 1–2 s, with no event (FACTS §2): poll densely for 3 s, then
 * thin out to ~13 s for slow DHCP or a static address applied late. Stops early once addresses are complete.
 */
export const SETTLE_DELAYS_MS = [100, 150, 250, 250, 250, 250, 250, 250, 250, 250, 250, 500, 1000, 2000, 3000, 4000];
/**
 * A list can catch an instance that started moments ago, before its addresses arrived; no event will follow. Those
 * that started within this window and lack addresses are re-read on the settle schedule. Bounded by recency so a
 * host full of IPv4-only instances is not polled after every re-list.
 */
export const RECENT_START_MS = 30_000;

export interface ReflectorOptions {
  readonly project: string;
  readonly allProjects: boolean;
  readonly resyncIntervalMs: number;
  readonly watchdogMs: number;
  readonly logger: Logger;
}

export class Reflector {
  readonly #client: LxdClient;
  readonly #store: SnapshotStore;
  readonly #opts: ReflectorOptions;
  readonly #log: Logger;
  #stopped = false;
  #ws: WebSocket | undefined;
  /** Aborts every request of the current connection when it ends. */
  #connAbort = new AbortController();
  #running: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  /** Per-instance re-read bookkeeping: one read in flight per key; a newer request marks it dirty. */
  readonly #fetching = new Map<string, { dirty: boolean; settle: boolean }>();
  /** Generation per key: a newer event supersedes an older settle loop. */
  readonly #settleGen = new Map<string, number>();
  /** Profiles each instance uses, to re-read the right instances on `profile-updated`. */
  readonly #profiles = new Map<string, readonly string[]>();
  #resyncTimer: NodeJS.Timeout | undefined;
  #connections = 0;

  constructor(client: LxdClient, store: SnapshotStore, opts: ReflectorOptions) {
    this.#client = client;
    this.#store = store;
    this.#opts = opts;
    this.#log = opts.logger;
  }

  /** Starts the list-and-watch loop. Returns at once; progress shows in the store. */
  start(): void {
    if (this.#running) return;
    this.#running = this.#loop();
  }

  /** Stops watching; the store keeps its last snapshot. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#connAbort.abort();
    this.#ws?.terminate();
    this.#wake?.();
    clearInterval(this.#resyncTimer);
    await this.#running;
  }

  /** Drops the events connection as if the network cut it (for tests and operators' `kill -USR2`-style use). */
  dropConnection(): void {
    this.#ws?.terminate();
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const started = Date.now();
      try {
        await this.#connectOnce();
      } catch (err) {
        if (this.#stopped) break;
        this.#log.warn('lxd connection failed', { target: this.#client.target, error: describe(err) });
      }
      this.#connAbort.abort();
      this.#store.dispatch({ type: 'connection', connected: false, at: Date.now() });
      if (this.#stopped) break;
      // A connection that stayed up a while was healthy: start the backoff over.
      failures = Date.now() - started > this.#opts.watchdogMs ? 0 : failures + 1;
      const delay = Math.random() * Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(failures, 10));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** One connection's life: open events, list, then apply events until the socket ends. */
  async #connectOnce(): Promise<void> {
    this.#connAbort = new AbortController();
    const signal = this.#connAbort.signal;
    const scope = this.#opts.allProjects ? 'all-projects=true' : `project=${encodeURIComponent(this.#opts.project)}`;
    const ws = this.#client.events(`type=lifecycle&${scope}`);
    this.#ws = ws;
    const pending: LxdEvent[] = [];
    let listed = false;
    let lastSeen = Date.now();

    const closed = new Promise<void>((resolve, reject) => {
      ws.on('unexpected-response', (_req, res) => {
        // LXD explains a refused upgrade in a JSON body (e.g. "Project not found"): read a little of it.
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body = (body + chunk).slice(0, 4096)));
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
      ws.on('close', (code) => {
        if (listed) this.#log.warn('lxd events connection closed', { target: this.#client.target, code });
        resolve();
      });
    });
    closed.catch(() => undefined);

    ws.on('message', (data) => {
      lastSeen = Date.now();
      let ev: LxdEvent;
      try {
        ev = JSON.parse(data.toString()) as LxdEvent;
      } catch {
        this.#log.warn('lxd sent an unreadable event', { bytes: String(data).length });
        return;
      }
      if (listed) this.#apply(ev);
      else pending.push(ev);
    });
    ws.on('ping', () => (lastSeen = Date.now()));
    ws.on('pong', () => (lastSeen = Date.now()));

    await Promise.race([new Promise<void>((resolve) => ws.once('open', () => resolve())), closed]);
    if (ws.readyState !== ws.OPEN) throw new LxdError('events: connection closed before it opened', 0);

    // Watchdog: LXD pings every 10 s, and we ping it too, so a hung daemon (which still holds the TCP
    // connection open) is noticed within watchdogMs.
    const tick = Math.max(250, Math.floor(this.#opts.watchdogMs / 4));
    const watchdog = setInterval(() => {
      if (Date.now() - lastSeen > this.#opts.watchdogMs) {
        this.#log.warn('lxd went silent; reconnecting', { target: this.#client.target, silentMs: Date.now() - lastSeen });
        ws.terminate();
      } else if (ws.readyState === ws.OPEN) ws.ping();
    }, tick);

    try {
      await this.#list(signal);
      this.#connections++;
      listed = true;
      this.#store.dispatch({ type: 'connection', connected: true, at: Date.now() });
      this.#log.info(this.#connections === 1 ? 'lxd connected' : 'lxd reconnected', {
        target: this.#client.target,
        instances: this.#store.current.instances.size,
        buffered: pending.length,
      });
      for (const ev of pending.splice(0)) this.#apply(ev);
      this.#scheduleResync();
      await closed;
    } finally {
      clearInterval(watchdog);
      clearInterval(this.#resyncTimer);
      ws.terminate();
    }
  }

  /** Full list: instances (and members when clustered), replacing the snapshot. */
  async #list(signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const scope = this.#opts.allProjects ? 'all-projects=true' : `project=${encodeURIComponent(this.#opts.project)}`;
    const [server, raw] = await Promise.all([
      this.#client.get<{ environment?: LxdServerEnvironment }>('/1.0', signal),
      this.#client.get<LxdInstance[]>(`/1.0/instances?recursion=2&${scope}`, signal),
    ]);
    const clustered = server?.environment?.server_clustered === true;
    const members = clustered
      ? ((await this.#client.get<LxdMember[]>('/1.0/cluster/members?recursion=1', signal)) ?? []).map(toMember)
      : [toStandaloneMember(server?.environment)];
    const instances = (raw ?? []).map((r) => toInstance(r));
    this.#profiles.clear();
    for (const r of raw ?? []) this.#profiles.set(instanceKey(r.project || 'default', r.name ?? ''), r.profiles ?? []);
    this.#store.dispatch({ type: 'listed', instances, members, clustered, at: Date.now() });
    this.#logProblems(instances);
    const now = Date.now();
    for (const [i, inst] of instances.entries()) {
      const startedAt = Date.parse(raw?.[i]?.last_used_at ?? '');
      if (inst.running && !complete(inst) && now - startedAt < RECENT_START_MS) void this.#settle(inst.project, inst.name, inst, signal);
    }
    this.#log.debug('lxd listed', { instances: instances.length, members: members.length, ms: Date.now() - started });
  }

  #scheduleResync(): void {
    clearInterval(this.#resyncTimer);
    if (this.#opts.resyncIntervalMs <= 0) return;
    this.#resyncTimer = setInterval(() => {
      const signal = this.#connAbort.signal;
      this.#list(signal)
        .then(() => this.#log.info('lxd resynced', { instances: this.#store.current.instances.size }))
        .catch((err) => this.#log.warn('lxd resync failed', { error: describe(err) }));
    }, this.#opts.resyncIntervalMs);
    this.#resyncTimer.unref();
  }

  #apply(ev: LxdEvent): void {
    const plan = planEvent(ev);
    const at = Date.now();
    for (const key of plan.remove) {
      this.#settleGen.set(key, (this.#settleGen.get(key) ?? 0) + 1);
      this.#profiles.delete(key);
      this.#store.dispatch({ type: 'instance-gone', key, at });
    }
    for (const t of plan.refetch) this.#refetch(t.project, t.name, plan.settle);
    if (plan.profile) {
      for (const [key, profiles] of this.#profiles) {
        const [project, ...rest] = key.split('/');
        if (project === plan.profile.project && profiles.includes(plan.profile.name)) this.#refetch(project!, rest.join('/'), true);
      }
    }
    if (plan.members) {
      this.#client
        .get<LxdMember[]>('/1.0/cluster/members?recursion=1', this.#connAbort.signal)
        .then((m) => this.#store.dispatch({ type: 'members', members: (m ?? []).map(toMember), clustered: true, at: Date.now() }))
        .catch((err) => this.#log.warn('lxd member list failed', { error: describe(err) }));
    }
  }

  /**
   * Re-reads one instance. At most one read per instance is in flight; requests that arrive meanwhile coalesce
   * into one more read after it. With `settle`, keeps re-reading on SETTLE_DELAYS_MS until addresses are complete.
   */
  #refetch(project: string, name: string, settle: boolean): void {
    const key = instanceKey(project, name);
    const inflight = this.#fetching.get(key);
    if (inflight) {
      inflight.dirty = true;
      inflight.settle ||= settle;
      return;
    }
    const entry = { dirty: false, settle };
    this.#fetching.set(key, entry);
    const signal = this.#connAbort.signal;
    const run = async (): Promise<void> => {
      do {
        entry.dirty = false;
        const doSettle = entry.settle;
        entry.settle = false;
        const inst = await this.#read(project, name, signal);
        if (doSettle && inst?.running) void this.#settle(project, name, inst, signal);
      } while (entry.dirty && !signal.aborted);
    };
    run()
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd instance read failed', { instance: key, error: describe(err) });
      })
      .finally(() => this.#fetching.delete(key));
  }

  /** Reads one instance (with state) into the store; a 404 removes it. Returns what it stored. */
  async #read(project: string, name: string, signal: AbortSignal): Promise<Instance | undefined> {
    const key = instanceKey(project, name);
    try {
      const raw = await this.#client.get<LxdInstance>(
        `/1.0/instances/${encodeURIComponent(name)}?recursion=1&project=${encodeURIComponent(project)}`,
        signal,
      );
      if (signal.aborted) return undefined;
      const inst = toInstance({ ...raw, project: raw.project || project });
      this.#profiles.set(key, raw.profiles ?? []);
      const before = this.#store.current.instances.get(key);
      this.#store.dispatch({ type: 'instance', instance: inst, at: Date.now() });
      if (inst.configErrors.join() !== before?.configErrors.join()) this.#logProblems([inst]);
      return inst;
    } catch (err) {
      if (err instanceof LxdError && err.status === 404) {
        this.#profiles.delete(key);
        this.#store.dispatch({ type: 'instance-gone', key, at: Date.now() });
        return undefined;
      }
      throw err;
    }
  }

  async #settle(project: string, name: string, first: Instance, signal: AbortSignal): Promise<void> {
    const key = instanceKey(project, name);
    const gen = (this.#settleGen.get(key) ?? 0) + 1;
    this.#settleGen.set(key, gen);
    let prev = first;
    for (const delay of SETTLE_DELAYS_MS) {
      if (complete(prev)) return;
      await new Promise((r) => setTimeout(r, delay));
      if (signal.aborted || this.#stopped || this.#settleGen.get(key) !== gen) return;
      let inst: Instance | undefined;
      try {
        inst = await this.#read(project, name, signal);
      } catch (err) {
        if (!signal.aborted) this.#log.debug('lxd settle read failed', { instance: key, error: describe(err) });
        continue;
      }
      if (!inst?.running) return;
      prev = inst;
    }
  }

  #logProblems(instances: readonly Instance[]): void {
    for (const inst of instances) {
      for (const problem of inst.configErrors) this.#log.warn('instance service config ignored', { instance: inst.key, problem });
    }
  }
}

/** Every LXD-managed interface of a running instance has both a global IPv4 and a global IPv6. */
function complete(inst: Instance): boolean {
  return inst.interfaces.length > 0 && inst.interfaces.every((i) => i.ipv4.length > 0 && i.ipv6.length > 0);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}
