/**
 * The lexa side of the server benchmark (scripts/bench.sh): lexa's real DNS servers (`startPlainDns`, UDP and TCP) on
 * one address, answering from a SYNTHETIC snapshot of N running containers `bench-1 … bench-N`, each with one
 * IPv4 address 10.77.x.y on eth0. The snapshot is synthetic because a real LXD cannot hold 1000 containers on the
 * machines lexa is developed on; the instances go through the same LXD-JSON → model translation (`toInstance`)
 * and the same `Snapshot.withList` a real list does, and every byte on the wire goes through the daemon's path.
 *
 *   node dist/bench/server.js [--host 127.0.0.1] [--port 0] [--instances 1000] [--bare (no metrics counters)]
 *       Serves until SIGTERM/SIGINT. When ready, prints one line to stdout:
 *       `ready pid=<pid> port=<port> instances=<n> suffix=<suffix> io=<recvmmsg|dgram>`; notes go to stderr.
 *   --io dgram serves UDP with Node's dgram instead of the batched addon (the default where it is built).
 *   --encrypted also serves DoT, DoH and DoQ (generated certificate), their ports in the ready line: dot=… doh=… doq=…
 *   node dist/bench/server.js --zone [--instances 1000]
 *       Prints every record served (host A and AAAA, `eth0.if.` targets, SRV per endpoint of `svc-1 … svc-100`)
 *       as zone-file lines, for the peers' zones and the mixed query file.
 *   node dist/bench/server.js --records [--instances 1000]
 *       Prints `<name>.<suffix> <address>` per instance and exits: the one list the peers' zone files and the
 *       query file are written from, so every server serves exactly the same names.
 */
import { parseArgs } from 'node:util';
import { defaultConfig } from '../config/index.js';
import { memoryLogger, silentLogger } from '../log/index.js';
import { instrument, ListenerCounters } from '../metrics/index.js';
import type { DnsContext } from '../servers/descriptor.js';
import { createHandler, resolverOptions } from '../dns/index.js';
import { ResponseRateLimiter, startPlainDns } from '../servers/dns/index.js';
import { DNS_TRANSPORTS } from '../servers/registry.js';
import type { Listeners } from '../servers/transport.js';
import { generateSelfSigned } from '../tls/index.js';
import { Snapshot, toInstance, type LxdInstance } from '../streams/index.js';
import { lxdRunningContainer } from './synthetic.js';

/** Host labels are `bench-<i>`, i = 1 … N. */
const NAME_PREFIX = 'bench-';
/** Addresses 10.77.x.y with y in 1…250 (no .0 or .255 in any /24): room for 64,000 instances. */
const HOSTS_PER_OCTET = 250;
const MAX_INSTANCES = 256 * HOSTS_PER_OCTET;

/** Services offered: instance i offers `svc-<(i - 1) % SERVICES + 1>` (tcp 443), so each has N / SERVICES endpoints. */
const SERVICES = 100;

export interface BenchRecord {
  readonly name: string;
  readonly address: string;
  readonly address6: string;
  readonly service: string;
}

/** The i-th (1-based) synthetic instance's host label, addresses and the service it offers. */
export function benchRecord(i: number): BenchRecord {
  const k = i - 1;
  return {
    name: `${NAME_PREFIX}${i}`,
    address: `10.77.${Math.floor(k / HOSTS_PER_OCTET)}.${(k % HOSTS_PER_OCTET) + 1}`,
    address6: `fd77::${i.toString(16)}`,
    service: `svc-${(k % SERVICES) + 1}`,
  };
}

/**
 * Every record lexa answers for the synthetic instances, as zone-file lines (owner TYPE rdata), so the peers serve
 * the same: host A/AAAA, the `eth0.if.` names SRV targets point at, and one SRV per endpoint (weight 255 is how
 * lexa writes weight 1; see Service.weight).
 */
function zoneLines(n: number, suffix: string): string[] {
  const out: string[] = [];
  for (const r of records(n)) {
    for (const owner of [`${r.name}.${suffix}.`, `eth0.if.${r.name}.${suffix}.`]) out.push(`${owner} A ${r.address}`, `${owner} AAAA ${r.address6}`);
    out.push(`_${r.service}._tcp.service.${suffix}. SRV 1 255 443 eth0.if.${r.name}.${suffix}.`);
  }
  return out;
}

/** What LXD's `GET /1.0/instances?recursion=2` reports for one running container with one managed NIC. */
function lxdInstance(r: BenchRecord): LxdInstance {
  return lxdRunningContainer(r.name, r.address, r.address6, 'lxdbr0', { [`user.lexa.service.${r.service}.port`]: '443' });
}

function records(n: number): BenchRecord[] {
  return Array.from({ length: n }, (_, k) => benchRecord(k + 1));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      instances: { type: 'string', default: '1000' },
      records: { type: 'boolean', default: false },
      zone: { type: 'boolean', default: false },
      io: { type: 'string', default: 'recvmmsg' },
      bare: { type: 'boolean', default: false },
      encrypted: { type: 'boolean', default: false },
    },
  });
  const n = Number(values.instances);
  const port = Number(values.port);
  if (!Number.isInteger(n) || n < 1 || n > MAX_INSTANCES) throw new Error(`--instances: 1…${MAX_INSTANCES}`);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port: 0…65535');
  // lexa's configuration with no config file: the defaults a user gets (TTL, TCP limits, suffix), bind aside.
  const config = defaultConfig();
  const suffix = config.lxd.suffix;

  if (values.zone) {
    process.stdout.write(zoneLines(n, suffix).map((l) => `${l}\n`).join(''));
    return;
  }
  if (values.records) {
    process.stdout.write(records(n).map((r) => `${r.name}.${suffix} ${r.address}\n`).join(''));
    return;
  }

  const snapshot = Snapshot.empty().withList(records(n).map((r) => toInstance(lxdInstance(r))), [], false, Date.now());
  const binds = [{ host: values.host, port }];
  // The daemon's logger at its default level writes nothing per query either; silent keeps stdout for the
  // ready line.
  const handler = createHandler({ snapshot: () => snapshot, resolver: resolverOptions(suffix, config.dns), udpPayload: config.dns.ednsUdpSize, log: silentLogger });
  // As the daemon serves it: every query counted for /metrics (instrument), unless --bare asks for the handler alone.
  const handle = values.bare ? handler : instrument(handler, new ListenerCounters('dns', 'udp', values.host, port));
  const limits = {
    ...config.dns.limits,
    maxReply: config.dns.maxUdpReply,
    // As the daemon does (loopback, where dnsperf asks from, is exempt by default: this costs the exempt check).
    rateLimiter: config.dns.rateLimit === null ? null : new ResponseRateLimiter(config.dns.rateLimit),
    batch: values.io !== 'dgram',
  };
  if (values.io !== 'recvmmsg' && values.io !== 'dgram') throw new Error('--io: recvmmsg or dgram');
  // The transport's own log says which UDP path serves (the batched one needs its addon built at install).
  const startLog = memoryLogger();
  const servers = await startPlainDns({ binds, handle, log: startLog, limits });
  const io = startLog.lines.find((l) => l['msg'] === 'dns/udp: listening')?.['io'];
  // --encrypted: DoT, DoH and DoQ as well, on free ports, with a generated certificate, around the same handler.
  const extra: Listeners[] = [];
  const encryptedPorts: string[] = [];
  if (values.encrypted) {
    // Every TLS transport of the registry, opened by its descriptor as the daemon opens it (with the defaults' limits).
    const tls = await generateSelfSigned('localhost', binds);
    const context: DnsContext = {
      served: () => ({ handle, counters: [] }),
      transfer: () => undefined, // no zone transfers in the bench: every query falls through to the handler
      log: () => silentLogger,
      material: () => tls,
      rateLimited: { slipped: 0, dropped: 0 },
    };
    for (const d of DNS_TRANSPORTS.filter((d) => d.tls !== null)) {
      const opened = await d.prepare(config, context).open({ host: values.host, port: 0 });
      extra.push(opened.listeners);
      encryptedPorts.push(`${d.name}=${opened.listeners.ports[0]}`);
    }
  }

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void Promise.all([servers.close(), ...extra.map((l) => l.close())]).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  console.error(
    `lexa bench server: SYNTHETIC snapshot of ${n} running containers (${NAME_PREFIX}1 … ${NAME_PREFIX}${n}.${suffix},` +
      ' an IPv4 and an IPv6 each, one of 100 services): a real LXD cannot hold that many here; the DNS path served (startPlainDns: UDP + TCP,' +
      ` handler, resolver, wire codec) is the daemon's own. Node ${process.version}.`,
  );
  console.log(`ready pid=${process.pid} port=${servers.ports[0]} instances=${n} suffix=${suffix} io=${String(io)} ${encryptedPorts.join(' ')}`.trimEnd());
}

main().catch((err: unknown) => {
  console.error(`lexa bench server: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
