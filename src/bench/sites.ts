/**
 * Three sites (docs/sites.md): the whole daemon (`node dist/cli.js server`) watching three SIMULATED LXDs
 * (sim-lxd.ts) of N containers each, against the same daemon watching one of them, measured the same way in one
 * run: start → ready (process spawn to `/readyz` 200: every site listed), RSS once ready, and lexa's CPU per UDP
 * query (utime + stime from /proc over a fixed count of exact A queries: `<host>.<site>.lexa` spread over the sites,
 * `<host>.lexa` for one site). A real LXD per site cannot run here; every figure says SIMULATED.
 *
 *   node dist/bench/sites.js [--instances 1000] [--queries 20000]
 *
 * lexa runs with the NODE_OPTIONS of the systemd unit, as in growth.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuPerQuery, startReadyDaemon, stop, udpClient, unitNodeOptions } from './daemon-run.js';
import { recordRow } from './rows.js';
import { startSimLxd, type SimLxd } from './sim-lxd.js';

/** Queries in flight during the CPU measurement. */
const WINDOW = 64;
const SITE_NAMES = ['east', 'west', 'lab'] as const;

interface Figures {
  readonly readyMs: number;
  readonly rssMb: number;
  readonly cpuUsPerQuery: number;
}

/** Runs lexa over `sims` (named sites when more than one) and measures it. */
async function measure(sims: readonly SimLxd[], queries: number, dir: string): Promise<Figures> {
  const named = sims.length > 1;
  const blocks = sims.map((sim, k) => `  lxd {\n${named ? `    name = "${SITE_NAMES[k]}"\n` : ''}    socket = "${sim.socket}"\n  }\n`).join('');
  const config = join(dir, `lexa-${sims.length}.hcl`);
  writeFileSync(config, `server {\n${blocks}  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n`);
  const { child, dnsPort, readyMs, rssMb } = await startReadyDaemon(config, unitNodeOptions());
  try {
    const client = await udpClient();
    const n = sims[0]!.size;
    const names = Array.from({ length: 99 }, (_, k) => {
      const host = sims[0]!.name(1 + ((k * 104_729) % n));
      return named ? `${host}.${SITE_NAMES[k % sims.length]}.lexa` : `${host}.lexa`;
    });
    const cpuUsPerQuery = await cpuPerQuery(child.pid!, client, dnsPort, names, queries, WINDOW);
    client.close();
    return { readyMs, rssMb, cpuUsPerQuery };
  } finally {
    await stop(child);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { instances: { type: 'string', default: '1000' }, queries: { type: 'string', default: '20000' } } });
  const n = Number(values.instances);
  const queries = Number(values.queries);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new Error('--instances: 1…10000');
  if (!Number.isInteger(queries) || queries < 1 || queries > 1_000_000) throw new Error('--queries: 1…1000000');
  const dir = mkdtempSync(join(tmpdir(), 'lexa-sites-'));
  const sims: SimLxd[] = [];
  try {
    for (const name of SITE_NAMES) sims.push(await startSimLxd(join(dir, `${name}.socket`), n));
    const one = await measure(sims.slice(0, 1), queries, dir);
    const three = await measure(sims, queries, dir);
    console.log(`lexa over SIMULATED LXDs of ${n} containers each (src/bench/sim-lxd.ts); ${queries} exact A queries for CPU:\n`);
    console.log('sites   start→ready ms   RSS MB   CPU µs/query');
    for (const [k, f] of [[1, one], [3, three]] as const) {
      console.log(`${String(k).padStart(5)}${f.readyMs.toFixed(0).padStart(17)}${f.rssMb.toFixed(1).padStart(9)}${f.cpuUsPerQuery.toFixed(1).padStart(15)}`);
    }
    const label = `three sites of ${n.toLocaleString('en')} (SIMULATED LXDs)`;
    recordRow('sites-ready', `${label}: start → ready`, `${(three.readyMs / 1000).toFixed(2)} s`, `one site ${(one.readyMs / 1000).toFixed(2)} s`, three.readyMs / one.readyMs);
    recordRow('sites-rss', `${label}: RSS once ready`, `${three.rssMb.toFixed(1)} MB`, `one site ${one.rssMb.toFixed(1)} MB`, three.rssMb / one.rssMb);
    recordRow('sites-cpu', `${label}: CPU per exact A query, \`<host>.<site>.lexa\``, `${three.cpuUsPerQuery.toFixed(1)} µs`, `one site ${one.cpuUsPerQuery.toFixed(1)} µs`, three.cpuUsPerQuery / one.cpuUsPerQuery);
  } finally {
    for (const sim of sims) await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(`sites: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
