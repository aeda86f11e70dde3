// Metrics: DNS counters kept as plain numbers on the query path (dns.ts), rendered for Prometheus (registry.ts).
export { instrument, ListenerCounters, serverLabel, typeSlot, TYPE_LABELS, RCODE_LABELS, DURATION_BUCKETS, type DnsProto, type DnsScheme } from './dns.js';
export { createMetrics, PROMETHEUS_TEXT, type Metrics, type MetricsSources } from './metrics.js';
export { countRefusedConnection, refusedConnections } from './connections.js';
export { countDroppedDatagram, droppedDatagrams } from './datagrams.js';
