/**
 * Start-up benchmark on the REAL LXD of scripts/testbed.sh: with N running containers (default 50, launched here
 * and deleted after), the time from spawning `lexa server` to `/readyz` answering 200, and to every container's
 * name answering A over UDP. Median of a few starts.
 *
 *   node dist/bench/startup.js [--containers 50] [--starts 3] [--image lexa-busybox]
 */
import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { portFrom } from './logged-port.js';
import { readyz } from './readyz.js';

const CLI = new URL('../cli.js', import.meta.url).pathname;
const PREFIX = 'startup-bench-';
const GIVE_UP_MS = 60_000;

function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { timeout: 300_000, maxBuffer: 64 << 20 }, (err, out, errOut) => (err ? reject(new Error(`lxc ${args.join(' ')}: ${errOut || err.message}`)) : resolve(out)));
    child.stdin?.end();
  });
}

/** How many of `names` answer A now (one UDP query each, 500 ms to answer). */
async function answering(port: number, names: readonly string[]): Promise<number> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, () => r()));
  const got = new Set<number>();
  let replies = 0;
  let done = () => {};
  const finished = new Promise<void>((r) => (done = r));
  sock.on('message', (m) => {
    const p = dnsPacket.decode(m);
    if (p.answers?.some((a) => a.type === 'A')) got.add(p.id ?? -1);
    if (++replies === names.length) done();
  });
  names.forEach((name, i) => sock.send(dnsPacket.encode({ type: 'query', id: i, questions: [{ name, type: 'A' }] }), port, '127.0.0.1'));
  await Promise.race([finished, new Promise((r) => setTimeout(r, 500))]);
  sock.close();
  return got.size;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { containers: { type: 'string', default: '50' }, starts: { type: 'string', default: '3' }, image: { type: 'string', default: 'lexa-busybox' } } });
  const n = Number(values.containers);
  const names = Array.from({ length: n }, (_, i) => `${PREFIX}${i + 1}`);
  const cleanup = async () => {
    const old = (await lxc('list', '-c', 'n', '-f', 'csv')).split('\n').filter((x) => x.startsWith(PREFIX));
    if (old.length > 0) await lxc('delete', '-f', ...old);
  };
  await cleanup();
  const dir = mkdtempSync(join(tmpdir(), 'lexa-startup-'));
  try {
    console.log(`Start-up on the real LXD with ${n} running containers (${values.image}), ${values.starts} starts:\n`);
    // Launch in parallel batches: the machine, not lexa, sets how long this takes.
    for (let i = 0; i < n; i += 10) await Promise.all(names.slice(i, i + 10).map((name) => lxc('launch', values.image, name)));
    const deadline = Date.now() + GIVE_UP_MS;
    for (;;) {
      const rows = (await lxc('list', PREFIX, '-c', 'n4', '-f', 'csv')).split('\n').filter((l) => l.includes('(eth0)'));
      if (rows.length >= n) break;
      if (Date.now() > deadline) throw new Error(`only ${rows.length} of ${n} containers have an IPv4`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const config = join(dir, 'lexa.hcl');
    writeFileSync(config, 'server {\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n');
    const ready: number[] = [];
    const all: number[] = [];
    for (let s = 0; s < Number(values.starts); s++) {
      const t0 = performance.now();
      const child = spawn(process.execPath, [CLI, 'server', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
      let log = '';
      child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
      try {
        let restPort = 0;
        let dnsPort = 0;
        let readyAt: number | undefined;
        for (;;) {
          if (performance.now() - t0 > GIVE_UP_MS) throw new Error(`lexa not ready: ${log.slice(-500)}`);
          restPort ||= portFrom(log, 'rest: listening') ?? 0;
          dnsPort ||= portFrom(log, 'dns/udp: listening') ?? 0;
          if (restPort && readyAt === undefined && (await readyz(restPort)) === 200) readyAt = performance.now() - t0;
          if (readyAt !== undefined && dnsPort && (await answering(dnsPort, names.map((x) => `${x}.lexa`))) === n) {
            ready.push(readyAt);
            all.push(performance.now() - t0);
            break;
          }
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      console.log(`  start ${s + 1}: /readyz 200 after ${ready.at(-1)!.toFixed(0)} ms, all ${n} names answering after ${all.at(-1)!.toFixed(0)} ms`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    console.log(`\n| process start → /readyz 200 (median) | → all ${n} names answer A |\n|---|---|\n| ${median(ready).toFixed(0)} ms | ${median(all).toFixed(0)} ms |`);
  } finally {
    await cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(`startup: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
