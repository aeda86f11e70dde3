/**
 * Growth benchmark: the whole daemon (`node dist/cli.js server`) against a SIMULATED LXD (sim-lxd.ts) holding N
 * running containers, for N = 10, 100, 1,000 and 10,000: a real LXD cannot hold that many here. For each N it
 * measures, in one run:
 *   - start → ready: process spawn to the first `/readyz` 200 (the list of N instances folded and served);
 *   - RSS once ready;
 *   - event → answer: the simulated LXD moves one container to a new address and emits `instance-updated`; the
 *     time until lexa's UDP DNS answers the new address (sequential, median and p99 over the sample);
 *   - burst: the same for a burst of updates at once, until every name answers its new address;
 *   - server CPU per exact-name A query over UDP (lexa's utime + stime from /proc, over a fixed count);
 * and in-process, on a snapshot of N: one instance change folded (Snapshot.withInstance, p50/p99), and a
 * wildcard matching 10 names.
 *
 *   node dist/bench/growth.js [--sizes 10,100,1000,10000] [--queries 20000] [--events 50] [--burst 500]
 *
 * lexa runs with the V8 flags the shipped systemd unit gives it (its `Environment=NODE_OPTIONS=`, see
 * examples/systemd/lexa.service), so the RSS is what an installed daemon holds; bare Node (an empty program, the
 * same flags) is measured in the same run as the peer of the RSS rows.
 */
import { spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { Snapshot, toInstance, type Instance } from '../streams/index.js';
import { startSimLxd, type SimLxd } from './sim-lxd.js';
import { recordRow } from './rows.js';
import { cpuPerQuery, rss, startReadyDaemon, stop, udpClient, unitNodeOptions, until } from './daemon-run.js';

/** An event whose new address is not answered by then counts as lost. */
const ANSWER_TIMEOUT_MS = 10_000;
/** How long bare Node idles before its RSS is read: past its start-up, as lexa is once ready. */
const BARE_SETTLE_MS = 500;
interface Row {
  n: number;
  readyMs: number;
  rssMb: number;
  eventP50: number;
  eventP99: number;
  burstMs: number;
  cpuUsPerQuery: number;
  foldP50: number;
  foldP99: number;
  wildcardUs: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '10,100,1000,10000' },
      queries: { type: 'string', default: '20000' },
      events: { type: 'string', default: '50' },
      burst: { type: 'string', default: '500' },
    },
  });
  const sizes = values.sizes.split(',').map(Number);
  console.log('lexa growth benchmark: the daemon against a SIMULATED LXD (src/bench/sim-lxd.ts), N running containers;');
  console.log(`Node ${process.version}; ${values.queries} UDP queries for CPU, ${values.events} single events, bursts of ${values.burst}.\n`);
  const nodeOptions = unitNodeOptions();
  console.log(`lexa runs with NODE_OPTIONS="${nodeOptions}" (examples/systemd/lexa.service).`);
  const bareMb = await bareNodeRss(nodeOptions);
  console.log(`Bare Node (an idle empty program, the same NODE_OPTIONS): RSS ${bareMb.toFixed(1)} MB.\n`);
  const rows: Row[] = [];
  for (const n of sizes) rows.push(await measure(n, Number(values.queries), Number(values.events), Number(values.burst), nodeOptions));
  for (const r of rows) {
    if (r.n === 10 || r.n === 10_000) recordRow(`rss-${r.n}`, `RSS once ready, N = ${r.n.toLocaleString('en')} (SIMULATED LXD)`, `${r.rssMb.toFixed(1)} MB`, `bare Node ${bareMb.toFixed(1)} MB`, r.rssMb / bareMb);
  }
  const head = ['N', 'start→ready ms', 'RSS MB', 'event→answer p50/p99 ms', 'burst ms', 'CPU µs/query', 'fold p50/p99 µs', 'wildcard µs'];
  const lines = rows.map((r) => [
    String(r.n),
    r.readyMs.toFixed(0),
    r.rssMb.toFixed(1),
    `${r.eventP50.toFixed(1)} / ${r.eventP99.toFixed(1)}`,
    r.burstMs.toFixed(0),
    r.cpuUsPerQuery.toFixed(1),
    `${r.foldP50.toFixed(1)} / ${r.foldP99.toFixed(1)}`,
    r.wildcardUs.toFixed(1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(fmt(head));
  for (const l of lines) console.log(fmt(l));
  const base = rows[0]!;
  console.log(`\nCPU per query at N=${rows.at(-1)!.n} over N=${base.n}: ${(rows.at(-1)!.cpuUsPerQuery / base.cpuUsPerQuery).toFixed(2)}×`);
}

/** RSS (MB) of an idle `node` running nothing, with `nodeOptions`: the floor every Node daemon starts from. */
async function bareNodeRss(nodeOptions: string): Promise<number> {
  const child = spawn(process.execPath, ['-e', `setTimeout(() => {}, ${BARE_SETTLE_MS * 4})`], { stdio: 'ignore', env: { ...process.env, NODE_OPTIONS: nodeOptions } });
  await new Promise((r) => setTimeout(r, BARE_SETTLE_MS));
  const kb = rss(child.pid!);
  await stop(child);
  return kb / 1024;
}

async function measure(n: number, queries: number, events: number, burst: number, nodeOptions: string): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-growth-'));
  const sim = await startSimLxd(join(dir, 'lxd.socket'), n);
  const config = join(dir, 'lexa.hcl');
  writeFileSync(
    config,
    `server {
  lxd {
    socket = "${sim.socket}"
  }
  tls {
    bind {
      host = "127.0.0.1"
      port = 0
    }
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 0
    }
  }
  log {
    level = "info"
  }
}
`,
  );
  const { child, dnsPort, readyMs, rssMb } = await startReadyDaemon(config, nodeOptions);
  try {
    const client = await udpClient();
    const ask = askFn(client, dnsPort);

    // Single events, one after another: update, then ask until the new address is answered.
    const lat: number[] = [];
    for (let k = 0; k < Math.min(events, n); k++) {
      const i = 1 + ((k * 7919) % n);
      const t0 = performance.now();
      const addr = sim.update(i);
      await until(async () => ((await ask(`${sim.name(i)}.lexa`)) === addr ? true : undefined), ANSWER_TIMEOUT_MS, 'new address', 0);
      lat.push(performance.now() - t0);
    }
    // A burst: many updates at once; done when every one of them answers its new address.
    const count = Math.min(burst, n);
    const t1 = performance.now();
    const wanted = new Map<number, string>();
    for (let k = 0; k < count; k++) wanted.set(1 + k, sim.update(1 + k));
    for (const [i, addr] of wanted) {
      await until(async () => ((await ask(`${sim.name(i)}.lexa`)) === addr ? true : undefined), ANSWER_TIMEOUT_MS, 'burst address', 0);
    }
    const burstMs = performance.now() - t1;

    // CPU per query: a fixed count of exact-name queries, 64 in flight, the server's own CPU time.
    const names = Array.from({ length: 100 }, (_, k) => `${sim.name(1 + ((k * 104_729) % n))}.lexa`);
    const cpuUsPerQuery = await cpuPerQuery(child.pid!, client, dnsPort, names, queries, 64);
    client.close();

    const fold = foldCost(n);
    return { n, readyMs, rssMb, eventP50: pct(lat, 0.5), eventP99: pct(lat, 0.99), burstMs, cpuUsPerQuery, ...fold };
  } finally {
    await stop(child);
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** In-process: one instance replaced in a snapshot of n (p50/p99 µs), and a 10-name wildcard lookup (µs). */
function foldCost(n: number): { foldP50: number; foldP99: number; wildcardUs: number } {
  const make = (i: number, v4: string): Instance =>
    toInstance({
      name: `web-${String(i).padStart(5, '0')}`,
      status: 'Running',
      expanded_devices: { eth0: { type: 'nic', name: 'eth0' } },
      state: { status: 'Running', network: { eth0: { type: 'broadcast', addresses: [{ family: 'inet', address: v4, scope: 'global' }] } } },
    });
  let snap = Snapshot.empty().withList(Array.from({ length: n }, (_, k) => make(k + 1, `10.1.${(k >> 8) & 255}.${k & 255}`)), [], false, Date.now());
  const samples: number[] = [];
  for (let k = 0; k < 2000; k++) {
    const i = 1 + ((k * 7919) % n);
    const inst = make(i, `10.2.${k >> 8 & 255}.${k & 255}`);
    const t0 = performance.now();
    snap = snap.withInstance(inst);
    samples.push((performance.now() - t0) * 1000);
  }
  snap.matchHosts('web-0001*');
  const t0 = performance.now();
  const rounds = 2000;
  for (let k = 0; k < rounds; k++) snap.matchHosts('web-0001*');
  const wildcardUs = ((performance.now() - t0) * 1000) / rounds;
  return { foldP50: pct(samples, 0.5), foldP99: pct(samples, 0.99), wildcardUs };
}

type Ask = (name: string) => Promise<string | undefined>;

/** A one-at-a-time UDP A query: the first address answered, or undefined (NXDOMAIN, timeout). */
function askFn(client: dgram.Socket, port: number): Ask {
  let id = 0;
  const pending = new Map<number, (addr: string | undefined) => void>();
  client.on('message', (msg) => {
    try {
      const p = dnsPacket.decode(msg);
      const done = pending.get(p.id ?? -1);
      if (!done) return;
      pending.delete(p.id!);
      const a = p.answers?.find((r) => r.type === 'A');
      done(a !== undefined && a.type === 'A' ? String(a.data) : undefined);
    } catch {
      // not ours
    }
  });
  return (name) =>
    new Promise((resolve) => {
      id = (id + 1) & 0xffff;
      const my = id;
      const timer = setTimeout(() => {
        pending.delete(my);
        resolve(undefined);
      }, 1000);
      pending.set(my, (addr) => {
        clearTimeout(timer);
        resolve(addr);
      });
      client.send(dnsPacket.encode({ type: 'query', id: my, questions: [{ name, type: 'A' }] }), port, '127.0.0.1');
    });
}






function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}


void main().catch((err: unknown) => {
  console.error(`growth: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});

export type { SimLxd };
