import type { Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import type { ReflectorObserver } from './observer.js';

/** How a Reflector (reflector.ts) watches one LXD: what it lists, how often, and what it tells whom. */
export interface ReflectorOptions {
  /**
   * The named site this reflector watches (docs/sites.md): its instances carry it (`Instance.site`) and their
   * keys start with it. Absent for the one unnamed site.
   */
  readonly site?: string;
  readonly project: string;
  readonly allProjects: boolean;
  /** How often to re-list while connected; 0 turns it off. */
  readonly resyncIntervalMs: number;
  /** Silence on the events socket longer than this means LXD is gone or hung: reconnect. */
  readonly watchdogMs: number;
  readonly logger: Logger;
  /** Source of time for every delay and timestamp; the real clock by default. Tests pass a fake. */
  readonly clock?: Clock;
  /** Numbers in [0, 1) for the reconnect jitter; Math.random by default. */
  readonly random?: () => number;
  /** Told about events, connections and how soon events show in the snapshot (metrics); none by default. */
  readonly observer?: ReflectorObserver;
  /**
   * LXD's directory on this host (where its unix socket is), when its bridges' dnsmasq lease files should be
   * watched for new instances' leases (lease-watch.ts); absent: leases are only polled from LXD's API.
   */
  readonly leaseDirectory?: string;
}
