/** lexa's configuration after parsing, validation and defaulting. Every field is resolved; nothing is optional. */

export interface Bind {
  readonly host: string;
  readonly port: number;
}

/** A certificate/key pair on disk (absolute paths), or null to have lexa generate a self-signed one. */
export interface TlsFiles {
  readonly certificate: string | null;
  readonly key: string | null;
}

export type LxdEndpoint =
  | { readonly kind: 'unix'; readonly socket: string }
  | {
      readonly kind: 'https';
      readonly bind: Bind;
      /** Client certificate and key LXD trusts. */
      readonly certificate: string;
      readonly key: string;
      /** LXD's server certificate to pin; null accepts any (logged as a warning). */
      readonly serverCertificate: string | null;
    };

export interface LxdConfig {
  readonly endpoint: LxdEndpoint;
  /** DNS zone and REST name suffix, e.g. "lexa". Lower-case, no trailing dot. */
  readonly suffix: string;
  /** Project to watch; ignored when allProjects. */
  readonly project: string;
  readonly allProjects: boolean;
  /** Full re-list period (ms): the safety net behind the event stream. */
  readonly resyncIntervalMs: number;
  /** Reconnect when nothing (event, ping, pong) arrives from LXD for this long (ms). */
  readonly watchdogMs: number;
}

export interface RestConfig {
  readonly enabled: boolean;
  readonly binds: readonly Bind[];
  readonly tls: TlsFiles;
}

export interface EncryptedDnsConfig {
  readonly enabled: boolean;
  readonly binds: readonly Bind[];
  readonly tls: TlsFiles;
  /** Name the certificate is for (SAN of a generated certificate). */
  readonly hostname: string;
}

export interface DnsConfig {
  readonly enabled: boolean;
  readonly binds: readonly Bind[];
  /** TTL of every answer, seconds. 0 (never cache) by default, as the original lexa. */
  readonly ttl: number;
  /** SOA minimum: how long resolvers may cache NXDOMAIN/NODATA, seconds. */
  readonly negativeTtl: number;
  readonly tcpIdleTimeoutMs: number;
  readonly maxTcpConnections: number;
  readonly dot: EncryptedDnsConfig;
  readonly doh: EncryptedDnsConfig;
  readonly quic: EncryptedDnsConfig;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface LogConfig {
  /** "stdout", "stderr" or a file path (appended to). */
  readonly out: string;
  readonly level: LogLevel;
}

export interface Config {
  /** The file this came from, or null when running on defaults. */
  readonly source: string | null;
  readonly lxd: LxdConfig;
  readonly rest: RestConfig;
  readonly dns: DnsConfig;
  readonly log: LogConfig;
  /** Non-fatal remarks found while loading (e.g. accepted-but-ignored keys), to be logged once. */
  readonly warnings: readonly string[];
}
