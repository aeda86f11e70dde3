import { Buffer } from 'node:buffer';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket, { type Answer } from 'dns-packet';
import { defaultConfig } from '../../src/config/index.js';
import type { HandleQuery, ReplyLimit } from '../../src/dns/index.js';
import type { StreamLimits } from '../../src/servers/transport.js';
import { generateSelfSigned, type TlsMaterial } from '../../src/tls/index.js';

/** The TCP/DoT limits the daemon gets from a default configuration. */
export const STREAM_LIMITS: StreamLimits = defaultConfig().dns.limits;

/**
 * For transport tests (DoT, DoH): a STUB DNS handler, not lexa's resolver. It answers from a fixed table of names
 * under `.test`, echoing the query's ID, so the tests are about framing, HTTP and TLS, not about name forms (those
 * run against a real LXD through every transport elsewhere).
 *
 *   <anything>.test A      A 192.0.2.1, TTL 60          <anything>.test other types   NODATA, SOA TTL 30 MINIMUM 10
 *   <anything> SOA         the SOA (TTL 300, MINIMUM 15) as the answer
 *   here.test A            A 127.0.0.1, TTL 60          ttls.test A                   TTLs 90, 45, 120 + NS TTL 3600
 *   nx.test                NXDOMAIN, SOA TTL 300 MINIMUM 15
 *   zero.test A            A 192.0.2.1, TTL 0           servfail.test                 SERVFAIL, no records
 *   big.test A             300 A records (~5 KB)        drop.test                     null (send nothing)
 *   throw.test             throws (breaking the handler's contract, to prove the transport survives it)
 */
export interface StubCall {
  readonly id: number;
  readonly name: string;
  readonly type: string;
  /** The reply limit the transport passed. */
  readonly limit: ReplyLimit;
}

export const BIG_ANSWERS = 300;

export function stubHandler(): { handle: HandleQuery; calls: StubCall[] } {
  const calls: StubCall[] = [];
  const handle: HandleQuery = (buf, limit) => {
    if (buf.length < 12) return null;
    const q = dnsPacket.decode(Buffer.from(buf));
    const question = q.questions?.[0];
    if (question === undefined) return null;
    const name = question.name.toLowerCase();
    calls.push({ id: q.id ?? 0, name, type: question.type, limit });
    if (name === 'drop.test') return null;
    if (name === 'throw.test') throw new Error('stub handler throws on purpose');
    const reply = (rcode: number, answers: Answer[], authorities: Answer[] = []) =>
      dnsPacket.encode({
        id: q.id ?? 0,
        type: 'response',
        // dns-packet ignores `rcode` when encoding: it goes into the flags
        flags: dnsPacket.AUTHORITATIVE_ANSWER | ((q.flags ?? 0) & dnsPacket.RECURSION_DESIRED) | rcode,
        questions: q.questions,
        answers,
        authorities,
      });
    const a = (data: string, ttl = 60): Answer => ({ name: question.name, type: 'A', class: 'IN', ttl, data });
    const soa = (ttl: number, minimum: number): Answer => ({
      name: 'test',
      type: 'SOA',
      class: 'IN',
      ttl,
      data: { mname: 'ns.test', rname: 'hostmaster.test', serial: 1, refresh: 60, retry: 60, expire: 600, minimum },
    });
    if (name === 'nx.test') return reply(RCODE_NXDOMAIN, [], [soa(300, 15)]);
    if (name === 'servfail.test') return reply(RCODE_SERVFAIL, []);
    if (question.type === 'SOA') return reply(0, [soa(300, 15)]);
    if (question.type !== 'A') return reply(0, [], [soa(30, 10)]);
    if (name === 'here.test') return reply(0, [a('127.0.0.1')]);
    if (name === 'zero.test') return reply(0, [a('192.0.2.1', 0)]);
    if (name === 'ttls.test') {
      return reply(0, [a('192.0.2.1', 90), a('192.0.2.2', 45), a('192.0.2.3', 120)], [
        { name: 'test', type: 'NS', class: 'IN', ttl: 3600, data: 'ns.test' },
      ]);
    }
    if (name === 'big.test') {
      return reply(0, Array.from({ length: BIG_ANSWERS }, (_, i) => a(`198.51.${i >> 8}.${i & 0xff}`)));
    }
    return reply(0, [a('192.0.2.1')]);
  };
  return { handle, calls };
}

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

/** A query message as a client would send it. */
export function query(id: number, name: string, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] });
}

/** A self-signed certificate from lexa's own generator, also written to a file for clients' `--cacert`/`+tls-ca`. */
export async function testCertificate(): Promise<{ tls: TlsMaterial; caFile: string; pin: string }> {
  const tls = await generateSelfSigned('localhost', [{ host: '127.0.0.1', port: 0 }]);
  const dir = mkdtempSync(join(tmpdir(), 'lexa-tls-'));
  const caFile = join(dir, 'cert.pem');
  writeFileSync(caFile, tls.cert);
  return { tls, caFile, pin: spkiPin(tls.cert) };
}

/** The SPKI pin kdig's +tls-pin takes: base64 of the SHA-256 of the certificate's public key (RFC 7858 §4.2). */
export function spkiPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs a client program to completion with empty input (never rejects: the exit code is part of the result). */
export function run(cmd: string, args: readonly string[], timeoutMs = 15_000): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, encoding: 'buffer', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout: stdout.toString('latin1'), stderr: stderr.toString(), ms: Math.round(performance.now() - started) });
    });
    child.stdin?.end(); // an empty stdin: openssl s_client and curl -T - finish instead of waiting for input
  });
}

/** The `id:` of the first reply header dig or kdig printed, or undefined. */
export function printedId(out: string): number | undefined {
  const m = /->>HEADER<<-.*?id: (\d+)/.exec(out);
  return m === null ? undefined : Number(m[1]);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
