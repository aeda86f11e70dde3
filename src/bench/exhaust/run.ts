import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig } from '../../config/index.js';
import { AGENT_LIMITS, MAX_UNREAD_REPLY_BYTES } from '../../servers/agent/server.js';
import type { ConnectionLimits } from '../../servers/fairness.js';
import { portFrom } from '../logged-port.js';
import { agentFlood, allowedHeld, blockingReaders, idle, oversizedDoh, slowLoris, type AttackContext, type AttackOutcome, type AttackRun } from './attacks.js';
import { quicFlood } from './doq-attack.js';
import { percentile, probeLoop, probes, type Probe, type Target } from './good-client.js';
import { cpuSeconds, openDescriptors, rssBytes, RssSampler } from './rss.js';

/**
 * The exhaustion runs: a real `lexa server` (dist/cli.js, a child process whose RSS is sampled) on the real LXD,
 * every listener on 127.0.0.1 with its default limits; one attack at a time from ATTACKERS while the good client
 * (good-client.ts, at 127.0.0.2) asks the attacked listener over and over.
 */

/** The attacker addresses: eight loopback sources, none of them the good client's. */
export const ATTACKERS = Array.from({ length: 8 }, (_, i) => `127.0.0.${10 + i}`);

/**
 * What one admitted connection may cost lexa besides its protocol's buffers: the socket, its TLS state (OpenSSL
 * keeps ~40–70 KiB per session, more during a handshake) and the JavaScript objects around it, rounded up.
 */
export const CONNECTION_BYTES = 256 * 1024;
/** A DNS message or an HTTP request body lexa buffers at most (DNS's own limit). */
const MESSAGE_BYTES = 64 * 1024;
/** Concurrent streams lexa grants one DoH session and one DoQ connection (doh/server.ts, doq/server.ts). */
const STREAMS = 100;

export interface Attack {
  readonly name: string;
  /** The listener it attacks, by the name lexa logs ("dns/tcp", "dot", ...). */
  readonly listener: string;
  /** What the documentation says happens to the attacker. */
  readonly limit: string;
  readonly limits: ConnectionLimits;
  /** Buffers one admitted connection may fill besides CONNECTION_BYTES, by the listener's limits. */
  readonly buffers: number;
  readonly probe: (t: Target, timeoutMs: number) => Probe;
  readonly start: (ctx: AttackContext) => AttackRun;
  /** Which of the run's sizes is this attack's. */
  readonly sizeKey: keyof Sizes;
}

export interface Sizes {
  readonly tcpIdle: number;
  readonly dotIdle: number;
  readonly restLoris: number;
  readonly dohLoris: number;
  readonly dohOversized: number;
  readonly quic: number;
  readonly blocking: number;
  readonly agent: number;
}

/** The full-size run (npm run exhaust). */
export const FULL: Sizes = { tcpIdle: 3000, dotIdle: 2000, restLoris: 1000, dohLoris: 1000, dohOversized: 64, quic: 40, blocking: 2000, agent: 400 };

/**
 * The size test/reliability/exhaust.test.ts runs (.ci/run): each attack still more than the attacker addresses
 * may hold where the limits allow few (TCP, DoT, REST, agent), a tenth of the full run elsewhere; DoQ smaller still,
 * since every stalled stream costs lexa ~1 ms of CPU in the QUIC library's JavaScript (docs/reliability.md).
 */
export const SHORT: Sizes = { tcpIdle: 300, dotIdle: 200, restLoris: 250, dohLoris: 150, dohOversized: 8, quic: 4, blocking: 250, agent: 40 };

const config = defaultConfig();
export const ATTACKS: readonly Attack[] = [
  { name: 'idle TCP connections', listener: 'dns/tcp', sizeKey: 'tcpIdle', limit: 'max_per_source, the reserve; first_request_timeout', limits: config.dns.limits, buffers: 2 * MESSAGE_BYTES, probe: probes.tcp, start: (c) => idle(c, false) },
  { name: 'idle DoT connections (handshake done)', listener: 'dot', sizeKey: 'dotIdle', limit: 'max_per_source, the reserve; first_request_timeout', limits: config.dns.dot.limits, buffers: 2 * MESSAGE_BYTES, probe: probes.dot, start: (c) => idle(c, { alpn: 'dot' }) },
  { name: 'slow-loris REST (head, body)', listener: 'rest', sizeKey: 'restLoris', limit: 'max_per_source, the reserve; first_request_timeout', limits: config.rest.limits, buffers: MESSAGE_BYTES, probe: (t, ms) => probes.rest(t, ms, '/containers/'), start: (c) => slowLoris(c, '/containers/') },
  { name: 'slow-loris DoH (head, body)', listener: 'doh', sizeKey: 'dohLoris', limit: 'max_per_source, the reserve; first_request_timeout, request_timeout', limits: config.dns.doh.limits, buffers: STREAMS * MESSAGE_BYTES, probe: probes.doh, start: (c) => slowLoris(c, '/dns-query') },
  { name: 'oversized DoH bodies (1 MiB, HTTP/2)', listener: 'doh', sizeKey: 'dohOversized', limit: '413 past 65,535 bytes; max_per_source', limits: config.dns.doh.limits, buffers: STREAMS * MESSAGE_BYTES, probe: probes.doh, start: (c) => oversizedDoh(c) },
  { name: 'QUIC connections × 150 stalled streams', listener: 'doq', sizeKey: 'quic', limit: 'max_per_source (Initials dropped); 100 streams per connection', limits: config.dns.quic.limits, buffers: STREAMS * MESSAGE_BYTES, probe: probes.doq, start: quicFlood },
  { name: 'blocking queries and SSE readers', listener: 'rest', sizeKey: 'blocking', limit: 'max_per_source, the reserve (one per connection)', limits: config.rest.limits, buffers: MESSAGE_BYTES, probe: probes.rest, start: blockingReaders },
  { name: 'agent message flood (no credential)', listener: 'agent', sizeKey: 'agent', limit: 'max_per_source; closed on the first bad message', limits: AGENT_LIMITS, buffers: MESSAGE_BYTES + MAX_UNREAD_REPLY_BYTES, probe: probes.agent, start: agentFlood },
];

export interface RunOptions {
  readonly sizes: Sizes;
  /** Good-client questions per attack, one after another, PROBE_GAP_MS apart. */
  readonly probes: number;
  /** The good client's own timeout per question. */
  readonly probeTimeoutMs: number;
  /** Only these attacks (by listener or name), or all. */
  readonly only?: readonly string[];
  /** The LXD socket lexa watches. */
  readonly lxdSocket: string;
  /** Progress lines (default: none). */
  readonly note?: (line: string) => void;
}

export interface AttackResult {
  readonly attack: Attack;
  readonly size: number;
  readonly outcome: AttackOutcome;
  /** What lexa held for the attacker once the attack had ramped up (AttackRun.held). */
  readonly held: number;
  /** What the limits allow the attacker addresses to hold at once. */
  readonly allowed: number;
  readonly baselineRss: number;
  readonly peakRss: number;
  /** baselineRss + the listener's max_connections × (CONNECTION_BYTES + buffers). */
  readonly rssBound: number;
  readonly latencies: number[];
  readonly failures: string[];
  readonly p99: number;
  /** lexa's CPU seconds (user + system) from the attack's start to its end, and over how many wall seconds. */
  readonly cpu: { readonly attack: number; readonly wall: number };
}

const PROBE_GAP_MS = 50;
/**
 * Each slot of an attack opens at most this many connections: at one reopening per RECONNECT_MS, a refused slot
 * keeps up the pressure for ~60 s, longer than the good client's questions take here.
 */
const MAX_ATTEMPTS_PER_SLOT = 60;
/** Time the attack has to take every slot it can before the good client starts asking. */
const RAMP_MS = 2_000;
/** Time lexa gets after an attack to close what it left, before the next baseline. */
const CALM_MS = 2_000;

/** Runs the attacks against one lexa process; resolves with each attack's figures. */
export async function runExhaust(opts: RunOptions): Promise<AttackResult[]> {
  const lexa = await startLexa(opts.lxdSocket);
  const note = opts.note ?? (() => undefined);
  try {
    const results: AttackResult[] = [];
    const index = { lexa: await header(lexa.ports['rest']!, '/containers/', 'x-lexa-index'), consul: await header(lexa.ports['rest']!, '/v1/catalog/services', 'x-consul-index') };
    for (const attack of ATTACKS) {
      if (opts.only && !opts.only.some((o) => attack.listener === o || attack.name.includes(o))) continue;
      const port = lexa.ports[attack.listener]!;
      const size = opts.sizes[attack.sizeKey];
      note(`${attack.name}: ${size} from ${ATTACKERS.length} addresses against ${attack.listener} :${port}`);
      const baselineRss = rssBytes(lexa.pid);
      const baselineFds = openDescriptors(lexa.pid);
      const sampler = new RssSampler(lexa.pid);
      const [cpu0, wall0] = [cpuSeconds(lexa.pid), performance.now()];
      const run = attack.start({ port, addresses: ATTACKERS, size, maxAttempts: size * MAX_ATTEMPTS_PER_SLOT, index });
      await sleep(RAMP_MS);
      const held = await run.held(() => Math.max(0, openDescriptors(lexa.pid) - baselineFds));
      const target: Target = { port, name: 'lexa', type: 'SOA' };
      const seen = await probeLoop(attack.probe(target, opts.probeTimeoutMs), opts.probes, PROBE_GAP_MS);
      const outcome = await run.stop();
      const peakRss = sampler.stop();
      const cpu = { attack: cpuSeconds(lexa.pid) - cpu0, wall: (performance.now() - wall0) / 1000 };
      const result: AttackResult = {
        attack,
        size,
        outcome,
        held,
        allowed: allowedHeld(attack.limits, ATTACKERS.length),
        baselineRss,
        peakRss,
        rssBound: baselineRss + attack.limits.maxConnections * (CONNECTION_BYTES + attack.buffers),
        ...seen,
        p99: percentile(seen.latencies, 99),
        cpu,
      };
      results.push(result);
      note(describe(result));
      await sleep(CALM_MS);
    }
    return results;
  } finally {
    await lexa.stop();
  }
}

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;

/** One attack's figures as a line. */
export function describe(r: AttackResult): string {
  const answers = Object.entries(r.outcome.answers).map(([k, v]) => `${k}: ${v}`).join(', ');
  return (
    `${r.attack.name} [${r.attack.listener}]: ${r.outcome.attempts} opened, ${r.held} held (limits allow ${r.allowed})` +
    `${answers ? `; ${answers}` : ''}; RSS ${mb(r.baselineRss)} → peak ${mb(r.peakRss)} (bound ${mb(r.rssBound)}); ` +
    `lexa CPU ${r.cpu.attack.toFixed(1)} s in ${r.cpu.wall.toFixed(1)} s; good client ${r.latencies.length}/${r.latencies.length + r.failures.length} answered, p99 ${r.p99.toFixed(0)} ms` +
    (r.failures.length > 0 ? `; failures: ${[...new Set(r.failures)].slice(0, 3).join(' | ')}` : '')
  );
}

interface RunningLexa {
  readonly pid: number;
  readonly ports: Record<string, number>;
  stop(): Promise<void>;
}

/** The built CLI (npm run build), from src/bench/exhaust or dist/bench/exhaust alike. */
const CLI = join(import.meta.dirname, '..', '..', '..', 'dist', 'cli.js');

/** The listeners' names as lexa logs them ("<name>: listening"). */
const LISTENERS = ['dns/tcp', 'dot', 'doh', 'doq', 'rest', 'agent'];
const STARTUP_MS = 30_000;

/** Starts `lexa server` with every listener on 127.0.0.1:0; resolves once it answers /readyz 200. */
async function startLexa(lxdSocket: string): Promise<RunningLexa> {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-exhaust-'));
  const file = join(dir, 'lexa.hcl');
  const bind = '    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n';
  writeFileSync(
    file,
    `server {\n  lxd {\n    socket = "${lxdSocket}"\n  }\n  state_directory = "${dir}"\n  tls {\n${bind}  }\n  dns {\n${bind}` +
      `    dot {\n  ${bind.replaceAll('\n ', '\n   ')}    }\n    doh {\n  ${bind.replaceAll('\n ', '\n   ')}    }\n    quic {\n  ${bind.replaceAll('\n ', '\n   ')}    }\n  }\n` +
      `  agent {\n${bind}    issue_tokens = false\n  }\n}\n`,
  );
  const child: ChildProcess = spawn(process.execPath, [CLI, 'server', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // However this process ends (Ctrl-C included), the lexa it started ends with it.
  process.once('exit', () => child.kill());
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const deadline = Date.now() + STARTUP_MS;
  const ports: Record<string, number> = {};
  for (;;) {
    for (const l of LISTENERS) ports[l] ||= portFrom(log, `${l}: listening`) ?? 0;
    if (LISTENERS.every((l) => ports[l]) && (await status(ports['rest']!, '/readyz')) === 200) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`lexa did not become ready:\n${log.slice(-2000)}`);
    }
    await sleep(100);
  }
  return { pid: child.pid!, ports, stop };
}

function get(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('error', () => resolve({ status: 0, headers: {} }));
    req.on('timeout', () => req.destroy());
  });
}
const status = async (port: number, path: string) => (await get(port, path)).status;
const header = async (port: number, path: string, name: string) => String((await get(port, path)).headers[name] ?? '1');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
