/**
 * lexa's configuration after parsing, validation and defaulting. Every field is resolved; nothing is optional.
 * The shapes come from their one declaration: keys and defaults from schema.ts, the consumer-facing names from
 * load.ts's `toConfig`. Declared here is only what neither can say.
 */
import type { toConfig } from './load.js';
import type { Settings } from './schema.js';

export type Config = ReturnType<typeof toConfig>;

/** A listening (or, for LXD over HTTPS, connecting) address. */
export type Bind = Settings['server']['dns']['bind'][number];

/** A certificate/key pair on disk (absolute paths), or null to have lexa generate a self-signed one. */
export interface TlsFiles {
  readonly certificate: string | null;
  readonly key: string | null;
}

export type LxdEndpoint =
  | { readonly kind: 'unix'; readonly socket: string }
  | {
      readonly kind: 'https';
      /** The members to try for the first connection, in order (one for a standalone LXD). Never empty. */
      readonly binds: readonly Bind[];
      /** Client certificate and key LXD trusts. */
      readonly certificate: string;
      readonly key: string;
      /** LXD's server certificate to pin; null accepts any (logged as a warning). */
      readonly serverCertificate: string | null;
    };

export type LogConfig = Config['log'];
export type LogLevel = LogConfig['level'];

/** One site: an LXD or Incus server (or cluster) lexa watches, from one `lxd` block. */
export interface SiteConfig {
  /** The site's label in names (`<host>.<site>.<suffix>`); null for the one unnamed block of a one-site file. */
  readonly name: string | null;
  readonly endpoint: LxdEndpoint;
  /** Ignored when allProjects. */
  readonly project: string;
  readonly allProjects: boolean;
  readonly resyncIntervalMs: number;
  readonly watchdogMs: number;
  /** Only with the unix socket: the lease files are on LXD's own host (streams/lxd/lease-watch.ts). */
  readonly watchLeases: boolean;
}
