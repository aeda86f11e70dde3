import { describeError, type Logger } from '../log/index.js';
import { sleep, type Clock } from './clock.js';
import { LxdError, type LxdClient } from './lxd-client.js';
import { instanceKey, toInstance, type LxdInstance } from './lxd-model.js';
import type { Instance } from './model.js';

/**
 * When to re-read an instance after it starts, restarts or changes (ms after the previous read). LXD emits no
 * event when an instance gets its addresses: IPv4 arrives by DHCP ~0.1 s after start and the SLAAC IPv6 after
 * 1–2 s. So poll densely for 3 s, then thin out to ~13 s for slow DHCP or a static address applied late. Stops
 * early once addresses are complete.
 */
export const SETTLE_DELAYS_MS = [100, 150, 250, 250, 250, 250, 250, 250, 250, 250, 250, 500, 1000, 2000, 3000, 4000];

export interface RefetchOptions {
  readonly client: LxdClient;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Receives each instance as just read from LXD. */
  readonly onRead: (inst: Instance) => void;
  /** LXD answered 404 for this key: the instance is gone. */
  readonly onGone: (key: string) => void;
}

/**
 * Re-reads single instances when events name them, and keeps re-reading ("settles") those whose addresses are
 * still arriving. Holds no copy of LXD: what it reads goes to `onRead`/`onGone`.
 *
 * Contract: at most one read per instance is in flight; requests that arrive meanwhile coalesce into one more
 * read after it, so the last read always starts after the last request. Every read and wait ends when the
 * `signal` passed with it aborts (the connection it belongs to ended), and nothing is stored after that.
 */
export class Refetcher {
  readonly #opts: RefetchOptions;
  readonly #log: Logger;
  /** Reads in flight by key: `dirty` asks for one more read after this one, `settle` for a settle loop after it. */
  readonly #fetching = new Map<string, { dirty: boolean; settle: boolean }>();
  /** The settle loop that owns each key, by a number no other loop gets: a newer loop or a removal supersedes it. */
  readonly #settling = new Map<string, number>();
  #nextLoop = 0;

  constructor(opts: RefetchOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  /** Re-reads one instance (coalesced, see above); with `settle`, then settles it if it is running. */
  refetch(project: string, name: string, settle: boolean, signal: AbortSignal): void {
    const key = instanceKey(project, name);
    const inflight = this.#fetching.get(key);
    if (inflight) {
      inflight.dirty = true;
      inflight.settle ||= settle;
      return;
    }
    const entry = { dirty: false, settle };
    this.#fetching.set(key, entry);
    const run = async (): Promise<void> => {
      do {
        entry.dirty = false;
        const doSettle = entry.settle;
        entry.settle = false;
        const inst = await this.#read(project, name, signal);
        if (doSettle && inst?.running) void this.settle(project, name, inst, signal);
      } while (entry.dirty && !signal.aborted);
    };
    run()
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd instance read failed', { instance: key, error: describeError(err) });
      })
      .finally(() => this.#fetching.delete(key));
  }

  /**
   * Re-reads `first`'s instance on SETTLE_DELAYS_MS until its addresses are complete, it stops running, a newer
   * settle loop or `forget` takes the key over, or `signal` aborts. Never rejects.
   */
  async settle(project: string, name: string, first: Instance, signal: AbortSignal): Promise<void> {
    const key = instanceKey(project, name);
    const loop = ++this.#nextLoop;
    this.#settling.set(key, loop);
    try {
      let prev = first;
      for (const delay of SETTLE_DELAYS_MS) {
        if (complete(prev)) return;
        await sleep(this.#opts.clock, delay, signal);
        if (signal.aborted || this.#settling.get(key) !== loop) return;
        let inst: Instance | undefined;
        try {
          inst = await this.#read(project, name, signal);
        } catch (err) {
          if (!signal.aborted) this.#log.debug('lxd settle read failed', { instance: key, error: describeError(err) });
          continue;
        }
        if (!inst?.running) return;
        prev = inst;
      }
    } finally {
      if (this.#settling.get(key) === loop) this.#settling.delete(key);
    }
  }

  /** Ends any settle loop for `key`: the instance is gone, so there is nothing left to wait for. */
  forget(key: string): void {
    this.#settling.delete(key);
  }

  /** Reads one instance (with state); a 404 reports it gone. Returns what it read, or undefined. */
  async #read(project: string, name: string, signal: AbortSignal): Promise<Instance | undefined> {
    try {
      const raw = await this.#opts.client.get<LxdInstance>(
        `/1.0/instances/${encodeURIComponent(name)}?recursion=1&project=${encodeURIComponent(project)}`,
        signal,
      );
      if (signal.aborted) return undefined;
      const inst = toInstance({ ...raw, project: raw.project || project });
      this.#opts.onRead(inst);
      return inst;
    } catch (err) {
      if (err instanceof LxdError && err.status === 404) {
        if (signal.aborted) return undefined;
        this.#opts.onGone(instanceKey(project, name));
        return undefined;
      }
      throw err;
    }
  }
}

/** Every LXD-managed interface of a running instance has both a global IPv4 and a global IPv6. */
export function complete(inst: Instance): boolean {
  return inst.interfaces.length > 0 && inst.interfaces.every((i) => i.ipv4.length > 0 && i.ipv6.length > 0);
}
