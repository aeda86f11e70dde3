/**
 * A SIMULATED LXD: the few endpoints lexa's reflector reads (`GET /1.0`, `GET /1.0/instances?recursion=2`,
 * `GET /1.0/instances/<name>?recursion=1`, `GET /1.0/networks?recursion=1` and the bridge's `/leases`, which vouch
 * for the addresses (src/streams/lxd/trust.ts), the `/1.0/events` websocket), served over a unix socket from an
 * in-memory table of running containers. It exists for what a real LXD cannot do on the machines lexa is built
 * on: thousands of instances (FACTS: ~200 busybox containers fit) and event bursts at a chosen rate. Everything
 * measured against it says so. Shapes follow LXD 5.0's JSON (sync envelope, lifecycle events with `source`).
 *
 * Control: `update(i)` gives container i a new IPv4 address and emits `instance-updated` for it, as LXD does for a
 * config change; `add(i)`/`remove(i)` emit `instance-created`+`instance-started` / `instance-deleted`.
 */
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import http from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { lxdRunningContainer } from './synthetic.js';

/** One simulated container: its name, its eth0's MAC and its current addresses on eth0 (all leased by the bridge). */
interface SimInstance {
  readonly name: string;
  readonly mac: string;
  ipv4: string;
  readonly ipv6: string;
}

/** The simulated managed bridge every container's eth0 is on. */
const BRIDGE = 'simbr0';

export interface SimLxd {
  /** The unix socket lexa's `server.lxd.socket` points at. */
  readonly socket: string;
  /** Instances currently listed. */
  readonly size: number;
  /** Name of the i-th instance (1-based), e.g. `sim-00042`. */
  name(i: number): string;
  /** The IPv4 address instance i has now. */
  address(i: number): string;
  /** Moves instance i to a new IPv4 address and emits `instance-updated`; returns the new address. */
  update(i: number): string;
  /** Requests served so far, by kind: list, read (one instance), server, leases (the bridge's lease list). */
  readonly requests: { list: number; read: number; server: number; leases: number };
  close(): Promise<void>;
}

const PAD = 5;

/** Addresses 10.(64 + i / 65025).x.y: distinct for up to ~4M instances, never .0 or .255. */
function ipv4Of(i: number, generation: number): string {
  const k = i + generation * 1_000_003;
  const host = k % 65_025;
  return `10.${64 + Math.floor(k / 65_025) % 64}.${Math.floor(host / 255)}.${(host % 255) + 1}`;
}

function lxdInstance(inst: SimInstance) {
  return { ...lxdRunningContainer(inst.name, inst.ipv4, inst.ipv6, BRIDGE, { 'volatile.eth0.hwaddr': inst.mac }), last_used_at: '2026-01-01T00:00:00Z' };
}

function sync(res: http.ServerResponse, metadata: unknown): void {
  const body = JSON.stringify({ type: 'sync', status: 'Success', status_code: 200, metadata });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function notFound(res: http.ServerResponse): void {
  const body = JSON.stringify({ type: 'error', error: 'Instance not found', error_code: 404 });
  res.writeHead(404, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Starts a simulated LXD with `count` running containers on a unix socket at `socket`. */
export async function startSimLxd(socket: string, count: number): Promise<SimLxd> {
  rmSync(socket, { force: true });
  const name = (i: number) => `sim-${String(i).padStart(PAD, '0')}`;
  const byName = new Map<string, SimInstance>();
  const generation = new Map<number, number>();
  for (let i = 1; i <= count; i++) {
    const mac = `00:16:3e:${[16, 8, 0].map((shift) => ((i >> shift) & 255).toString(16).padStart(2, '0')).join(':')}`;
    byName.set(name(i), { name: name(i), mac, ipv4: ipv4Of(i, 0), ipv6: `fd42:5::${i.toString(16)}` });
  }
  const requests = { list: 0, read: 0, server: 0, leases: 0 };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://lxd');
    if (url.pathname === '/1.0') {
      requests.server++;
      return sync(res, { environment: { server_name: 'sim', server_clustered: false, addresses: [] } });
    }
    if (url.pathname === '/1.0/instances') {
      requests.list++;
      return sync(res, [...byName.values()].map(lxdInstance));
    }
    // No subnets in the bridge's config: the reverse zones stay as they were without a network list.
    if (url.pathname === '/1.0/networks') return sync(res, [{ name: BRIDGE, type: 'bridge', managed: true, config: {} }]);
    if (url.pathname === `/1.0/networks/${BRIDGE}/leases`) {
      requests.leases++;
      return sync(
        res,
        [...byName.values()].flatMap((inst) =>
          [inst.ipv4, inst.ipv6].map((address) => ({ hostname: inst.name, hwaddr: inst.mac, address, type: 'dynamic', location: 'none' })),
        ),
      );
    }
    const m = /^\/1\.0\/instances\/([^/]+)$/.exec(url.pathname);
    if (m) {
      requests.read++;
      const inst = byName.get(decodeURIComponent(m[1]!));
      return inst ? sync(res, lxdInstance(inst)) : notFound(res);
    }
    notFound(res);
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ noServer: true });
  const watchers = new Set<WebSocket>();
  server.on('upgrade', (req, sock, head) => {
    if (!req.url?.startsWith('/1.0/events')) return sock.destroy();
    wss.handleUpgrade(req, sock, head, (ws) => {
      watchers.add(ws);
      ws.on('close', () => watchers.delete(ws));
      ws.on('error', () => watchers.delete(ws));
    });
  });
  server.listen(socket);
  await once(server, 'listening');

  const emit = (action: string, instanceName: string) => {
    const ev = JSON.stringify({
      type: 'lifecycle',
      timestamp: new Date().toISOString(),
      metadata: { action, source: `/1.0/instances/${instanceName}`, context: {} },
      location: 'none',
      project: 'default',
    });
    for (const ws of watchers) ws.send(ev);
  };

  return {
    socket,
    get size() {
      return byName.size;
    },
    name,
    address: (i) => byName.get(name(i))!.ipv4,
    update(i) {
      const inst = byName.get(name(i));
      if (!inst) throw new Error(`sim-lxd: no instance ${i}`);
      const g = (generation.get(i) ?? 0) + 1;
      generation.set(i, g);
      inst.ipv4 = ipv4Of(i, g);
      emit('instance-updated', inst.name);
      return inst.ipv4;
    },
    requests,
    async close() {
      for (const ws of watchers) ws.terminate();
      wss.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(socket, { force: true });
    },
  };
}
