/**
 * Propagation benchmark on the REAL LXD of scripts/testbed.sh: how soon after `lxc launch` returns a new
 * container's name answers A, from lexa and from LXD's own dnsmasq on the bridge (`<name>.lxd` at the bridge
 * address), polled together in one loop so both see the same launch; and how soon after `lxc stop` returns the
 * name is gone from lexa. Median over a few launches; the ratio is lexa's time over dnsmasq's.
 *
 *   node dist/bench/propagation.js [--launches 5] [--bridge 10.99.0.1] [--image lexa-busybox] [--poll-leases]
 *
 * `--poll-leases` turns the lease file watch off (`server.lxd.watch_leases = false`): leases only from LXD's API.
 */
import { execFile, spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { portFrom } from './logged-port.js';
import { recordRow } from './rows.js';

const CLI = new URL('../cli.js', import.meta.url).pathname;
/** Poll period while waiting for a name: well below the times measured. */
const POLL_MS = 2;
/** A name that does not answer within this counts as a failure of the run. */
const GIVE_UP_MS = 15_000;
const PREFIX = 'prop-bench-';

function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { timeout: 120_000 }, (err, out, errOut) => (err ? reject(new Error(`lxc ${args.join(' ')}: ${errOut || err.message}`)) : resolve(out)));
    child.stdin?.end();
  });
}

/** Asks `name` A of host:port over UDP; resolves with the rcode and the first address (or none after 200 ms). */
function asker(sock: dgram.Socket) {
  let id = 0;
  const pending = new Map<number, (r: { rcode: string; a?: string }) => void>();
  sock.on('message', (msg) => {
    try {
      const p = dnsPacket.decode(msg) as dnsPacket.DecodedPacket & { rcode?: string };
      const done = pending.get(p.id ?? -1);
      if (!done) return;
      pending.delete(p.id!);
      const a = p.answers?.find((r) => r.type === 'A');
      done({ rcode: p.rcode ?? '', ...(a !== undefined && a.type === 'A' ? { a: String(a.data) } : {}) });
    } catch {
      // not a reply of ours
    }
  });
  return (host: string, port: number, name: string) =>
    new Promise<{ rcode: string; a?: string }>((resolve) => {
      id = (id + 1) & 0xffff;
      const my = id;
      const timer = setTimeout(() => {
        pending.delete(my);
        resolve({ rcode: 'TIMEOUT' });
      }, 200);
      pending.set(my, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      sock.send(dnsPacket.encode({ type: 'query', id: my, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] }), port, host);
    });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      launches: { type: 'string', default: '5' },
      bridge: { type: 'string', default: '10.99.0.1' },
      image: { type: 'string', default: 'lexa-busybox' },
      'poll-leases': { type: 'boolean', default: false },
    },
  });
  const launches = Number(values.launches);
  const dir = mkdtempSync(join(tmpdir(), 'lexa-prop-'));
  const config = join(dir, 'lexa.hcl');
  const lxd = values['poll-leases'] ? '  lxd {\n    watch_leases = false\n  }\n' : '';
  writeFileSync(config, 'server {\n' + lxd + '  tls {\n    enabled = false\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n');
  const child = spawn(process.execPath, [CLI, 'server', '--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, () => r()));
  const ask = asker(sock);
  try {
    const deadline = Date.now() + 30_000;
    let port = 0;
    while (!log.includes('"lxd connected"') || port === 0) {
      if (Date.now() > deadline) throw new Error(`lexa did not start: ${log}`);
      port = portFrom(log, 'dns/udp: listening') ?? 0;
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const old of (await lxc('list', '-c', 'n', '-f', 'csv')).split('\n').filter((n) => n.startsWith(PREFIX))) await lxc('delete', '-f', old);
    const how = values['poll-leases'] ? 'leases polled from LXD only' : 'lease file watched';
    console.log(`Propagation on the real LXD (${launches} launches of ${values.image}, ${how}; lexa and LXD's dnsmasq at ${values.bridge} polled every ${POLL_MS} ms):\n`);
    const lexaMs: number[] = [];
    const dnsmasqMs: number[] = [];
    const stopMs: number[] = [];
    for (let k = 1; k <= launches; k++) {
      const name = `${PREFIX}${k}`;
      await lxc('launch', values.image, name);
      const t0 = performance.now();
      let lexaAt: number | undefined;
      let dnsmasqAt: number | undefined;
      while (lexaAt === undefined || dnsmasqAt === undefined) {
        if (performance.now() - t0 > GIVE_UP_MS) throw new Error(`${name}: not resolvable after ${GIVE_UP_MS} ms (lexa ${lexaAt}, dnsmasq ${dnsmasqAt})`);
        const [l, d] = await Promise.all([
          lexaAt === undefined ? ask('127.0.0.1', port, `${name}.lexa`) : undefined,
          dnsmasqAt === undefined ? ask(values.bridge, 53, `${name}.lxd`) : undefined,
        ]);
        const now = performance.now() - t0;
        if (l?.a) lexaAt = now;
        if (d?.a) dnsmasqAt = now;
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      await lxc('stop', '-f', name);
      const t1 = performance.now();
      while ((await ask('127.0.0.1', port, `${name}.lexa`)).rcode !== 'NXDOMAIN') {
        if (performance.now() - t1 > GIVE_UP_MS) throw new Error(`${name}: still answering ${GIVE_UP_MS} ms after stop`);
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      stopMs.push(performance.now() - t1);
      lexaMs.push(lexaAt);
      dnsmasqMs.push(dnsmasqAt);
      console.log(`  ${name}: lexa ${lexaAt.toFixed(0)} ms, dnsmasq ${dnsmasqAt.toFixed(0)} ms after launch returned; gone from lexa ${stopMs.at(-1)!.toFixed(0)} ms after stop returned`);
      await lxc('delete', '-f', name);
    }
    console.log('\n| what | lexa | LXD dnsmasq | ratio |\n|---|---|---|---|');
    console.log(`| \`lxc launch\` returns → A answers (median of ${launches}) | ${median(lexaMs).toFixed(0)} ms | ${median(dnsmasqMs).toFixed(0)} ms | ${(median(lexaMs) / median(dnsmasqMs)).toFixed(2)} |`);
    recordRow('propagation', `\`lxc launch\` returns → A answers, median of ${launches}`, `${median(lexaMs).toFixed(0)} ms`, `LXD's dnsmasq ${median(dnsmasqMs).toFixed(0)} ms`, median(lexaMs) / median(dnsmasqMs));
    console.log(`| \`lxc stop\` returns → name gone (median of ${launches}) | ${median(stopMs).toFixed(0)} ms | (keeps answering: its lease outlives the stop) | |`);
  } finally {
    sock.close();
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((err: unknown) => {
  console.error(`propagation: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
