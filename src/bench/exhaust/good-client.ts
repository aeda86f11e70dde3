import { execFile } from 'node:child_process';
import { Buffer } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import { encodeFrame } from '../../agent/protocol.js';

/**
 * The well-behaved client of the exhaustion runs: real clients (dig, kdig, curl) bound to GOOD_ADDRESS, a loopback
 * address no attacker uses, asking one question per fresh connection, so that every probe also proves a new
 * source still gets a slot. A probe's latency is the client's whole run, process start included.
 */
export const GOOD_ADDRESS = '127.0.0.2';

/** One question: resolves with why it failed, or undefined when it was answered as expected. */
export type Probe = () => Promise<string | undefined>;

/** The listener under attack and where it is, as a probe needs it. */
export interface Target {
  readonly port: number;
  /** A question lexa answers NOERROR for (DNS probes): the zone's SOA, say. */
  readonly name: string;
  readonly type: string;
}

/** Runs a client; resolves with stdout+stderr, or an error text when it could not run or ran out of time. */
function client(cmd: string, args: readonly string[], timeoutMs: number): Promise<{ out: string; failed?: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const out = `${stdout}${stderr}`;
      resolve(err && (err as { killed?: boolean }).killed ? { out, failed: `${cmd}: no answer within ${timeoutMs} ms` } : { out });
    });
  });
}

const dnsAnswered = (r: { out: string; failed?: string }) => r.failed ?? (/status: NOERROR/.test(r.out) ? undefined : `no NOERROR answer: ${r.out.slice(0, 200)}`);
const seconds = (ms: number) => String(Math.max(1, Math.floor(ms / 1000)));

/** A probe per transport, each with `timeoutMs` as its client timeout. */
export const probes = {
  tcp: (t: Target, timeoutMs: number): Probe => async () =>
    dnsAnswered(await client('dig', ['+tcp', '+tries=1', `+time=${seconds(timeoutMs)}`, '-b', GOOD_ADDRESS, '-p', String(t.port), '@127.0.0.1', t.name, t.type], timeoutMs + 1_000)),
  dot: (t: Target, timeoutMs: number): Probe => async () =>
    dnsAnswered(await client('kdig', ['+tls', '+retry=0', `+timeout=${seconds(timeoutMs)}`, '-b', GOOD_ADDRESS, '-p', String(t.port), '@127.0.0.1', t.name, t.type], timeoutMs + 1_000)),
  doh: (t: Target, timeoutMs: number): Probe => async () =>
    dnsAnswered(await client('kdig', ['+https', '+retry=0', `+timeout=${seconds(timeoutMs)}`, '-b', GOOD_ADDRESS, '-p', String(t.port), '@127.0.0.1', t.name, t.type], timeoutMs + 1_000)),
  /**
   * kdig over QUIC tries twice, each with half the timeout, as a stub resolver does (resolv.conf's attempts:2): one
   * kdig 3.2 QUIC handshake in 20–40 under the stalled-stream attack stalled for its whole timeout ("QUIC, peer took
   * too long to respond") while lexa answered the others within 1.5 s; one lost datagram is the likely cause.
   */
  doq: (t: Target, timeoutMs: number): Probe => async () =>
    dnsAnswered(await client('kdig', ['+quic', '+retry=1', `+timeout=${seconds(timeoutMs / 2)}`, '-b', GOOD_ADDRESS, '-p', String(t.port), '@127.0.0.1', t.name, t.type], timeoutMs + 1_000)),
  /** GET `path` of the REST API: answered when the status is 200. */
  rest: (t: Target, timeoutMs: number, path = '/readyz'): Probe => async () => {
    const r = await client('curl', ['-sk', '--interface', GOOD_ADDRESS, '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(timeoutMs / 1000), `https://127.0.0.1:${t.port}${path}`], timeoutMs + 1_000);
    return r.failed ?? (r.out === '200' ? undefined : `HTTP status ${r.out || 'none'}`);
  },
  /**
   * The agent endpoint: a hello from GOOD_ADDRESS is answered (no instance holds a loopback address, so the answer
   * is an error naming the address: the endpoint read it, judged it and replied). No real agent runs on the host.
   */
  agent: (t: Target, timeoutMs: number): Probe => () =>
    new Promise((resolve) => {
      const socket = tls.connect({ socket: net.connect({ host: '127.0.0.1', port: t.port, localAddress: GOOD_ADDRESS }), rejectUnauthorized: false });
      let got = Buffer.alloc(0);
      const done = (why: string | undefined) => {
        clearTimeout(timer);
        socket.destroy();
        resolve(why);
      };
      const timer = setTimeout(() => done(`agent: no answer within ${timeoutMs} ms`), timeoutMs);
      socket.on('error', (e) => done(`agent: ${e.message}`));
      socket.once('secureConnect', () => socket.write(encodeFrame({ type: 'hello', version: 2, credential: 'not-an-instance-credential' })));
      socket.on('data', (d: Buffer) => {
        got = Buffer.concat([got, d]);
        if (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
          const text = got.subarray(4, 4 + got.readUInt32BE(0)).toString();
          done(/"type":"error".*no running instance holds/.test(text) ? undefined : `agent: unexpected answer ${text.slice(0, 200)}`);
        }
      });
    }),
};

/** What a probe loop saw: each answered probe's latency (ms), and each failure's reason. */
export interface ProbeResults {
  readonly latencies: number[];
  readonly failures: string[];
}

/** Runs `probe` `count` times, one after another, `gapMs` apart; bounded by count (each probe by its own timeout). */
export async function probeLoop(probe: Probe, count: number, gapMs: number): Promise<ProbeResults> {
  const latencies: number[] = [];
  const failures: string[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const failed = await probe();
    if (failed === undefined) latencies.push(performance.now() - started);
    else failures.push(failed);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  return { latencies, failures };
}

/** The p-th percentile (0 < p ≤ 100) of `values` by nearest rank, or NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
