import type { Bind, Config, TlsFiles } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { DnsProto, DnsScheme, ListenerCounters, Metrics } from '../metrics/index.js';
import type { TlsMaterial } from '../tls/index.js';
import type { AgentIngest } from '../streams/agents/ingest.js';
import type { HandleQuery } from '../dns/handler.js';
import type { RateLimitCounts } from './dns/rate-limit.js';
import type { HandleTransfer } from '../replication/transfer.js';
import type { RestOptions } from './rest/app.js';
import type { Listeners } from './transport.js';

/**
 * What a transport is, as CoreDNS registers its servers: one descriptor per listener kind, and one ordered list of
 * them (registry.ts) that the daemon, the reload plan, the certificates, `ports` and the bench server loop over.
 * A descriptor reads the configuration; it holds no state of its own.
 */

/** The transports lexa serves, by the name their ports and certificates go by. */
export type TransportName = 'dns' | 'dot' | 'doh' | 'doq' | 'rest' | 'metrics' | 'agent';

/** What a transport opened on one bind: its listeners, and the DNS counters of what it serves (if it answers DNS). */
export interface OpenedTransport {
  readonly listeners: Listeners & { setTls?(m: TlsMaterial): void };
  readonly counters?: readonly ListenerCounters[];
}

/** The handler as one listener of `scheme`/`proto` on `bind` serves it, and the counters it reports (if counted). */
export interface Served {
  readonly handle: HandleQuery;
  readonly counters: readonly ListenerCounters[];
}

/** What every DNS transport opens with: the one handler, transfers, a logger per transport, its certificate. */
export interface DnsContext {
  /** The handler as served by one listener (the daemon counts it for metrics; the bench may not). */
  served(scheme: DnsScheme, proto: DnsProto, bind: Bind): Served;
  readonly transfer: HandleTransfer;
  log(name: TransportName): Logger;
  /** The certificate loaded for `name`; throws when none is (the daemon loads certificates before opening). */
  material(name: TransportName): TlsMaterial;
  /** Rate-limit counts kept across reloads (each configuration builds its own limiter). */
  readonly rateLimited: RateLimitCounts;
}

/** What every transport opens with: the DNS context, the REST application, the agent trust, the metrics. */
export interface TransportContext extends DnsContext {
  readonly app: RestOptions;
  /** Where every agent listener's connections go: one ingest, reading the trust settings in force (SIGHUP). */
  readonly agents: AgentIngest;
  readonly metrics: Metrics;
}

/** A transport's certificate: its settings in a configuration, and whether running listeners take a new one. */
export interface TransportTls {
  /** The certificate files and the hostname a generated one is made for; null when the section is absent. */
  settings(c: Config): { readonly tls: TlsFiles; readonly hostname: string } | null;
  /**
   * Whether running listeners swap in a new certificate (setTls): true, a reload or a re-read file applies at once;
   * false, the new certificate waits for a restart (the reload plan says so, the certificate registry logs it).
   */
  readonly swapsLive: boolean;
}

/** What a transport opens for one configuration: `open(bind)` per bind, sharing what was prepared once. */
export interface Prepared {
  /**
   * What else its listeners are opened with that cannot change while they run (the REST client CA): a different
   * variant reopens them (listener-set.ts).
   */
  readonly variant?: string;
  open(bind: Bind): Promise<OpenedTransport>;
}

export interface TransportDescriptor<C extends DnsContext = TransportContext> {
  readonly name: TransportName;
  /** Where its settings live in the configuration file, e.g. "server.dns.dot"; its binds are `<path>.bind`. */
  readonly configPath: string;
  enabled(c: Config): boolean;
  binds(c: Config): readonly Bind[];
  /** Null for a transport without TLS. */
  readonly tls: TransportTls | null;
  /** The limits its listeners take when they open (running ones keep theirs: a change waits for a restart). */
  limits(c: Config): unknown;
  /**
   * Reads and builds what every bind of `c` shares (a rate limiter, a client CA); throws on what cannot be used,
   * before a reload has changed anything.
   */
  prepare(c: Config, ctx: C): Prepared;
}
