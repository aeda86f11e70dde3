import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { CAPTURED_FILE, type CapturedQuery } from './corpus.js';

/**
 * Captures the fuzz corpus's real-client seeds: each dig (bind9 9.18) or kdig (Knot 3.2) command below sends one
 * query to a loopback listener here, which records the bytes and answers REFUSED so the client exits at once.
 * The result is committed (test/fixtures/fuzz/captured.json), so a fuzz run is deterministic from its seed: the
 * clients' random IDs and cookies are frozen in the file.
 *
 *   node --import ./test/loader/register.mjs test/fuzz/capture.ts
 */

const KEY = 'hmac-sha256:fz-key:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0'; // any key: lexa checks the MAC, the fuzzer mutates it
const COMMANDS: readonly (readonly [string, ...string[]])[] = [
  ['dig', 'web-1.lexa', 'A'],
  ['dig', 'web-1.lexa', 'AAAA', '+cookie'],
  ['dig', '_https._tcp.lexa', 'SRV', '+subnet=10.99.0.0/24'],
  ['dig', 'web-1.lexa', 'TXT', '+padding=128'],
  ['dig', 'lexa', 'SOA', '+nsid', '+expire'],
  ['dig', 'lexa', 'NS', '+dnssec', '+bufsize=4096'],
  ['dig', 'lexa', 'ANY', '+ednsopt=65001:abcdef'],
  ['dig', 'web-1.lexa', 'A', '+edns=1', '+noednsnegotiation'],
  ['dig', 'web-1.lexa', 'MX', '+noedns'],
  ['dig', 'www.web-1.lexa', 'CNAME', '+tcp', '+keepalive'],
  ['dig', '-x', '10.99.0.11'],
  ['dig', '-x', 'fd42:99::11'],
  ['dig', 'web-1.lexa', 'CAA', '+ednsflags=0x80'],
  ['dig', 'web-1.lexa', 'HTTPS', '+qr', '+adflag', '+cdflag'],
  ['dig', '-y', KEY, 'web-1.lexa', 'A'],
  ['dig', '-y', KEY, 'lexa', 'AXFR'],
  ['dig', 'lexa', 'AXFR'],
  ['dig', 'lexa', 'IXFR=5'],
  ['kdig', 'web-1.lexa', 'A', '+cookie', '+nsid'],
  ['kdig', 'db-1.lexa', 'AAAA', '+subnet=fd42:99::/48', '+padding=64'],
  ['kdig', '_mysql._tcp.lexa', 'SRV', '+bufsize=1232', '+tcp', '+alignment=128'],
  ['kdig', '-y', KEY, 'lexa', 'SOA'],
  ['kdig', 'lexa', 'IXFR=7'],
  ['kdig', 'web-1.node-1.lexa', 'A', '+ednsopt=10:0102030405060708', '+expire'],
];

/** The query's ID and question kept, QR set, rcode REFUSED (5): enough for either client to stop waiting. */
function refused(query: Buffer): Buffer {
  const out = Buffer.from(query);
  out[2] = (out[2]! | 0x80) & 0xf9; // QR; clear AA and TC
  out[3] = (out[3]! & 0xf0) | 5;
  return out;
}

async function main(): Promise<void> {
  const seen: CapturedQuery[] = [];
  let current = '';
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, r) => {
    seen.push({ client: current, transport: 'udp', hex: msg.toString('hex') });
    udp.send(refused(msg), r.port, r.address);
  });
  await new Promise<void>((ok) => udp.bind(0, '127.0.0.1', ok));
  const port = udp.address().port;
  const tcp = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        seen.push({ client: current, transport: 'tcp', hex: msg.toString('hex') });
        const r = refused(msg);
        const framed = Buffer.alloc(2 + r.length);
        framed.writeUInt16BE(r.length, 0);
        r.copy(framed, 2);
        s.end(framed);
      }
    });
  });
  await new Promise<void>((ok) => tcp.listen(port, '127.0.0.1', ok));
  for (const [cmd, ...args] of COMMANDS) {
    current = `${cmd} ${args.join(' ')}`;
    await new Promise<void>((ok) => execFile(cmd, ['@127.0.0.1', '-p', String(port), cmd === 'dig' ? '+tries=1' : '+retry=0', '+timeout=2', ...args], () => ok()));
  }
  udp.close();
  tcp.close();
  // One query per command (dig retries a refused query over no other transport; keep the first).
  const firsts = new Map<string, CapturedQuery>();
  for (const q of seen) if (!firsts.has(q.client)) firsts.set(q.client, q);
  writeFileSync(CAPTURED_FILE, `${JSON.stringify([...firsts.values()], null, 1)}\n`);
  process.stdout.write(`captured ${firsts.size} queries from ${COMMANDS.length} commands into ${CAPTURED_FILE}\n`);
}

await main();
