import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import { loadConfig } from '../../../src/config/index.js';
import { startDaemon, type Daemon } from '../../../src/daemon.js';
import { frameMessage } from '../../../src/servers/dns/stream.js';
import { LXD_SOCKET } from '../../helpers/lxd-cli.js';
import { dnsCorpus, FUZZ_TSIG_KEY } from '../corpus.js';
import { checkDnsReply, checkReplyMessage } from '../dns-oracle.js';
import { check, Finding, within, type Target } from '../harness.js';
import { DNS_MUTATORS, mutate, mutateText } from '../mutate.js';
import type { Rng } from '../random.js';
import { checkRestReply, exchange, requestText } from './rest.js';

/** Where scripts/doq-client.sh builds the Go DoQ client (the independent one the peer tests run). */
const DOQ_CLIENT = `${process.env['LEXA_TESTBED_DIR'] ?? '/var/lib/lexa-testbed'}/doq-client`;
/** A reply (or the end of a transfer) must arrive within this on loopback. */
const REPLY_DEADLINE_MS = 3_000;
/** A zone transfer's messages end when nothing more arrives for this long. */
const TRANSFER_QUIET_MS = 200;
/** Cases that run the Go DoQ client (a process and a QUIC handshake each: ~0.1 s), one in this many. */
const DOQ_EVERY = 50;
/**
 * The batched UDP path drops a datagram larger than its slot (udp-batch.ts MIN_SLOT, with the default
 * max_udp_reply): by design, no query lexa answers is that large. Such a case expects no reply.
 */
const UDP_SLOT_BYTES = 4096;
/** Waiting for the first list of the real LXD at start. */
const SYNC_DEADLINE_MS = 60_000;

/**
 * The configuration of the fuzzed daemon: every listener on loopback port 0, transfers allowed from loopback and
 * signed with FUZZ_TSIG_KEY, the agent endpoint on; it watches the real LXD but writes nothing to it (no tokens
 * issued).
 */
const HCL = `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    bind {
      host = "127.0.0.1"
      port = 0
    }
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    transfer {
      allow = ["127.0.0.0/8"]
      key {
        name   = "${FUZZ_TSIG_KEY.name}"
        secret = "${FUZZ_TSIG_KEY.secret.toString('base64')}"
      }
    }
    dot {
      bind {
        host = "127.0.0.1"
        port = 0
      }
    }
    doh {
      bind {
        host = "127.0.0.1"
        port = 0
      }
    }
    quic {
      bind {
        host = "127.0.0.1"
        port = 0
      }
    }
  }
  agent {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    issue_tokens = false
  }
}
`;

const isTransfer = (q: Buffer): boolean => {
  const off = (() => {
    let i = 12;
    while (i < q.length && q[i]! !== 0 && q[i]! < 0x40) i += 1 + q[i]!;
    return i + 1;
  })();
  return off + 2 <= q.length && [251, 252].includes(q.readUInt16BE(off));
};
const dropped = (q: Buffer): boolean => q.length < 12 || (q[2]! & 0x80) !== 0;

/** One UDP query and its reply (or none, for what the server drops). */
async function udpCase(port: number, maxReply: number, query: Buffer): Promise<void> {
  const socket = dgram.createSocket('udp4');
  try {
    const reply = new Promise<Buffer>((resolve) => socket.once('message', resolve));
    await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
    socket.send(query, port, '127.0.0.1');
    if (dropped(query) || query.length > UDP_SLOT_BYTES) return;
    checkDnsReply(query, await within(REPLY_DEADLINE_MS, 'a UDP reply', reply), { kind: 'datagram', max: maxReply });
  } finally {
    socket.close();
  }
}

/** One query on a new TCP or TLS connection: its reply, or every message of a transfer. */
async function streamCase(connect: () => net.Socket, query: Buffer, split: number): Promise<void> {
  const s = connect();
  s.on('error', () => undefined);
  try {
    const frames: Buffer[] = [];
    let buf = Buffer.alloc(0);
    const got = new Promise<void>((resolve) => {
      let quiet: NodeJS.Timeout | undefined;
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          frames.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (frames.length > 0 && !isTransfer(query)) resolve();
        clearTimeout(quiet);
        quiet = setTimeout(resolve, TRANSFER_QUIET_MS);
      });
      s.on('close', () => resolve());
    });
    const framed = frameMessage(query);
    s.write(framed.subarray(0, split));
    s.write(framed.subarray(split));
    if (dropped(query)) return;
    await within(REPLY_DEADLINE_MS, 'a stream reply', got);
    check(frames.length > 0, 'the connection closed without a reply');
    if (frames.length === 1) checkDnsReply(query, frames[0]!, { kind: 'message' });
    else for (const f of frames) checkReplyMessage(query, f, 65535);
  } finally {
    s.destroy();
  }
}

/** One DoH request (GET with ?dns= or POST) over HTTPS/1.1. */
function dohCase(port: number, rng: Rng, query: Buffer): Promise<void> {
  const post = rng.chance(0.5);
  let path = post ? '/dns-query' : `/dns-query?dns=${query.toString('base64url')}`;
  if (rng.chance(0.2)) path = mutateText(rng, path, [path]).replace(/[^\x21-\x7e]/g, '');
  return within(REPLY_DEADLINE_MS, 'a DoH reply', new Promise<void>((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, method: post ? 'POST' : 'GET', rejectUnauthorized: false, headers: post ? { 'content-type': rng.chance(0.9) ? 'application/dns-message' : 'text/plain' } : {} },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          try {
            const status = res.statusCode ?? 0;
            check([200, 400, 404, 405, 413, 414, 415].includes(status), `DoH status ${status}`);
            // What the server read: the body, or the `dns` parameter of the (possibly mutated) path.
            const sent = post ? query : Buffer.from(new URLSearchParams(path.slice(path.indexOf('?') + 1)).get('dns') ?? '', 'base64url');
            if (status === 200) checkDnsReply(sent, Buffer.concat(parts), { kind: 'message' });
            resolve();
          } catch (err) {
            reject(err as Error);
          }
        });
      },
    );
    req.on('error', (err) => reject(new Finding(`DoH request failed: ${err.message}`)));
    req.end(post ? query : undefined);
  }));
}

/** One agent connection: mutated frames, then what the endpoint says until it closes or goes quiet. */
async function agentCase(port: number, rng: Rng): Promise<void> {
  const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  s.on('error', () => undefined);
  try {
    await within(REPLY_DEADLINE_MS, 'the agent TLS handshake', new Promise<void>((r) => (s.once('secureConnect', r), s.once('close', r))));
    const hello = JSON.stringify({ type: 'hello', version: 2, credential: 'x'.repeat(32) });
    for (let n = 1 + rng.int(3); n > 0; n--) {
      const body = Buffer.from(rng.chance(0.5) ? mutateText(rng, hello, [hello]) : hello);
      const head = Buffer.alloc(4);
      head.writeUInt32BE(rng.chance(0.8) ? body.length : rng.int(0x20000), 0);
      s.write(Buffer.concat([head, body]));
    }
    await new Promise((r) => setTimeout(r, 20));
  } finally {
    s.destroy();
  }
}

/** The Go DoQ client (an independent QUIC stack) with a mutated name and type, or breaking the framing. */
function doqCase(port: number, rng: Rng): Promise<void> {
  const name = mutateText(rng, rng.pick(['web-1.lexa.', 'lexa.', '_https._tcp.lexa.']), ['lexa.']).replace(/[^\x21-\x7e]/g, '') || '.';
  const args = ['-server', `127.0.0.1:${port}`, '-insecure', '-timeout', '2s', '-name', name, '-type', rng.pick(['A', 'AAAA', 'SRV', 'SOA', 'AXFR', 'ANY', 'TXT'])];
  if (rng.chance(0.4)) args.push('-bad', rng.pick(['truncated', 'trailing', 'short']));
  if (rng.chance(0.1)) args.push('-uni');
  if (rng.chance(0.1)) args.push('-alpn', 'h3');
  return within(REPLY_DEADLINE_MS * 3, 'the Go DoQ client', new Promise<void>((resolve) => execFile(DOQ_CLIENT, args, () => resolve())));
}

/**
 * The real listeners: a lexa daemon (startDaemon, as the CLI runs it) watching the real LXD, every transport on
 * loopback, and mutated queries and requests through real sockets: UDP, TCP and DoT (one query per connection,
 * split in two writes), DoH over HTTPS, the REST API over TLS, the agent endpoint, and DoQ through the Go client
 * (names, types and framing violations; DoQ's byte-level cases run in-process, doq-frames). Oracles: the DNS and
 * REST oracles on every reply, nothing logged at error level, and every transport still answering a known-good
 * query after the last case.
 */
export const socketsTarget: Target = {
  name: 'sockets',
  weight: 1,
  covers: 'the running daemon: UDP, TCP, DoT, DoH, DoQ (Go client), REST (TLS), agent endpoint, on loopback, watching the real LXD',
  async open(ctx) {
    if (!existsSync(DOQ_CLIENT)) throw new Error(`no Go DoQ client at ${DOQ_CLIENT}: run scripts/doq-client.sh (as scripts/test.sh does)`);
    const dir = mkdtempSync(join(tmpdir(), 'fz-daemon-'));
    const file = join(dir, 'lexa.hcl');
    writeFileSync(file, HCL);
    const config = await loadConfig({ path: file });
    const daemon: Daemon = await startDaemon(config, ctx.log);
    const { ports } = daemon;
    const dns = ports.dns[0]!;
    const maxReply = config.dns.maxUdpReply;
    const corpus = dnsCorpus();
    const tcp = () => net.connect(dns, '127.0.0.1');
    const dot = () => tls.connect({ host: '127.0.0.1', port: ports.dot[0]!, rejectUnauthorized: false });
    const rest = () => tls.connect({ host: '127.0.0.1', port: ports.rest[0]!, rejectUnauthorized: false });
    const soa = dnsPacket.encode({ type: 'query', id: 4242, questions: [{ type: 'SOA', name: 'lexa' }] });
    // Synced: a name below the apex that no instance has is NXDOMAIN (SERVFAIL until LXD has been listed; the
    // apex answers either way, so it cannot tell).
    const probe = dnsPacket.encode({ type: 'query', id: 4243, questions: [{ type: 'A', name: 'fz-nowhere.lexa' }] });
    const started = Date.now();
    for (;;) {
      const r = await new Promise<Buffer | undefined>((resolve) => {
        const s = dgram.createSocket('udp4');
        const timer = setTimeout(() => (s.close(), resolve(undefined)), 500);
        s.once('message', (m) => (clearTimeout(timer), s.close(), resolve(m)));
        s.send(probe, dns, '127.0.0.1');
      });
      if (r !== undefined && (r[3]! & 0xf) === 3) break;
      if (Date.now() - started > SYNC_DEADLINE_MS) throw new Error(`the daemon did not sync with ${LXD_SOCKET} in ${SYNC_DEADLINE_MS} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
    ctx.log.take();
    return {
      async run(rng, index) {
        const query = mutate(rng, rng.pick(corpus), corpus, DNS_MUTATORS);
        const pick = rng.int(100);
        if (index % DOQ_EVERY === DOQ_EVERY - 1) {
          ctx.note({ transport: 'doq' });
          return doqCase(ports.doq[0]!, rng);
        }
        ctx.note({ transport: pick, query: query.toString('hex') });
        if (pick < 40) return udpCase(dns, maxReply, query);
        if (pick < 55) return streamCase(tcp, query, rng.int(query.length + 3));
        if (pick < 65) return streamCase(dot, query, rng.int(query.length + 3));
        if (pick < 85) return dohCase(ports.doh[0]!, rng, query);
        if (pick < 95) {
          const req = requestText(rng);
          ctx.note({ transport: 'rest', request: req.raw.toString('latin1') });
          return checkRestReply(req, await exchange(rest, req.raw, true));
        }
        return agentCase(ports.agent[0]!, rng);
      },
      async alive() {
        await udpCase(dns, maxReply, soa);
        await streamCase(tcp, soa, 1);
        await streamCase(dot, soa, 0);
        const r = await exchange(rest, Buffer.from('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), false);
        check(typeof r === 'object' && r.status === 200, 'REST /healthz is not 200');
        const doh = await new Promise<number>((resolve) =>
          https.get({ host: '127.0.0.1', port: ports.doh[0]!, path: `/dns-query?dns=${soa.toString('base64url')}`, rejectUnauthorized: false }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', () => resolve(0)),
        );
        check(doh === 200, `DoH answered ${doh}`);
        const code = await new Promise<number>((resolve) =>
          execFile(DOQ_CLIENT, ['-server', `127.0.0.1:${ports.doq[0]}`, '-insecure', '-timeout', '3s', '-name', 'lexa.', '-type', 'SOA'], (err) => resolve(err === null ? 0 : 1)),
        );
        check(code === 0, 'the Go DoQ client got no answer');
      },
      async close() {
        await daemon.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
