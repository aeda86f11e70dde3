import { execFile } from 'node:child_process';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { countDroppedDatagram, createMetrics, instrument, ListenerCounters, PROMETHEUS_TEXT, TYPE_LABELS, typeSlot } from '../../src/metrics/index.js';
import { createHandler, datagramLimit, MESSAGE_LIMIT } from '../../src/dns/index.js';
import { parseExposition, PROMTOOL, sample } from '../helpers/cli-process.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';
import { query } from '../helpers/transport-stub.js';

// The DNS counters kept on the query path, and their Prometheus rendering (checked by Prometheus's promtool).
const wire = (q: Uint8Array) => new Uint8Array(q);

t.test('the query type is read from the question bytes; anything odd is "other"', async (t) => {
  // Type codes from the IANA registry, written into the question directly (dns-packet 5 knows no SVCB/HTTPS).
  const codes: Record<string, number> = {
    A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, NAPTR: 35, DS: 43, RRSIG: 46, NSEC: 47,
    DNSKEY: 48, NSEC3: 50, SVCB: 64, HTTPS: 65, IXFR: 251, AXFR: 252, ANY: 255,
  };
  t.same(Object.keys(codes), TYPE_LABELS.filter((l) => l !== 'other'), 'every counted type has a case');
  for (const [type, code] of Object.entries(codes)) {
    const q = wire(query(1, 'a.b.lexa', 'A'));
    q[q.length - 4] = code >> 8;
    q[q.length - 3] = code & 0xff;
    t.equal(TYPE_LABELS[typeSlot(q)], type, type);
  }
  t.equal(TYPE_LABELS[typeSlot(wire(query(1, 'a.lexa', 'LOC')))], 'other', 'an uncounted type (LOC)');
  t.equal(TYPE_LABELS[typeSlot(wire(query(1, 'a.lexa', 'CAA')))], 'other', 'a type above 255 (CAA)');
  t.equal(TYPE_LABELS[typeSlot(wire(query(1, '.', 'NS')))], 'NS', 'the root name');
  const q = wire(query(1, 'a.lexa', 'A'));
  t.equal(TYPE_LABELS[typeSlot(q.subarray(0, 14))], 'other', 'cut inside the name');
  t.equal(TYPE_LABELS[typeSlot(q.subarray(0, q.length - 3))], 'other', 'cut inside the type');
  const noQuestion = q.slice();
  noQuestion[5] = 0;
  t.equal(TYPE_LABELS[typeSlot(noQuestion)], 'other', 'no question');
  const pointer = q.slice();
  pointer[12] = 0xc0;
  t.equal(TYPE_LABELS[typeSlot(pointer)], 'other', 'a compression pointer in the question');
  t.equal(TYPE_LABELS[typeSlot(new Uint8Array(3))], 'other', 'shorter than a header');
});

const snap = snapshotOf(Array.from({ length: 40 }, (_, i) => instance(`web${i}`, { interfaces: [iface('eth0', [`10.0.0.${i + 1}`], [`fd00::${i + 1}`])] })));
const handler = createHandler({ snapshot: () => snap, resolver: { suffix: 'lexa', ttl: 0, soa: { minimum: 0 } }, log: silentLogger });

t.test('instrument counts requests, rcodes, truncation, sizes and durations of the real handler', async (t) => {
  const c = new ListenerCounters('dns', 'udp', '::1', 0);
  c.bound(5353);
  t.equal(c.server, 'dns://[::1]:5353');
  t.equal(c.family, '2');
  const handle = instrument(handler, c);
  handle(wire(query(1, 'web1.lexa', 'A')), MESSAGE_LIMIT);
  handle(wire(query(2, 'nobody.lexa', 'AAAA')), MESSAGE_LIMIT);
  handle(wire(query(3, 'example.com', 'A')), MESSAGE_LIMIT);
  // Forty AAAA records do not fit 512 bytes: truncated.
  const big = handle(wire(query(4, '*.lexa', 'AAAA')), datagramLimit(512));
  t.ok(big && big[2]! & 0x02, 'the wildcard reply was truncated');
  t.equal(handle(new Uint8Array(5), MESSAGE_LIMIT), null, 'garbage gets no reply');
  const at = (type: string) => c.requests[TYPE_LABELS.indexOf(type)];
  t.equal(at('A'), 2);
  t.equal(at('AAAA'), 2);
  t.equal(at('other'), 1, 'the garbage is counted as a request of type other');
  t.same([...c.responses.slice(0, 6)], [2, 0, 0, 1, 0, 1], 'NOERROR ×2 (one truncated), NXDOMAIN, REFUSED; none for garbage');
  t.equal(c.truncated, 1);
  t.equal(c.sizeCounts.reduce((a, b) => a + b, 0), 4, 'a size per reply');
  t.equal(c.durationCounts.reduce((a, b) => a + b, 0), 5, 'a duration per request');
});

t.test('the rendering passes promtool and carries exact values', async (t) => {
  const udp = new ListenerCounters('dns', 'udp', '127.0.0.1', 18053);
  const tcp = new ListenerCounters('dns', 'tcp', '127.0.0.1', 18053);
  const checks = { runs: 11, failures: 4, skipped: 2, inFlight: 3, waiting: 1, scheduled: 9 };
  const metrics = createMetrics({ version: '9.9.9', snapshot: () => snap, listeners: () => [udp, tcp], rateLimited: { slipped: 7, dropped: 8 }, checks: () => checks, logDropped: () => 5 });
  for (let i = 0; i < 3; i++) instrument(handler, udp)(wire(query(i, 'web1.lexa', 'A')), MESSAGE_LIMIT);
  instrument(handler, tcp)(wire(query(9, 'nobody.lexa', 'A')), MESSAGE_LIMIT);
  countDroppedDatagram('malformed');
  countDroppedDatagram('handshake-rate');
  countDroppedDatagram('handshake-rate');
  metrics.observer.event?.('instance-started');
  metrics.observer.eventApplied?.(20);
  metrics.observer.connected?.(false);
  metrics.observer.connected?.(true);
  const text = await metrics.render();
  const check = await new Promise<{ code: number; out: string }>((resolve) => {
    const child = execFile(PROMTOOL, ['check', 'metrics'], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }));
    child.stdin!.end(text);
  });
  t.equal(check.code, 0, check.out || 'promtool: no problems');
  const m = parseExposition(text);
  const server = 'dns://127.0.0.1:18053';
  t.equal(sample(m, 'lexa_dns_requests_total', { server, proto: 'udp', family: '1', type: 'A' }), 3);
  t.equal(sample(m, 'lexa_dns_requests_total', { server, proto: 'tcp', type: 'A' }), 1);
  t.equal(sample(m, 'lexa_dns_responses_total', { server, rcode: 'NOERROR' }), 3, 'UDP and TCP of one address summed');
  t.equal(sample(m, 'lexa_dns_responses_total', { server, rcode: 'NXDOMAIN' }), 1);
  t.equal(m.get(`lexa_dns_request_duration_seconds_bucket{server="${server}",type="A",le="+Inf"}`), 4);
  t.equal(m.get(`lexa_dns_request_duration_seconds_bucket{server="${server}",type="A",le="8.192"}`), 4, 'CoreDNS buckets up to 8.192 s');
  t.ok(m.has(`lexa_dns_request_duration_seconds_bucket{server="${server}",type="A",le="0.00025"}`), 'starting at 0.25 ms');
  t.equal(sample(m, 'lexa_lxd_events_total', { action: 'instance-started' }), 1);
  t.equal(sample(m, 'lexa_lxd_reconnects_total'), 1, 'only the second connection counts as a reconnect');
  t.equal(sample(m, 'lexa_lxd_event_to_answer_seconds_count'), 1);
  t.equal(m.get('lexa_lxd_event_to_answer_seconds_bucket{le="0.025"}'), 1, '20 ms lands in the 25 ms bucket');
  t.equal(m.get('lexa_lxd_event_to_answer_seconds_bucket{le="0.01"}'), 0);
  t.equal(sample(m, 'lexa_snapshot_instances', { status: 'running' }), 40);
  t.equal(sample(m, 'lexa_build_info', { version: '9.9.9' }), 1);
  t.equal(sample(m, 'lexa_dns_rate_limited_total', { action: 'slip' }), 7);
  t.equal(sample(m, 'lexa_dns_rate_limited_total', { action: 'drop' }), 8);
  t.equal(sample(m, 'lexa_log_lines_dropped_total'), 5, 'log lines the destination dropped');
  t.equal(sample(m, 'lexa_doq_datagrams_dropped_total', { reason: 'malformed' }), 1, 'DoQ datagrams dropped, by reason');
  t.equal(sample(m, 'lexa_doq_datagrams_dropped_total', { reason: 'handshake-rate' }), 2);
  t.notOk(m.has('nodejs_active_handles_total'), 'the lint-failing default gauges are left out');
  t.equal(sample(m, 'lexa_checks_runs_total'), 11);
  t.equal(sample(m, 'lexa_checks_failures_total'), 4);
  t.equal(sample(m, 'lexa_checks_skipped_total'), 2);
  t.equal(sample(m, 'lexa_checks_in_flight'), 3);
  t.equal(sample(m, 'lexa_checks_waiting'), 1);
  t.equal(sample(m, 'lexa_checks', { status: 'critical' }), 0, 'every status is exported, zero included');
});

t.test("the Content-Type named before prom-client loads is prom-client's own", async (t) => {
  const { Registry } = await import('prom-client');
  t.equal(PROMETHEUS_TEXT, Registry.PROMETHEUS_CONTENT_TYPE);
  t.equal(createMetrics({ version: '1', snapshot: () => snap, listeners: () => [] }).contentType, new Registry().contentType);
});
