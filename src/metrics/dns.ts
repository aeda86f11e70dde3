import { isIPv6 } from 'node:net';
import type { HandleQuery } from '../dns/index.js';

/**
 * DNS counters kept on the query path as plain numbers in typed arrays, one set per listener (a bind address of
 * one transport and protocol). Nothing here allocates or calls out per query: the instrumented handler reads the
 * query type from the question bytes and the rcode, TC bit and size from the reply header, bumps array slots,
 * and the Prometheus collector (registry.ts) turns the arrays into samples at scrape time.
 */

/**
 * Query types counted by name, CoreDNS's list (plugin/metrics/vars/monitor.go) plus SVCB/HTTPS; every other type
 * is counted as "other", so a client sending random types cannot grow the label set.
 */
export const COUNTED_TYPES = [
  'A', 'NS', 'CNAME', 'SOA', 'PTR', 'MX', 'TXT', 'AAAA', 'SRV', 'NAPTR', 'DS', 'RRSIG', 'NSEC', 'DNSKEY', 'NSEC3',
  'SVCB', 'HTTPS', 'IXFR', 'AXFR', 'ANY',
] as const;
const TYPE_CODES: Record<(typeof COUNTED_TYPES)[number], number> = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, NAPTR: 35, DS: 43, RRSIG: 46,
  NSEC: 47, DNSKEY: 48, NSEC3: 50, SVCB: 64, HTTPS: 65, IXFR: 251, AXFR: 252, ANY: 255,
};
/** Label of each type slot; the last slot is "other". */
export const TYPE_LABELS: readonly string[] = [...COUNTED_TYPES, 'other'];
const OTHER = COUNTED_TYPES.length;
/** qtype (all counted ones are below 256) → slot. */
const TYPE_SLOT = new Uint8Array(256).fill(OTHER);
COUNTED_TYPES.forEach((t, i) => (TYPE_SLOT[TYPE_CODES[t]] = i));

/** Header rcodes 0..15 by name (RFC 6895 §2.3); the extended rcode in an OPT record is not read. */
export const RCODE_LABELS: readonly string[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH',
  'NOTZONE', 'RCODE11', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15',
];

/** CoreDNS's duration buckets (plugin/metrics/vars: ExponentialBuckets(0.00025, 2, 16)): 0.25 ms … 8.192 s. */
export const DURATION_BUCKETS: readonly number[] = Array.from({ length: 16 }, (_, i) => 0.00025 * 2 ** i);
/** CoreDNS's size buckets (plugin/metrics/vars: sizeBuckets), bytes. */
export const SIZE_BUCKETS: readonly number[] = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3];

export type DnsProto = 'udp' | 'tcp';
/** The URL scheme CoreDNS names each transport's `server` label with. */
export type DnsScheme = 'dns' | 'tls' | 'https' | 'quic';

/**
 * The counters of one listener. `server` is set once the listener is bound (port 0 learns its port then).
 * Contract: `record` is the only writer; readers (the collector) only read.
 */
export class ListenerCounters {
  server: string;
  readonly family: '1' | '2';
  /** Requests by type slot. */
  readonly requests = new Float64Array(TYPE_LABELS.length);
  /** Replies by header rcode; queries answered with nothing (unparseable) are not counted here. */
  readonly responses = new Float64Array(RCODE_LABELS.length);
  /** Duration histogram per type slot: TYPE_LABELS.length rows of (buckets + the +Inf row) non-cumulative counts. */
  readonly durationCounts = new Float64Array(TYPE_LABELS.length * (DURATION_BUCKETS.length + 1));
  readonly durationSums = new Float64Array(TYPE_LABELS.length);
  /** Reply size histogram, non-cumulative, last slot +Inf. */
  readonly sizeCounts = new Float64Array(SIZE_BUCKETS.length + 1);
  sizeSum = 0;
  truncated = 0;

  constructor(
    readonly scheme: DnsScheme,
    readonly proto: DnsProto,
    readonly host: string,
    port: number,
  ) {
    this.family = isIPv6(host) ? '2' : '1';
    this.server = serverLabel(scheme, host, port);
  }

  /** The listener is bound on `port` (matters when the configuration said port 0). */
  bound(port: number): void {
    this.server = serverLabel(this.scheme, this.host, port);
  }

  record(query: Uint8Array, reply: Uint8Array | null, seconds: number): void {
    const slot = typeSlot(query);
    this.requests[slot]!++;
    const row = slot * (DURATION_BUCKETS.length + 1);
    this.durationCounts[row + bucketOf(DURATION_BUCKETS, seconds)]!++;
    this.durationSums[slot]! += seconds;
    if (reply === null || reply.length < 4) return;
    this.responses[reply[3]! & 0x0f]!++;
    if (reply[2]! & 0x02) this.truncated++;
    this.sizeCounts[bucketOf(SIZE_BUCKETS, reply.length)]!++;
    this.sizeSum += reply.length;
  }
}

/** `dns://127.0.0.1:18053`, `tls://[::1]:853`: CoreDNS's form of the `server` label. */
export function serverLabel(scheme: DnsScheme, host: string, port: number): string {
  return `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`;
}

/**
 * The type slot of a query's first question: walks the QNAME's labels from byte 12. A query too short, with a
 * compression pointer in its question, or with no question is "other".
 */
export function typeSlot(q: Uint8Array): number {
  if (q.length < 17 || ((q[4]! << 8) | q[5]!) === 0) return OTHER;
  let i = 12;
  for (let len = q[i]!; len !== 0; len = q[i]!) {
    if (len > 63) return OTHER;
    i += len + 1;
    if (i >= q.length) return OTHER;
  }
  if (i + 2 >= q.length) return OTHER;
  const qtype = (q[i + 1]! << 8) | q[i + 2]!;
  return qtype < 256 ? TYPE_SLOT[qtype]! : OTHER;
}

/** Index of the first bucket whose upper bound holds `v` (Prometheus `le`), or buckets.length for +Inf. */
function bucketOf(buckets: readonly number[], v: number): number {
  let i = 0;
  while (i < buckets.length && v > buckets[i]!) i++;
  return i;
}

/**
 * `handle` counted into `counters`. Costs two clock reads and a few array increments per query; the handler
 * itself is unchanged (still synchronous, never throws).
 */
export function instrument(handle: HandleQuery, counters: ListenerCounters): HandleQuery {
  return (query, limit) => {
    const start = performance.now();
    const reply = handle(query, limit);
    counters.record(query, reply, (performance.now() - start) / 1000);
    return reply;
  };
}
