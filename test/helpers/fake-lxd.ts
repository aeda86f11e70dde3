import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { LxdError, type EventSocket, type LxdClient } from '../../src/streams/lxd/lxd-client.js';
import type { LxdEvent, LxdInstance, LxdLease, LxdMember, LxdServerEnvironment } from '../../src/streams/lxd/lxd-model.js';
import type { LxdNetwork } from '../../src/streams/lxd/networks.js';
import type { FakeClock } from './fake-clock.js';

/**
 * A FAKE LxdClient for unit tests of the reflector: no LXD involved. It holds what "LXD" has (instances,
 * environment, members) and answers lists and per-instance reads from it the way LXD 5.0 does (404 for a missing
 * instance). Tests script the rest: an answer held back until released (its content taken when the request
 * arrived, as LXD would have sent it), delayed on the fake clock, or failed. Events go through FakeSocket.
 * The real LXD is exercised by test/integration.
 */

/**
 * An LXD instance as `recursion=2` returns it, trimmed to what lexa reads. Its addresses are also its NIC's static
 * `ipv4.address`/`ipv6.address`, so LXD vouches for them without a lease (src/streams/lxd/trust.ts); tests of trust
 * build their own devices.
 */
export function lxdInstance(
  name: string,
  opts: { status?: string; v4?: string; v6?: string; project?: string; profiles?: string[]; config?: Record<string, string>; lastUsedAt?: number } = {},
): LxdInstance {
  const status = opts.status ?? 'Running';
  const addresses = [
    ...(opts.v4 ? [{ family: 'inet', address: opts.v4, scope: 'global' }] : []),
    ...(opts.v6 ? [{ family: 'inet6', address: opts.v6, scope: 'global' }] : []),
    { family: 'inet6', address: 'fe80::1', scope: 'link' },
  ];
  return {
    name,
    project: opts.project ?? 'default',
    type: 'container',
    status,
    location: 'none',
    last_used_at: new Date(opts.lastUsedAt ?? 0).toISOString(),
    profiles: opts.profiles ?? ['default'],
    expanded_config: opts.config ?? {},
    expanded_devices: {
      eth0: {
        type: 'nic',
        network: 'lxdbr0',
        name: 'eth0',
        ...(opts.v4 ? { 'ipv4.address': opts.v4 } : {}),
        ...(opts.v6 ? { 'ipv6.address': opts.v6 } : {}),
      },
      root: { type: 'disk', path: '/' },
    },
    state: {
      status,
      network: {
        lo: { type: 'loopback', addresses: [{ family: 'inet', address: '127.0.0.1', scope: 'local' }] },
        eth0: { type: 'broadcast', addresses: status === 'Running' ? addresses : [] },
      },
    },
  };
}

/** A lifecycle event as LXD sends it. */
export function lifecycle(action: string, source: string, context?: Record<string, unknown>): LxdEvent {
  return { type: 'lifecycle', timestamp: new Date(0).toISOString(), location: 'none', project: 'default', metadata: { action, source, ...(context ? { context } : {}) } };
}

/**
 * How a scripted request is answered: after `delayMs` on the fake clock (or at once), with LXD's error `status` or
 * else the usual answer; or held until released (see `FakeLxd.hold`).
 */
export type Scripted = { readonly delayMs?: number; readonly status?: number; readonly error?: string } | { readonly held: true };

/** A request held back by `FakeLxd.hold`. */
export interface Held {
  /** Whether the request has arrived. */
  readonly arrived: boolean;
  /** Delivers the answer taken when the request arrived. */
  release(): void;
}

export class FakeLxd implements LxdClient {
  readonly target = 'fake-lxd';
  /** What LXD has, by `project/name`. */
  readonly instances = new Map<string, LxdInstance>();
  environment: LxdServerEnvironment = { server_name: 'fakehost', server_clustered: false, addresses: ['10.0.0.1:8443'] };
  members: LxdMember[] = [];
  /** DHCP leases by network name, as `/1.0/networks/<network>/leases` lists them. */
  readonly leases = new Map<string, LxdLease[]>();
  /** What `/1.0/networks?recursion=1` lists; undefined answers 404 (the reflector then keeps what it knew). */
  networks: LxdNetwork[] | undefined;
  /** Every GET path, in order. */
  readonly requests: string[] = [];
  /** Every events socket asked for, oldest first. */
  readonly sockets: FakeSocket[] = [];
  readonly #scripts: { match: RegExp; answer: Scripted; held?: { arrived: boolean; release: () => void; go: Promise<void> } }[] = [];

  constructor(readonly clock: FakeClock) {}

  /** Adds or replaces an instance in LXD. */
  put(raw: LxdInstance): void {
    this.instances.set(`${raw.project ?? 'default'}/${raw.name}`, raw);
  }

  delete(name: string, project = 'default'): void {
    this.instances.delete(`${project}/${name}`);
  }

  /** The next GET whose path matches is answered as scripted (once). */
  script(match: RegExp, answer: Scripted): void {
    this.#scripts.push({ match, answer });
  }

  /** The next GET whose path matches is held back until released; its answer is what LXD had on arrival. */
  hold(match: RegExp): Held {
    let release!: () => void;
    const go = new Promise<void>((resolve) => (release = resolve));
    const held = { arrived: false, release, go };
    this.#scripts.push({ match, answer: { held: true }, held });
    return { get arrived() { return held.arrived; }, release: () => release() };
  }

  /** The per-instance reads of `name` so far. */
  reads(name: string): number {
    return this.requests.filter((p) => p.startsWith(`/1.0/instances/${encodeURIComponent(name)}?`)).length;
  }

  /** The newest events socket. */
  get socket(): FakeSocket {
    const s = this.sockets.at(-1);
    if (!s) throw new Error('no events socket was opened');
    return s;
  }

  async get<T>(path: string, signal?: AbortSignal): Promise<T> {
    this.requests.push(path);
    const i = this.#scripts.findIndex((s) => s.match.test(path));
    const script = i >= 0 ? this.#scripts.splice(i, 1)[0] : undefined;
    const answer = this.#answer(path);
    let fail = () => undefined as void;
    const aborted = new Promise<never>((_, reject) => {
      fail = () => reject(new LxdError(`GET ${path}: This operation was aborted`, 0));
      if (signal?.aborted) fail();
      signal?.addEventListener('abort', fail, { once: true });
    });
    aborted.catch(() => undefined);
    try {
      if (script?.held) {
        script.held.arrived = true;
        await Promise.race([script.held.go, aborted]);
      } else if (script && !('held' in script.answer)) {
        const { delayMs, status, error } = script.answer;
        if (delayMs) await Promise.race([new Promise<void>((resolve) => this.clock.setTimeout(resolve, delayMs)), aborted]);
        if (status) throw new LxdError(`GET ${path}: ${error ?? `HTTP ${status}`}`, status);
      }
      await Promise.race([Promise.resolve(), aborted]);
    } finally {
      signal?.removeEventListener('abort', fail);
    }
    if (answer instanceof LxdError) throw answer;
    return answer as T;
  }

  events(query: string): EventSocket {
    const socket = new FakeSocket(query, this.clock);
    this.sockets.push(socket);
    return socket;
  }

  async close(): Promise<void> {}

  /** What LXD answers now, copied so later changes to the fake do not reach into it. */
  #answer(path: string): unknown {
    const url = new URL(path, 'http://lxd');
    const project = url.searchParams.get('project') ?? 'default';
    const all = url.searchParams.get('all-projects') === 'true';
    if (url.pathname === '/1.0') return structuredClone({ environment: this.environment });
    if (url.pathname === '/1.0/instances')
      return structuredClone([...this.instances.values()].filter((r) => all || (r.project ?? 'default') === project));
    if (url.pathname === '/1.0/cluster/members') return structuredClone(this.members);
    if (url.pathname === '/1.0/networks' && this.networks !== undefined) return structuredClone(this.networks);
    const lease = /^\/1\.0\/networks\/([^/]+)\/leases$/.exec(url.pathname);
    if (lease) return structuredClone(this.leases.get(decodeURIComponent(lease[1]!)) ?? []);
    const m = /^\/1\.0\/instances\/([^/]+)$/.exec(url.pathname);
    const raw = m ? this.instances.get(`${project}/${decodeURIComponent(m[1]!)}`) : undefined;
    if (raw) return structuredClone(raw);
    return new LxdError(`GET ${path}: not found`, 404);
  }
}

/**
 * A FAKE events websocket with the parts of `ws.WebSocket` lexa uses. The test plays LXD's side: `open`, `send`,
 * `keepalive`, `drop`, `refuse`. Like LXD it answers pings with pongs, unless `hung` (a stopped daemon).
 */
export class FakeSocket extends EventEmitter {
  readonly CONNECTING = 0 as const;
  readonly OPEN = 1 as const;
  readonly CLOSING = 2 as const;
  readonly CLOSED = 3 as const;
  readyState: 0 | 1 | 2 | 3 = 0;
  /** Pings lexa sent. */
  pings = 0;
  /** When set, LXD answers nothing, as a SIGSTOPped daemon. */
  hung = false;
  /** Fake time the socket was asked for. */
  readonly createdAt: number;
  /** Fake time the socket ended, once it has. */
  closedAt: number | undefined;

  constructor(
    readonly query: string,
    readonly clock: FakeClock,
  ) {
    super();
    this.createdAt = clock.now();
  }

  ping(): void {
    this.pings++;
    if (!this.hung && this.readyState === this.OPEN) process.nextTick(() => this.emit('pong', Buffer.alloc(0)));
  }

  /** Lexa ends the socket; as with `ws`, 'close' (1006) follows asynchronously. */
  terminate(): void {
    if (this.readyState === this.CLOSED) return;
    const connecting = this.readyState === this.CONNECTING;
    this.readyState = this.CLOSED;
    process.nextTick(() => {
      if (connecting) this.emit('error', new Error('WebSocket was closed before the connection was established'));
      this.#closed(1006);
    });
  }

  // LXD's side.

  open(): void {
    this.readyState = this.OPEN;
    this.emit('open');
  }

  send(ev: LxdEvent): void {
    this.emit('message', Buffer.from(JSON.stringify(ev)), false);
  }

  /** LXD's own ping, sent every 10 s. */
  keepalive(): void {
    this.emit('ping', Buffer.from('keepalive'));
  }

  /** The connection drops with no close frame, as when LXD is killed. */
  drop(code = 1006): void {
    if (this.readyState === this.CLOSED) return;
    this.readyState = this.CLOSED;
    this.#closed(code);
  }

  /** LXD refuses the upgrade with an HTTP error and a JSON body. */
  refuse(status: number, error: string): void {
    const res = Object.assign(new PassThrough(), { statusCode: status });
    this.emit('unexpected-response', {}, res);
    res.end(JSON.stringify({ type: 'error', error, error_code: status }));
  }

  #closed(code: number): void {
    this.closedAt = this.clock.now();
    this.emit('close', code, Buffer.alloc(0));
  }
}
