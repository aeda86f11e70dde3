/**
 * The soak's moderate, mixed load (src/bench/soak.ts) for one phase of a fixed length: DNS over UDP, TCP and DoT
 * from dnsperf at fixed rates, DoH from a Node HTTP/2 client that opens a new session every few seconds, REST
 * reads, Consul blocking queries and SSE readers that reconnect, and steady churn of real containers. Every
 * generator stops by itself at the phase's end and closes its connections; at the end every container is running
 * again, so each phase leaves lexa with the same instances as the one before.
 */
import { execFile } from 'node:child_process';
import http2 from 'node:http2';
import https from 'node:https';
import dnsPacket from 'dns-packet';
import { setTimeout as sleep } from 'node:timers/promises';
import { runDnsperf, type DnsperfSummary } from './dnsperf.js';

export interface SoakRates {
  readonly udpQps: number;
  readonly tcpQps: number;
  readonly dotQps: number;
  readonly dohQps: number;
  /** REST GETs per second (/containers/, /v1/catalog/services, /prometheus in turn). */
  readonly restPerSecond: number;
  /** Concurrent Consul blocking queries (`?index=&wait=`) and SSE readers (/events). */
  readonly blocking: number;
  readonly sse: number;
  /** One container start or stop every this many ms. */
  readonly churnEveryMs: number;
}

export const SOAK_RATES: SoakRates = { udpQps: 1_200, tcpQps: 200, dotQps: 200, dohQps: 200, restPerSecond: 20, blocking: 4, sse: 4, churnEveryMs: 3_000 };

export interface Ports {
  readonly dns: number;
  readonly dot: number;
  readonly doh: number;
  readonly rest: number;
}

export interface PhaseResult {
  readonly udp: DnsperfSummary;
  readonly tcp: DnsperfSummary;
  readonly dot: DnsperfSummary;
  /** DoH, REST, blocking and SSE requests completed, and those that failed. */
  readonly http: { readonly ok: number; readonly failed: number };
  /** Container starts and stops. */
  readonly churned: number;
}

/** DoH sessions last this long, then a new one opens: sessions come and go through the soak. */
const DOH_SESSION_MS = 5_000;
/** An SSE reader holds its stream this long, then reconnects. */
const SSE_HOLD_MS = 4_000;
/** Blocking queries wait at most this long (Consul's `wait`). */
const BLOCKING_WAIT = '3s';
/** Any single HTTP request gives up after this (a blocking one waits BLOCKING_WAIT plus this). */
const REQUEST_TIMEOUT_MS = 10_000;
/** The certificate is lexa's generated self-signed one: not verified. */
const INSECURE = { rejectUnauthorized: false };
/** `lxc` runs at most this long. */
const LXC_TIMEOUT_MS = 120_000;

function lxc(...args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { timeout: LXC_TIMEOUT_MS }, (err, _out, errOut) => (err ? reject(new Error(`lxc ${args.join(' ')}: ${errOut || err.message}`)) : resolve()));
    child.stdin?.end();
  });
}

/** One HTTPS GET on a new connection (closed after); resolves with status and body, rejects on error or timeout. */
function get(port: number, path: string, signal?: AbortSignal): Promise<{ status: number; body: string; index?: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, agent: false, timeout: REQUEST_TIMEOUT_MS, ...INSECURE, ...(signal ? { signal } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(typeof res.headers['x-consul-index'] === 'string' ? { index: res.headers['x-consul-index'] } : {}) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
  });
}

/** Calls `fn` every `everyMs` until `until` (performance.now()), each call awaited; counts outcomes. */
async function paced(until: number, everyMs: number, fn: () => Promise<void>, tally: { ok: number; failed: number }): Promise<void> {
  for (let next = performance.now(); next < until; next += everyMs) {
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    try {
      await fn();
      tally.ok++;
    } catch {
      tally.failed++;
    }
  }
}

/** DoH POSTs at `qps` over HTTP/2 sessions of DOH_SESSION_MS each, until `until`. */
async function doh(port: number, qps: number, until: number, names: readonly string[], tally: { ok: number; failed: number }): Promise<void> {
  let i = 0;
  while (performance.now() < until) {
    const session = http2.connect(`https://127.0.0.1:${port}`, INSECURE);
    session.on('error', () => undefined);
    const ends = Math.min(until, performance.now() + DOH_SESSION_MS);
    const ask = () =>
      new Promise<void>((resolve, reject) => {
        const body = dnsPacket.encode({ type: 'query', id: 0, questions: [{ name: `${names[i++ % names.length]}.lexa`, type: 'A' }] });
        const req = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', accept: 'application/dns-message' });
        req.setTimeout(REQUEST_TIMEOUT_MS, () => req.close(http2.constants.NGHTTP2_CANCEL));
        let status = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('data', () => undefined);
        req.on('end', () => (status === 200 ? resolve() : reject(new Error(`DoH ${status}`))));
        req.on('error', reject);
        req.end(body);
      });
    await paced(ends, 1000 / qps, ask, tally);
    await new Promise<void>((r) => session.close(() => r()));
  }
}

/** A Consul blocking-query loop on /v1/catalog/services until `until`. */
async function blocking(port: number, until: number, tally: { ok: number; failed: number }): Promise<void> {
  let index = '0';
  while (performance.now() < until) {
    try {
      const r = await get(port, `/v1/catalog/services?index=${index}&wait=${BLOCKING_WAIT}`);
      if (r.status !== 200) throw new Error(`blocking ${r.status}`);
      index = r.index ?? '0';
      tally.ok++;
    } catch {
      tally.failed++;
      await sleep(100);
    }
  }
}

/** An SSE reader of /events, reconnecting every SSE_HOLD_MS, until `until`. */
async function sse(port: number, until: number, tally: { ok: number; failed: number }): Promise<void> {
  while (performance.now() < until) {
    const stop = new AbortController();
    const hold = setTimeout(() => stop.abort(), Math.min(SSE_HOLD_MS, Math.max(0, until - performance.now())));
    try {
      await get(port, '/events', stop.signal);
      tally.failed++; // the stream ended before we let go of it
    } catch (err) {
      if (stop.signal.aborted) tally.ok++;
      else {
        tally.failed++;
        await sleep(100);
      }
    } finally {
      clearTimeout(hold);
    }
  }
}

/** Toggles a random container every `everyMs` until `until`, then starts every stopped one. */
async function churn(names: readonly string[], everyMs: number, until: number): Promise<number> {
  const stopped = new Set<string>();
  let n = 0;
  let k = 0;
  for (let next = performance.now(); next < until; next += everyMs) {
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
    const name = names[k++ % names.length]!;
    if (stopped.delete(name)) await lxc('start', name);
    else {
      await lxc('stop', '--force', name);
      stopped.add(name);
    }
    n++;
  }
  for (const name of stopped) await lxc('start', name);
  return n + stopped.size;
}

/** Runs every generator for `seconds`; resolves when all have stopped and closed their connections. */
export async function loadPhase(ports: Ports, names: readonly string[], queryFile: string, seconds: number, r: SoakRates, clientCpu?: number): Promise<PhaseResult> {
  const until = performance.now() + seconds * 1000;
  const http = { ok: 0, failed: 0 };
  const cpu = clientCpu === undefined ? {} : { cpu: clientCpu };
  const perf = (mode: 'udp' | 'tcp' | 'dot', port: number, qps: number) =>
    runDnsperf({ port, queryFile, qps, seconds, timeoutSeconds: 2, clients: 2, outstanding: 20, mode, ...cpu });
  const rest = ['/containers/', '/v1/catalog/services', '/prometheus'];
  let j = 0;
  const [udp, tcp, dot, churned] = await Promise.all([
    perf('udp', ports.dns, r.udpQps),
    perf('tcp', ports.dns, r.tcpQps),
    perf('dot', ports.dot, r.dotQps),
    churn(names, r.churnEveryMs, until),
    doh(ports.doh, r.dohQps, until, names, http),
    paced(until, 1000 / r.restPerSecond, async () => {
      const res = await get(ports.rest, rest[j++ % rest.length]!);
      if (res.status !== 200) throw new Error(`REST ${res.status}`);
    }, http),
    ...Array.from({ length: r.blocking }, () => blocking(ports.rest, until, http)),
    ...Array.from({ length: r.sse }, () => sse(ports.rest, until, http)),
  ]);
  return { udp, tcp, dot, http, churned };
}
