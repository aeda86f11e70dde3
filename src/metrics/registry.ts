import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { refusedConnections } from './connections.js';
import { droppedDatagrams } from './datagrams.js';
import { DURATION_BUCKETS, RCODE_LABELS, SIZE_BUCKETS, TYPE_LABELS } from './dns.js';
import { EVENT_TO_ANSWER_BUCKETS, type LxdCounters } from './lxd.js';
import type { MetricsSources } from './metrics.js';

/**
 * lexa's Prometheus registry: the only file that knows prom-client, imported at the first scrape only (metrics.ts).
 * Names follow CoreDNS's (`coredns_dns_*` → `lexa_dns_*`) so existing dashboards translate by a prefix. DNS and LXD
 * counters live as plain numbers where they are counted (dns.ts, lxd.ts) and are read here at scrape time;
 * snapshot figures are read from the store then too.
 */

/** prom-client default metrics that break Prometheus naming rules (see createMetrics). */
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

type Labels = Record<string, string>;
interface Sample {
  readonly metricName?: string;
  readonly labels: Labels;
  value: number;
}

/**
 * A metric whose samples are computed at scrape time, summing samples with equal name and labels (UDP and TCP
 * of one address share a `server` label in the series that have no `proto`).
 */
function collected(registry: Registry, name: string, help: string, type: 'counter' | 'gauge' | 'histogram', read: () => Iterable<Sample>) {
  const metric = {
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: () => {
      const merged = new Map<string, Sample>();
      for (const s of read()) {
        const key = `${s.metricName ?? name}${JSON.stringify(s.labels)}`;
        const seen = merged.get(key);
        if (seen) seen.value += s.value;
        else merged.set(key, { ...s });
      }
      return { name, help, type, aggregator: 'sum' as const, values: [...merged.values()] };
    },
  };
  // prom-client takes any object with get(); its typings only name its own classes.
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/** Samples of one histogram row kept as non-cumulative counts (the last one +Inf). */
function* histogram(name: string, labels: Labels, buckets: readonly number[], counts: ArrayLike<number>, offset: number, sum: number): Iterable<Sample> {
  let cumulative = 0;
  for (let i = 0; i <= buckets.length; i++) {
    cumulative += counts[offset + i]!;
    yield { metricName: `${name}_bucket`, labels: { ...labels, le: i < buckets.length ? String(buckets[i]) : '+Inf' }, value: cumulative };
  }
  yield { metricName: `${name}_sum`, labels, value: sum };
  yield { metricName: `${name}_count`, labels, value: cumulative };
}

/**
 * The registry of every lexa metric, read from `src` and `lxd` at each scrape. Node's default metrics (GC, event
 * loop lag, ...) are collected from this call on, so from the first scrape.
 */
export function buildRegistry(src: MetricsSources, lxd: LxdCounters): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Gauges named like counters, which `promtool check metrics` rejects; each is the sum of the same metric without
  // `_total` (labelled by type), which stays.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);

  collected(registry, 'lexa_dns_requests_total', 'DNS queries received, by listener, protocol, address family and type.', 'counter', function* () {
    for (const l of src.listeners())
      for (let t = 0; t < TYPE_LABELS.length; t++)
        if (l.requests[t]) yield { labels: { server: l.server, proto: l.proto, family: l.family, type: TYPE_LABELS[t]! }, value: l.requests[t]! };
  });
  collected(registry, 'lexa_dns_responses_total', 'DNS replies sent, by listener and rcode.', 'counter', function* () {
    for (const l of src.listeners())
      for (let r = 0; r < RCODE_LABELS.length; r++)
        if (l.responses[r]) yield { labels: { server: l.server, rcode: RCODE_LABELS[r]! }, value: l.responses[r]! };
  });
  const durationName = 'lexa_dns_request_duration_seconds';
  collected(registry, durationName, 'Time to answer a DNS query (in the handler), by listener and type.', 'histogram', function* () {
    const row = DURATION_BUCKETS.length + 1;
    for (const l of src.listeners())
      for (let t = 0; t < TYPE_LABELS.length; t++)
        if (l.requests[t])
          yield* histogram(durationName, { server: l.server, type: TYPE_LABELS[t]! }, DURATION_BUCKETS, l.durationCounts, t * row, l.durationSums[t]!);
  });
  const sizeName = 'lexa_dns_response_size_bytes';
  collected(registry, sizeName, 'Size of DNS replies, by listener and protocol.', 'histogram', function* () {
    for (const l of src.listeners())
      yield* histogram(sizeName, { server: l.server, proto: l.proto }, SIZE_BUCKETS, l.sizeCounts, 0, l.sizeSum);
  });
  collected(registry, 'lexa_dns_truncated_total', 'DNS replies sent with the TC bit set, by listener.', 'counter', function* () {
    for (const l of src.listeners()) yield { labels: { server: l.server }, value: l.truncated };
  });
  collected(registry, 'lexa_connections_refused_total', 'Connections closed on accept by fair sharing, by listener and reason.', 'counter', function* () {
    for (const r of refusedConnections()) yield { labels: { listener: r.listener, reason: r.reason }, value: r.count };
  });
  collected(registry, 'lexa_doq_datagrams_dropped_total', 'DoQ datagrams dropped before the QUIC library, by reason (malformed, unknown connection, handshake budget, backlog).', 'counter', function* () {
    for (const d of droppedDatagrams()) yield { labels: { reason: d.reason }, value: d.count };
  });

  const limited = src.rateLimited;
  if (limited !== undefined)
    collected(registry, 'lexa_dns_rate_limited_total', 'UDP replies withheld by response rate limiting: slipped (sent empty with TC) or dropped.', 'counter', function* () {
      yield { labels: { action: 'slip' }, value: limited.slipped };
      yield { labels: { action: 'drop' }, value: limited.dropped };
    });
  const logDropped = src.logDropped;
  if (logDropped !== undefined)
    collected(registry, 'lexa_log_lines_dropped_total', 'Log lines dropped because the log destination did not keep up (its queue was full).', 'counter', function* () {
      yield { labels: {}, value: logDropped() };
    });
  collected(registry, 'lexa_lxd_connected', '1 while the LXD events connection is up (and listed), else 0; per site with named sites.', 'gauge', function* () {
    const snap = src.snapshot();
    if (snap.sites[0]?.name === null) yield <Sample> { labels: {}, value: snap.connected ? 1 : 0 };
    else for (const s of snap.sites) yield { labels: { site: s.name ?? '' }, value: s.connected ? 1 : 0 };
  });
  collected(registry, 'lexa_lxd_reconnects_total', 'Times the LXD events connection came back after the first.', 'counter', function* () {
    yield { labels: {}, value: lxd.reconnects };
  });
  collected(registry, 'lexa_lxd_events_total', 'LXD lifecycle events received, by action.', 'counter', function* () {
    for (const [action, value] of lxd.events) yield { labels: { action }, value };
  });
  const eventToAnswer = 'lexa_lxd_event_to_answer_seconds';
  collected(registry, eventToAnswer, 'From an LXD event arriving to the snapshot that reflects it being published (answers use it from then).', 'histogram', function* () {
    yield* histogram(eventToAnswer, {}, EVENT_TO_ANSWER_BUCKETS, lxd.eventToAnswerCounts, 0, lxd.eventToAnswerSum);
  });
  collected(registry, 'lexa_snapshot_instances', 'Instances in the current snapshot, by LXD status (lower-cased).', 'gauge', function* () {
    for (const inst of src.snapshot().instances.values()) yield { labels: { status: inst.status.toLowerCase() }, value: 1 };
  });
  collected(registry, 'lexa_snapshot_age_seconds', 'Seconds since the snapshot last changed (since start-up until LXD is first listed).', 'gauge', function* () {
    yield { labels: {}, value: Math.max(0, (Date.now() - src.snapshot().updatedAt) / 1000) };
  });
  collected(registry, 'lexa_services', 'Services offered by running instances, by where they were declared.', 'gauge', function* () {
    for (const source of ['config', 'agent']) yield { labels: { source }, value: 0 };
    for (const inst of src.snapshot().running()) for (const s of inst.services) yield { labels: { source: s.source }, value: 1 };
  });
  const checks = src.checks;
  if (checks !== undefined) {
    collected(registry, 'lexa_checks_runs_total', 'Server-side check runs finished (answered, timed out, or found unreachable).', 'counter', function* () {
      yield { labels: {}, value: checks().runs };
    });
    collected(registry, 'lexa_checks_failures_total', 'Server-side check runs that failed (refused, timed out, bad status).', 'counter', function* () {
      yield { labels: {}, value: checks().failures };
    });
    collected(registry, 'lexa_checks_skipped_total', 'Check turns skipped because the previous run was still running or waiting for a slot.', 'counter', function* () {
      yield { labels: {}, value: checks().skipped };
    });
    collected(registry, 'lexa_checks_in_flight', 'Server-side check runs in progress now (bounded by the checker).', 'gauge', function* () {
      yield { labels: {}, value: checks().inFlight };
    });
    collected(registry, 'lexa_checks_waiting', 'Check turns waiting for a free slot now.', 'gauge', function* () {
      yield { labels: {}, value: checks().waiting };
    });
    collected(registry, 'lexa_checks', 'Server-side checks of running instances, by their last published status.', 'gauge', function* () {
      for (const status of ['passing', 'critical', 'unreachable']) yield { labels: { status }, value: 0 };
      for (const results of src.snapshot().checks.values()) for (const r of Object.values(results)) yield { labels: { status: r.status }, value: 1 };
    });
  }
  new Gauge({ name: 'lexa_build_info', help: 'Always 1; the labels say which lexa this is.', labelNames: ['version'], registers: [registry] })
    .set({ version: src.version }, 1);
  return registry;
}
