import type { Registry } from 'prom-client';
import type { CheckCounters, ReflectorObserver, View } from '../streams/index.js';
import type { ListenerCounters } from './dns.js';
import { LxdCounters } from './lxd.js';

/**
 * The Content-Type of the Prometheus text format 0.0.4, what prom-client's registry renders (its
 * PROMETHEUS_CONTENT_TYPE; test/unit/metrics.test.ts holds them equal). Named here so a response can carry it
 * before the registry exists.
 */
export const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsSources {
  /** lexa's version, for lexa_build_info. */
  readonly version: string;
  /** The current snapshot (read at scrape time). */
  readonly snapshot: () => View;
  /** The DNS counters of every listener running now. */
  readonly listeners: () => Iterable<ListenerCounters>;
  /** UDP replies rate-limited since start (servers/dns/rate-limit.ts); absent: not exported. */
  readonly rateLimited?: { readonly slipped: number; readonly dropped: number };
  /** The server-side checker's counters (streams/checks/checker.ts); absent: not exported. */
  readonly checks?: () => Readonly<CheckCounters>;
  /** Log lines dropped since start because the destination did not keep up (log/destination.ts); absent: not exported. */
  readonly logDropped?: () => number;
}

export interface Metrics {
  /** Feeds LXD event, reconnect and latency figures; give it to the Reflector. */
  readonly observer: ReflectorObserver;
  /** The Content-Type of `render`'s text (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** Every metric in Prometheus text format. */
  render(): Promise<string>;
}

/**
 * lexa's metrics. Everything is counted as plain numbers from the start; prom-client (~13 MB of RSS once loaded,
 * docs/performance.md) is imported at the first `render`, so a daemon nobody scrapes never loads it. Node's
 * default metrics (GC, event loop lag) count from that first scrape.
 */
export function createMetrics(src: MetricsSources): Metrics {
  const lxd = new LxdCounters();
  let registry: Promise<Registry> | undefined;
  return {
    observer: lxd.observer,
    contentType: PROMETHEUS_TEXT,
    render: async () => {
      registry ??= import('./registry.js').then((m) => m.buildRegistry(src, lxd));
      return (await registry).metrics();
    },
  };
}
