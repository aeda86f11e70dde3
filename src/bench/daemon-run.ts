/**
 * What the benchmarks that run the whole daemon share (growth.ts, sites.ts): starting it as the systemd unit would
 * (its NODE_OPTIONS, pinned to BENCH_SERVER_CPU when set) and waiting until it is ready, a bounded UDP query load and
 * the daemon's CPU per query under it, polling with a deadline, a process's RSS and CPU time from /proc, and a clean
 * stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { readFileSync } from 'node:fs';
import { portFrom } from './logged-port.js';
import { readyz } from './readyz.js';

const CLI = new URL('../cli.js', import.meta.url).pathname;
/** The unit whose NODE_OPTIONS the daemon runs with here. */
const UNIT = new URL('../../examples/systemd/lexa.service', import.meta.url).pathname;
/** A daemon that is not ready by then is reported as failed, not waited for forever. */
const READY_TIMEOUT_MS = 60_000;

/** The NODE_OPTIONS the systemd unit sets (`Environment="NODE_OPTIONS=..."`, quoted or not), or "" when it sets none. */
export function unitNodeOptions(): string {
  return /^Environment="?NODE_OPTIONS=([^"\n]*)"?$/m.exec(readFileSync(UNIT, 'utf8'))?.[1]?.trim() ?? '';
}

/** A daemon started by startReadyDaemon: its process, its REST and UDP ports, and its figures once ready. */
export interface ReadyDaemon {
  readonly child: ChildProcess;
  readonly restPort: number;
  readonly dnsPort: number;
  /** Spawn to the first `/readyz` 200. */
  readonly readyMs: number;
  /** RSS (MB) at that moment. */
  readonly rssMb: number;
}

/**
 * `lexa server --config <config>` with `nodeOptions`, pinned to BENCH_SERVER_CPU when set (scripts/bench.sh pins
 * it there and runs the driver elsewhere), once its REST and UDP listeners are logged and `/readyz` answers 200.
 * The config must log at info level or finer (the listening lines). A daemon that fails to get ready is stopped.
 */
export async function startReadyDaemon(config: string, nodeOptions: string): Promise<ReadyDaemon> {
  const cpu = process.env['BENCH_SERVER_CPU'];
  const [cmd, args] = cpu ? ['taskset', ['-c', cpu, process.execPath, CLI, 'server', '--config', config]] : [process.execPath, [CLI, 'server', '--config', config]];
  const started = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: nodeOptions } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const restPort = await until(() => portFrom(out, 'rest: listening'), READY_TIMEOUT_MS, 'REST listening');
    const dnsPort = await until(() => portFrom(out, 'dns/udp: listening'), READY_TIMEOUT_MS, 'DNS listening');
    await until(async () => ((await readyz(restPort)) === 200 ? true : undefined), READY_TIMEOUT_MS, 'ready', 5);
    return { child, restPort, dnsPort, readyMs: performance.now() - started, rssMb: rss(child.pid!) / 1024 };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

/** A UDP client bound to an ephemeral loopback port. */
export async function udpClient(): Promise<dgram.Socket> {
  const client = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', () => resolve()));
  return client;
}

/** The daemon's CPU (µs) per query while `load` asks `queries` of `names` with `window` in flight. */
export async function cpuPerQuery(pid: number, client: dgram.Socket, port: number, names: string[], queries: number, window: number): Promise<number> {
  const cpu0 = cpuTicks(pid);
  await load(client, port, names, queries, window);
  return (((cpuTicks(pid) - cpu0) / CLK_TCK) * 1e6) / queries;
}

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

/** Sends `total` queries for `names` with `window` in flight; resolves when every one is answered or lost. */
export function load(client: dgram.Socket, port: number, names: string[], total: number, window: number): Promise<void> {
  const packets = names.map((name, k) => dnsPacket.encode({ type: 'query', id: k, questions: [{ name, type: 'A' }] }));
  return new Promise((resolve) => {
    let sent = 0;
    let done = 0;
    const send = () => {
      client.send(packets[sent % packets.length]!, port, '127.0.0.1');
      sent++;
    };
    const onReply = () => {
      done++;
      if (sent < total) send();
      else if (done >= total) finish();
    };
    // A lost datagram must not stall the window: a watchdog tops it up.
    const watchdog = setInterval(() => {
      if (sent >= total) return finish();
      for (let k = 0; k < window / 4 && sent < total; k++) send();
    }, 200);
    const finish = () => {
      clearInterval(watchdog);
      client.off('message', onReply);
      resolve();
    };
    client.on('message', onReply);
    for (let k = 0; k < window; k++) send();
  });
}

export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, pollMs = 10): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`growth: timed out waiting for ${what}`);
    if (pollMs > 0) await new Promise((r) => setTimeout(r, pollMs));
  }
}

export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
