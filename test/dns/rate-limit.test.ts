import dgram from 'node:dgram';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import dnsPacket from 'dns-packet';
import { memoryLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/index.js';
import { ResponseRateLimiter, startPlainDns, startUdp } from '../../src/servers/dns/index.js';
import { dig } from '../helpers/dig.js';
import { clustered, OPTS } from '../helpers/dns-fixture.js';
import { STREAM_LIMITS } from '../helpers/transport-stub.js';

// Response rate limiting through the real UDP listener on loopback, both UDP paths (batched recvmmsg and dgram):
// a flood from 127.0.0.5 is cut to its rate (the rest dropped or slipped as empty TC replies), a real dig from
// that address then retries over TCP and gets its answer, and 127.0.0.1 is answered throughout. Prefixes are
// /32 here so the two loopback addresses have separate accounts, and nothing is exempt.

const RATE = 5;
const FLOOD = 400;
/** How long the flood's source waits for no more replies before counting (a quiet gap, not a speed bound). */
const QUIET_MS = 500;
/** Queries sent back to back before the flood yields to the event loop. */
const CHUNK = 25;

const log = memoryLogger();
const handle = createHandler({ snapshot: clustered, resolver: OPTS, log });

function query(id: number, name: string, type: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    // dns-packet encodes ANY (255) though its RecordType does not list it.
    questions: [{ name, type: type as dnsPacket.RecordType }],
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as dnsPacket.Answer],
  });
}

/** Sends `count` queries from `from` and collects the replies until none has come for QUIET_MS. */
function flood(from: string, port: number, count: number): Promise<{ replies: Buffer[]; sentBytes: number }> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    let sentBytes = 0;
    let quiet: NodeJS.Timeout | undefined;
    let sending = true;
    const done = () => {
      if (sending) return wait();
      sock.close();
      resolve({ replies, sentBytes });
    };
    const wait = () => {
      clearTimeout(quiet);
      quiet = setTimeout(done, QUIET_MS);
    };
    sock.on('message', (m) => {
      replies.push(m);
      wait();
    });
    sock.on('error', reject);
    sock.bind(0, from, async () => {
      // In chunks, yielding between them, so the server's receive queue is not what limits the flood.
      for (let i = 0; i < count; i++) {
        const q = query(i, '*.lexa', 'ANY');
        sentBytes += q.length;
        sock.send(q, port, '127.0.0.1');
        if (i % CHUNK === CHUNK - 1) await new Promise((r) => setTimeout(r, 1));
      }
      sending = false;
      wait();
    });
  });
}

for (const io of ['recvmmsg', 'dgram'] as const) {
  t.test(`${io}: a flood from 127.0.0.5 is limited, dig there falls back to TCP, 127.0.0.1 is answered`, async (t) => {
    const rrl = new ResponseRateLimiter({
      responsesPerSecond: RATE,
      slip: 2,
      windowMs: 60_000,
      ipv4Prefix: 32,
      ipv6Prefix: 128,
      maxPrefixes: 100,
      exempt: [],
    });
    const servers = await startPlainDns({
      binds: [{ host: '127.0.0.1', port: 0 }],
      handle,
      log,
      limits: { ...STREAM_LIMITS, maxReply: 4096, rateLimiter: rrl, batch: io === 'recvmmsg' },
    });
    t.teardown(() => servers.close());
    const port = servers.ports[0]!;
    const listening = log.lines.filter((l) => l['msg'] === 'dns/udp: listening' && l['port'] === port).at(-1);
    t.equal(listening?.['io'], io, `served by ${io}`);

    const { replies, sentBytes } = await flood('127.0.0.5', port, FLOOD);
    const decoded = replies.map((r) => dnsPacket.decode(r));
    const full = decoded.filter((r) => !r.flag_tc);
    const slips = decoded.filter((r) => r.flag_tc);
    t.ok(full.length >= RATE, `the first second's credit is answered (${full.length})`);
    t.ok(full.length < FLOOD / 10, `but only a few of ${FLOOD} (${full.length})`);
    t.ok(full.every((r) => (r.answers?.length ?? 0) > 0), 'answered in full');
    // The kernel may drop some of the flood before the server reads it: count what the limiter saw.
    const { slipped, dropped } = rrl.counts;
    t.ok(full.length + slipped + dropped > FLOOD / 2, `most of the flood reached the server (${full.length + slipped + dropped})`);
    t.equal(slips.length, slipped, 'every slip the limiter chose arrived');
    t.ok(Math.abs(slipped - dropped) <= 1, `every second limited reply slips, the others are dropped: ${slipped} / ${dropped}`);
    t.ok(slips.every((r) => (r.answers?.length ?? 0) === 0 && r.questions?.[0]?.name === '*.lexa'), 'slips carry the question, no records');
    const received = replies.reduce((n, r) => n + r.length, 0);
    t.ok(received < sentBytes, `the flood got fewer bytes back (${received}) than it sent (${sentBytes})`);

    const other = await flood('127.0.0.1', port, 1);
    const answer = dnsPacket.decode(other.replies[0]!);
    t.equal(answer.flag_tc, false, '127.0.0.1: not truncated');
    t.ok((answer.answers?.length ?? 0) > 0, '127.0.0.1: answered');

    // 127.0.0.5 is now far in debt (window 60 s): dig's UDP query is dropped or slipped; a slip
    // sends it to TCP, which is never limited. +tries=3 rides over a drop.
    const viaTcp = await dig(port, ['-b', '127.0.0.5', '+tries=3', '+time=1'])('web-1.lexa', 'A');
    t.match(viaTcp.raw, /Truncated, retrying in TCP mode/, 'dig got a slip and retried over TCP');
    t.equal(viaTcp.status, 'NOERROR');
    t.same(viaTcp.answer, ['web-1.lexa. 0 IN A 10.99.0.11'], 'and got its answer');
  });
}

t.test('an addon built before source addresses were reported is not used with rate limiting: dgram serves', async (t) => {
  // A stand-in for an old udp_batch.node: opens "sockets" that have no `sources`.
  const stale = join(mkdtempSync(join(tmpdir(), 'lexa-stale-addon-')), 'udp_batch.cjs');
  writeFileSync(stale, 'exports.open = () => ({ port: 1, handle: {} });\nexports.close = () => {};\n');
  const rrl = new ResponseRateLimiter({ responsesPerSecond: 1, slip: 0, windowMs: 60_000, ipv4Prefix: 32, ipv6Prefix: 128, maxPrefixes: 10, exempt: [] });
  const servers = await startUdp({ binds: [{ host: '127.0.0.1', port: 0 }], handle, log, limits: { maxReply: 4096, rateLimiter: rrl, addonPath: stale } });
  t.teardown(() => servers.close());
  const port = servers.ports[0]!;
  t.equal(log.lines.filter((l) => l['msg'] === 'dns/udp: listening' && l['port'] === port).at(-1)?.['io'], 'dgram', 'served by dgram');
  t.ok(log.lines.some((l) => l['msg'] === 'dns/udp: batched I/O unavailable, using dgram' && String(l['reason']).includes('predates rate limiting')), 'and says why');
  const { replies } = await flood('127.0.0.5', port, 10);
  t.equal(replies.length, 1, 'rate limiting applies: 1 of 10 answered');
});
