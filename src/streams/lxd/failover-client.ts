import type { EventSocket, LxdClient } from './lxd-client.js';

/**
 * An LxdClient over the members of an LXD cluster: every call goes to one member (the current target); when the
 * reflector finds that member unreachable it calls `failover()` and the next call goes to the next candidate.
 * Any member serves the whole cluster (its instances, its members, and every member's events, once each), so
 * which one lexa talks to changes nothing it learns.
 *
 * Candidates, in order: the origins from the configuration (several `bind` blocks in `server.lxd`), then the
 * members' URLs LXD reported (`learnMembers`), so failover needs no configuration change. A member a later list no
 * longer reports stops being a candidate, unless it was configured.
 *
 * Contract: `target` and the client behind it change only in `failover()`; a request or socket already opened
 * stays on the member it was opened on (the reflector aborts them when its connection ends).
 */
export class FailoverClient implements LxdClient {
  readonly #configured: readonly string[];
  readonly #connect: (origin: string) => LxdClient;
  #learnt: readonly string[] = [];
  #current: LxdClient;
  /** Clients replaced by failover, closed on `close()`: requests of theirs may still be ending. */
  readonly #retired = new Set<LxdClient>();

  /** `origins` (`https://host:port`, at least one) are tried first, in order; `connect` makes a client for one. */
  constructor(origins: readonly string[], connect: (origin: string) => LxdClient) {
    if (origins.length === 0) throw new Error('FailoverClient needs at least one origin');
    this.#configured = origins.map(normalise);
    this.#connect = connect;
    this.#current = connect(this.#configured[0]!);
  }

  get target(): string {
    return this.#current.target;
  }

  /** Every member lexa would try, in order: configured first, then learnt from LXD. */
  get candidates(): readonly string[] {
    return [...this.#configured, ...this.#learnt.filter((o) => !this.#configured.includes(o))];
  }

  get<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.#current.get<T>(path, signal);
  }

  patch(path: string, body: unknown, signal?: AbortSignal): Promise<void> {
    if (!this.#current.patch) return Promise.reject(new Error('this LXD client cannot write'));
    return this.#current.patch(path, body, signal);
  }

  events(query: string): EventSocket {
    return this.#current.events(query);
  }

  learnMembers(urls: readonly string[]): void {
    const origins: string[] = [];
    for (const url of urls) {
      const o = originOf(url);
      if (o !== undefined && !origins.includes(o)) origins.push(o);
    }
    this.#learnt = origins;
  }

  failover(): string {
    const all = this.candidates;
    if (all.length <= 1) return this.target;
    const at = all.indexOf(normalise(this.target));
    // A target that is no longer a candidate (a member removed from the cluster) restarts the round at the first.
    const next = all[(at + 1) % all.length]!;
    this.#retired.add(this.#current);
    this.#current = this.#connect(next);
    return this.target;
  }

  async close(): Promise<void> {
    const all = [this.#current, ...this.#retired];
    this.#retired.clear();
    await Promise.allSettled(all.map((c) => c.close()));
  }
}

/** `https://host:port` of a member URL as LXD reports it (`https://10.77.0.11:8443`), or undefined if unusable. */
export function originOf(url: string): string | undefined {
  // Not `new URL`: it drops an explicit :443 (https's default), which is not LXD's default port.
  const m = /^https:\/\/(\[[0-9a-f:.]+\]|[^\s:/?#[\]@]+)(?::(\d{1,5}))?(?:[/?#]|$)/i.exec(url.trim());
  if (!m || Number(m[2] ?? LXD_PORT) > 65535) return undefined;
  return `https://${m[1]!.toLowerCase()}:${Number(m[2] ?? LXD_PORT)}`;
}

/** LXD's HTTPS port when an address gives none. */
const LXD_PORT = 8443;

function normalise(origin: string): string {
  const o = originOf(origin);
  if (o === undefined) throw new Error(`not an https origin: ${origin}`);
  return o;
}
