import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import dnsPacket, { type Packet } from 'dns-packet';
import { notifyMessage } from '../../src/replication/notify.js';
import { signMessage, type TsigKey } from '../../src/replication/tsig.js';

/**
 * The DNS seed corpus: queries built with dns-packet for every name form and qtype the name-form table uses, EDNS
 * options (cookie, ECS, padding, keepalive, unknown), transfers (AXFR, IXFR with its SOA), NOTIFY and UPDATE,
 * and TSIG-signed queries and transfers with FUZZ_TSIG_KEY (which the fuzzed daemon trusts, so a signed seed
 * reaches the code behind the MAC check); plus the queries real clients sent (capture.ts).
 */

/** Where capture.ts wrote dig's and kdig's queries. */
export const CAPTURED_FILE = fileURLToPath(new URL('../fixtures/fuzz/captured.json', import.meta.url));

export interface CapturedQuery {
  /** The command line that sent it. */
  readonly client: string;
  readonly transport: 'udp' | 'tcp';
  readonly hex: string;
}

/** The TSIG key the fuzzed configurations hold (`server.dns.transfer.key`). */
export const FUZZ_TSIG_KEY: TsigKey = { name: 'fz-key', algorithm: 'hmac-sha256', secret: Buffer.from('secretsecretsecretsecret') };
/** Signed seeds carry this time (TSIG's time is mutated like any other field; the check answers BADTIME). */
const SIGNED_AT = 1_700_000_000;

const NAMES = [
  'web-1.lexa', 'WEB-1.LeXa', 'web-1.node-1.lexa', 'api.other.lexa', 'eth1.if.web-1.lexa', '_https._tcp.lexa', '_mysql._tcp.lexa',
  '_dns._udp.web-1.lexa', 'app.https.service.lexa', 'node-1.node.lexa', 'lexa', 'ns.lexa', 'nx.lexa', '*.lexa', 'web-3.lexa',
  '11.0.99.10.in-addr.arpa', '99.10.in-addr.arpa', '1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa',
  'example.com', '.', 'a.b.c.d.e.f.g.lexa',
];
const TYPES = ['A', 'AAAA', 'SRV', 'TXT', 'MX', 'NS', 'SOA', 'ANY', 'CNAME', 'PTR', 'CAA', 'HTTPS', 'NULL', 'DNSKEY'] as const;

function query(id: number, name: string, type: string, over: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }], ...over });
}

function opt(options: unknown[], udpPayloadSize = 1232): Partial<Packet> {
  return { additionals: [{ type: 'OPT', name: '.', udpPayloadSize, flags: 0, options } as never] };
}

function built(): Buffer[] {
  const out: Buffer[] = [];
  let id = 1;
  for (const name of NAMES) for (const type of TYPES) out.push(query(id++, name, type));
  const ednsVariants: unknown[][] = [
    [],
    [{ code: 'COOKIE', data: Buffer.from('0102030405060708', 'hex') }],
    [{ code: 'COOKIE', data: Buffer.alloc(24, 7) }],
    [{ code: 'CLIENT_SUBNET', family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '10.99.0.0' }],
    [{ code: 'CLIENT_SUBNET', family: 2, sourcePrefixLength: 56, scopePrefixLength: 0, ip: 'fd42:99::' }],
    [{ code: 'PADDING', length: 100 }],
    [{ code: 'TCP_KEEPALIVE', timeout: 100 }],
    [{ code: 65001, data: Buffer.from('fuzz') }],
  ];
  for (const [k, options] of ednsVariants.entries()) {
    out.push(query(id++, NAMES[k % NAMES.length]!, TYPES[k % TYPES.length]!, opt(options, [512, 1232, 4096, 65535][k % 4])));
  }
  out.push(query(id++, 'lexa', 'AXFR'), query(id++, '10.in-addr.arpa', 'AXFR'));
  out.push(query(id++, 'lexa', 'IXFR', { authorities: [{ type: 'SOA', name: 'lexa', data: soa(1) }] }));
  out.push(query(id++, 'lexa', 'IXFR', { authorities: [{ type: 'SOA', name: 'lexa', data: soa(0xffffffff) }] }));
  out.push(notifyMessage(id++, 'lexa'));
  out.push(query(id++, 'lexa', 'SOA', { opcode: 'UPDATE' } as Partial<Packet>));
  for (const q of [query(id++, 'lexa', 'AXFR'), query(id++, 'web-1.lexa', 'A'), query(id++, 'lexa', 'SOA', opt([]))]) {
    out.push(signMessage(q, FUZZ_TSIG_KEY, { timeSigned: SIGNED_AT }).message);
  }
  out.push(Buffer.alloc(12), Buffer.from(query(0, 'web-1.lexa', 'A'))); // an empty header; DoQ's zero ID
  return out;
}

function soa(serial: number) {
  return { mname: 'ns.lexa', rname: 'hostmaster.lexa', serial, refresh: 3600, retry: 600, expire: 86400, minimum: 5 };
}

/** Every seed: the built ones and, when the fixture is there, the captured ones. */
export function dnsCorpus(): Buffer[] {
  const captured = existsSync(CAPTURED_FILE) ? (JSON.parse(readFileSync(CAPTURED_FILE, 'utf8')) as CapturedQuery[]) : [];
  return [...built(), ...captured.map((c) => Buffer.from(c.hex, 'hex'))];
}
