/**
 * How much lexa amplifies over UDP: the bytes an attacker's spoofed victim receives per byte of query, through
 * the real UDP listener (startPlainDns, as the daemon opens it) on loopback, with response rate limiting on (the
 * defaults, nothing exempt: the figures a non-loopback source sees) and off. SYNTHETIC snapshot: INSTANCES
 * hand-made instances, each with IPv4 and IPv6 and the service `big` (the largest SRV set).
 *
 * For each case it prints the single-packet ratio (one reply / one query) and the ratio over a flood of
 * FLOOD_QPS queries a second for FLOOD_SECONDS from one source (bytes received / bytes sent); and the same
 * without RRL with replies capped at 1232 (`max_udp_reply = 1232`), the alternative to the default ceiling.
 *
 *   npm run build && node dist/bench/amplification.js
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { defaultConfig } from '../config/index.js';
import { silentLogger } from '../log/index.js';
import { createHandler, resolverOptions } from '../dns/index.js';
import { ResponseRateLimiter, startPlainDns, type RateLimitSettings } from '../servers/dns/index.js';
import { Snapshot, type Instance } from '../streams/index.js';
import { configService, runningContainer } from './synthetic.js';

/** Enough instances that `*.lexa ANY` and the SRV set both fill a 4096-byte reply. */
const INSTANCES = 200;
/**
 * Flood rates: well above the default 200 replies a second, and exactly at it (the attacker's best with RRL on:
 * every query answered, the volume capped). Paced in ticks so the kernel does not drop the flood itself.
 */
const FLOOD_QPS = [2000, 200] as const;
const FLOOD_SECONDS = 2;
const TICK_MS = 10;
/** The attacker's (spoofed victim's) address; loopback but not exempt here. */
const SOURCE = '127.0.0.2';
/** Waiting for stragglers after the flood. */
const DRAIN_MS = 300;

const QUERIES: readonly { readonly label: string; readonly name: string; readonly type: string }[] = [
  { label: '*.lexa ANY', name: '*.lexa', type: 'ANY' },
  { label: `_big._tcp.service.lexa SRV (${INSTANCES} endpoints)`, name: '_big._tcp.service.lexa', type: 'SRV' },
];

function query(id: number, name: string, type: string): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    // dns-packet encodes ANY (255) though its RecordType does not list it.
    questions: [{ name, type: type as dnsPacket.RecordType }],
    // The largest size an attacker would ask for that lexa honours (max_udp_reply caps it at 4096 by default).
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096, flags: 0 } as dnsPacket.Answer],
  });
}

function snapshot(): Snapshot {
  const instances: Instance[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    instances.push(runningContainer(`amp-${i}`, `10.88.${i >> 8}.${i & 255}`, `fd88::${i.toString(16)}`, [configService('big', 443)]));
  }
  return Snapshot.empty().withList(instances, [], false, Date.now());
}

interface Flood {
  readonly sent: number;
  readonly sentBytes: number;
  readonly replies: number;
  readonly truncated: number;
  readonly receivedBytes: number;
  readonly largest: number;
}

/** Sends `qps` queries a second for FLOOD_SECONDS from SOURCE and counts what comes back. */
async function flood(port: number, q: Buffer, qps: number): Promise<Flood> {
  const sock = dgram.createSocket('udp4');
  let replies = 0;
  let truncated = 0;
  let receivedBytes = 0;
  let largest = 0;
  sock.on('message', (m) => {
    replies++;
    receivedBytes += m.length;
    largest = Math.max(largest, m.length);
    if (m[2]! & 0x02) truncated++;
  });
  await new Promise<void>((resolve) => sock.bind(0, SOURCE, resolve));
  const perTick = (qps * TICK_MS) / 1000;
  const ticks = (FLOOD_SECONDS * 1000) / TICK_MS;
  let sent = 0;
  const start = Date.now();
  for (let t = 0; t < ticks; t++) {
    for (let i = 0; i < perTick; i++, sent++) sock.send(q, port, '127.0.0.1');
    const next = start + (t + 1) * TICK_MS;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await new Promise((r) => setTimeout(r, DRAIN_MS));
  sock.close();
  return { sent, sentBytes: sent * q.length, replies, truncated, receivedBytes, largest };
}

async function main(): Promise<void> {
  const config = defaultConfig();
  const snap = snapshot();
  const handle = createHandler({ snapshot: () => snap, resolver: resolverOptions(config.lxd.suffix, config.dns), udpPayload: config.dns.ednsUdpSize, log: silentLogger });
  const rrl: RateLimitSettings = { ...config.dns.rateLimit!, exempt: [] };
  console.log(`lexa UDP amplification, SYNTHETIC snapshot of ${INSTANCES} instances, real UDP listener on loopback (Node ${process.version}).`);
  console.log(`Defaults: EDNS advertised ${config.dns.ednsUdpSize}, replies up to min(client's EDNS size, ${config.dns.maxUdpReply}).`);
  console.log(`RRL on: ${rrl.responsesPerSecond}/s per /${rrl.ipv4Prefix}, slip ${rrl.slip}, window ${rrl.windowMs / 1000} s, nothing exempt.`);
  console.log(`Floods of ${FLOOD_SECONDS} s from ${SOURCE}, EDNS 4096.\n`);
  console.log('query'.padEnd(44) + 'RRL  max    q/s  query  reply  1-packet   sent B  recvd B  replies (TC)   flood ratio');
  const variants = [
    ...FLOOD_QPS.flatMap((qps) => [{ on: false, max: config.dns.maxUdpReply, qps }, { on: true, max: config.dns.maxUdpReply, qps }]),
    { on: false, max: 1232, qps: FLOOD_QPS[0] },
  ];
  for (const { label, name, type } of QUERIES) {
    for (const { on, max, qps } of variants) {
      const servers = await startPlainDns({
        binds: [{ host: '127.0.0.1', port: 0 }],
        handle,
        log: silentLogger,
        limits: { ...config.dns.limits, maxReply: max, rateLimiter: on ? new ResponseRateLimiter(rrl) : null },
      });
      const q = query(1, name, type);
      const f = await flood(servers.ports[0]!, q, qps);
      await servers.close();
      console.log(
        label.padEnd(44) +
          (on ? 'on ' : 'off').padEnd(5) +
          String(max).padEnd(5) +
          String(qps).padStart(5) +
          String(q.length).padStart(5) +
          String(f.largest).padStart(7) +
          `${(f.largest / q.length).toFixed(1)}x`.padStart(10) +
          String(f.sentBytes).padStart(9) +
          String(f.receivedBytes).padStart(9) +
          `${f.replies} (${f.truncated})`.padStart(15) +
          `${(f.receivedBytes / f.sentBytes).toFixed(2)}x`.padStart(14),
      );
    }
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
