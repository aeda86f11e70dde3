import type { ReflectorObserver } from '../streams/index.js';

/** Buckets of event → snapshot latency, in seconds: a removal is immediate, a re-read takes one LXD round trip (~15 ms). */
export const EVENT_TO_ANSWER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/**
 * What the reflector reports, kept as plain numbers as the DNS counters are (dns.ts), so counting needs no
 * metrics library: the registry (registry.ts) reads them at scrape time, and is only built at the first scrape.
 */
export class LxdCounters {
  /** Times the events connection came back after the first. */
  reconnects = 0;
  /** Lifecycle events received, by action ("unknown" for an empty one). */
  readonly events = new Map<string, number>();
  /** Event → answer latencies, non-cumulative per bucket of EVENT_TO_ANSWER_BUCKETS, the last one +Inf. */
  readonly eventToAnswerCounts = new Array<number>(EVENT_TO_ANSWER_BUCKETS.length + 1).fill(0);
  /** Their sum, in seconds. */
  eventToAnswerSum = 0;

  /** The observer the reflector is given: each call is a counter update, never a throw. */
  readonly observer: ReflectorObserver = {
    event: (action) => {
      const key = action || 'unknown';
      this.events.set(key, (this.events.get(key) ?? 0) + 1);
    },
    connected: (reconnect) => {
      if (reconnect) this.reconnects++;
    },
    eventApplied: (ms) => {
      const seconds = ms / 1000;
      let i = 0;
      while (i < EVENT_TO_ANSWER_BUCKETS.length && seconds > EVENT_TO_ANSWER_BUCKETS[i]!) i++;
      this.eventToAnswerCounts[i]!++;
      this.eventToAnswerSum += seconds;
    },
  };
}
