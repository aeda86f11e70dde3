import type { Bind } from '../config/index.js';
import type { ListenerCounters } from '../metrics/index.js';
import type { OpenedTransport } from '../servers/descriptor.js';
import type { TlsMaterial } from '../tls/index.js';

/**
 * The daemon's listeners, one per (transport, bind address), so that a reload can open the binds added and close
 * those removed while every other listener goes on serving untouched.
 */

/** One listener the configuration asks for. */
export interface ListenerSpec {
  /** The transport's name in the registry (servers/registry.ts): 'dns', 'dot', ... */
  readonly transport: string;
  readonly bind: Bind;
  /**
   * What else it is opened with that cannot change while it runs (the REST API's client CA): a spec whose variant
   * differs from the running one's closes that listener and opens a new one on the same bind.
   */
  readonly variant?: string;
  /** Opens it; the counters (if any) are the DNS metrics of what it serves, given the bound port by the set. */
  open(): Promise<OpenedTransport>;
}

interface Running extends OpenedTransport {
  readonly spec: ListenerSpec;
  readonly port: number;
}

const keyOf = (s: ListenerSpec) => `${s.transport}|${s.bind.host}|${s.bind.port}${s.variant ? `|${s.variant}` : ''}`;

export class ListenerSet {
  readonly #running = new Map<string, Running>();
  /** Keys in the order of the last sync's specs: the order ports are reported in. */
  #order: string[] = [];

  /**
   * Makes the running listeners exactly `specs`: closes those no longer asked for, then opens the new ones in
   * order. With `onError`, a listener that fails to open is reported and skipped; without it the first failure
   * rejects (start-up), leaving what was opened running for the caller to close.
   */
  async sync(specs: readonly ListenerSpec[], onError?: (spec: ListenerSpec, err: unknown) => void): Promise<{ opened: string[]; closed: string[] }> {
    const wanted = new Map(specs.map((s) => [keyOf(s), s]));
    const closed: string[] = [];
    for (const [key, r] of [...this.#running]) {
      if (wanted.has(key)) continue;
      this.#running.delete(key);
      await r.listeners.close();
      closed.push(key);
    }
    const opened: string[] = [];
    this.#order = [...wanted.keys()];
    for (const [key, spec] of wanted) {
      if (this.#running.has(key)) continue;
      try {
        const o = await spec.open();
        const port = o.listeners.ports[0] ?? spec.bind.port;
        for (const c of o.counters ?? []) c.bound(port);
        this.#running.set(key, { ...o, spec, port });
        opened.push(key);
      } catch (err) {
        if (!onError) throw err;
        onError(spec, err);
      }
    }
    return { opened, closed };
  }

  /** Bound ports of `transport`, in the order of its binds. */
  ports(transport: string): number[] {
    return this.#order.flatMap((k) => {
      const r = this.#running.get(k);
      return r && r.spec.transport === transport ? [r.port] : [];
    });
  }

  /** Hands a new certificate to every running listener of `transport`. Throws (changing none) on a bad pair. */
  setTls(transport: string, m: TlsMaterial): void {
    for (const r of this.#running.values()) if (r.spec.transport === transport) r.listeners.setTls?.(m);
  }

  /** DNS counters of every running listener. */
  *counters(): Iterable<ListenerCounters> {
    for (const r of this.#running.values()) yield* r.counters ?? [];
  }

  /** Closes everything, newest first. */
  async close(): Promise<void> {
    const all = [...this.#running.values()].reverse();
    this.#running.clear();
    await Promise.allSettled(all.map((r) => r.listeners.close()));
  }
}
