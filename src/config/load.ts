import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isIP } from 'node:net';
import { Buffer } from 'node:buffer';
import { reverseZoneOf } from '../net/addresses.js';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { hclChildArgs } from './hcl-child.js';
import { AGENT_TOKEN, readSettings, TSIG_SECRET, type Settings } from './schema.js';
import type { Config, LxdEndpoint, SiteConfig, TlsFiles } from './types.js';
import { DEFAULT_SUFFIX, siteProblems } from './sites.js';
import { nameServerAddresses } from './name-server.js';

/** A configuration that cannot be used. `problems` each name the file and line/column or the key path. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/** Where LXD's (and Incus's) local API socket lives, in the order lexa tries them. */
export const LXD_SOCKETS = [
  '/var/lib/lxd/unix.socket',
  '/var/snap/lxd/common/lxd/unix.socket',
  '/var/lib/incus/unix.socket',
] as const;

const HCL_PARSE_TIMEOUT_MS = 20_000;

export interface LoadOptions {
  /** Explicit `--config` path; when given it must exist. */
  readonly path?: string | undefined;
  readonly cwd?: string;
  readonly home?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Finds, parses, validates and defaults the configuration. Without an explicit path it looks for `lexa.hcl` in
 * the working directory, then the home directory, and otherwise returns the defaults. Throws ConfigError listing
 * every problem found (not just the first).
 */
export async function loadConfig(opts: LoadOptions = {}): Promise<Config> {
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.path !== undefined ? resolve(cwd, opts.path) : findConfigFile(cwd, opts.home ?? homedir());
  if (file === null) return defaultConfig(opts.env ?? process.env);
  if (opts.path !== undefined && !existsSync(file)) throw new ConfigError([`${file}: no such file`]);
  const json = await parseHcl(file);
  return fromParsed(json, file, opts.env ?? process.env);
}

export function findConfigFile(cwd: string, home: string): string | null {
  for (const dir of [cwd, home]) {
    const candidate = join(dir, 'lexa.hcl');
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/** Validates already-parsed HCL JSON. Exposed for tests; `file` is used to name problems and resolve paths. */
export function fromParsed(json: unknown, file: string | null, env: NodeJS.ProcessEnv = process.env): Config {
  const { settings, problems, given } = readSettings(json);
  const name = file ?? '<defaults>';
  if (settings === undefined) throw new ConfigError(problems.map((p) => `${name}: ${p}`));
  return toConfig(settings, given, file, env);
}

/** The configuration with no file: every key at its declared default, the LXD socket found through `env`. */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return fromParsed({}, null, env);
}

/** Parses one HCL2 file into JSON in a child process (hcl-child.ts); throws ConfigError with `file:line,col` problems. */
export async function parseHcl(file: string): Promise<unknown> {
  const stdout = await new Promise<string>((resolveOut, reject) => {
    execFile(
      process.execPath,
      hclChildArgs(file),
      { timeout: HCL_PARSE_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, out, errOut) => {
        if (err && !out) reject(new ConfigError([`${file}: could not run the HCL parser: ${errOut || err.message}`]));
        else resolveOut(out);
      },
    );
  });
  let reply: { ok?: unknown; error?: string };
  try {
    reply = JSON.parse(stdout) as typeof reply;
  } catch {
    throw new ConfigError([`${file}: the HCL parser gave no result`]);
  }
  if (reply.error !== undefined) throw new ConfigError(hclProblems(reply.error, file));
  return reply.ok;
}

/**
 * The parser reports `parse config: [<file>:<line>,<col>-<line>,<col>: <summary>; <detail> <file>:...]`.
 * Split that into one problem per diagnostic, each starting with `file:line,col`.
 */
export function hclProblems(message: string, file: string): string[] {
  const body = message.replace(/^parse config: \[/, '').replace(/\]$/, '');
  const starts = [...body.matchAll(new RegExp(`${escapeRe(file)}:\\d+,\\d+`, 'g'))].map((m) => m.index ?? 0);
  if (starts.length === 0) return [message.startsWith(file) ? message : `${file}: ${message}`];
  const seen = new Set<string>();
  const out: string[] = [];
  starts.forEach((start, i) => {
    const text = body.slice(start, starts[i + 1] ?? body.length).trim();
    // "<file>:3,19-4,1: Summary; detail" → "<file>:3,19: Summary; detail"
    const tidy = text.replace(/^(.*?:\d+,\d+)-\d+(?:,\d+)?:/, '$1:');
    if (!seen.has(tidy)) out.push(tidy);
    seen.add(tidy);
  });
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Turns checked settings into the Config consumers read: what involves more than one key (socket or bind, both
 * certificate and key or neither, project or all_projects), paths resolved against the file's directory and checked
 * readable, the socket found in the environment, and warnings. Throws ConfigError listing every problem.
 * `Config` is this function's return type.
 */
export function toConfig(settings: Settings, given: ReadonlySet<string>, file: string | null, env: NodeJS.ProcessEnv) {
  const problems: string[] = [];
  const warnings: string[] = [];
  const name = file ?? '<defaults>';
  const base = file ? dirname(file) : process.cwd();
  const { lxd, tls, dns, log, agent, metrics, consul } = settings.server;

  /** A configured file path, made absolute against the config file's directory and checked readable. */
  const path = (p: string | null, keyPath: string, isFile = true): string | null => {
    if (p === null) return null;
    const abs = isAbsolute(p) ? p : resolve(base, p);
    try {
      accessSync(abs, constants.R_OK);
      if (isFile && !statSync(abs).isFile()) problems.push(`${name}: ${keyPath}: ${abs} is not a file`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${name}: ${keyPath}: ${abs}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
    }
    return abs;
  };
  /** The pair as written in the block → the pair on disk. */
  const tlsFiles = (b: TlsFiles, keyPath: string): TlsFiles => {
    const certificate = path(b.certificate, `${keyPath}.certificate`);
    const key = path(b.key, `${keyPath}.key`);
    if ((certificate === null) !== (key === null))
      problems.push(`${name}: ${keyPath}: set both certificate and key, or neither (to generate a self-signed pair)`);
    return { certificate, key };
  };

  const sites = lxd.map((site, i) => siteOf(site, lxd.length === 1 ? 'server.lxd' : `server.lxd[${i}]`, path, problems, name, given, env));
  problems.push(...siteProblems(lxd).map((p) => `${name}: ${p}`));
  const suffix = lxd.find((site) => site.suffix !== null)?.suffix ?? DEFAULT_SUFFIX;
  if (tls.so_reuse_port !== null || tls.so_resue_port !== null)
    warnings.push('server.tls.so_reuse_port is accepted but ignored: Node 20 has no SO_REUSEPORT for TCP');

  /** A listener's `limits` block as the servers take it (servers/fairness.ts): counts, and deadlines in ms. */
  const limitsOf = (l: Settings['server']['dns']['limits']) => ({
    maxConnections: l.max_connections,
    maxPerSource: l.max_per_source,
    ipv6SourcePrefix: l.ipv6_source_prefix,
    firstRequestTimeoutMs: l.first_request_timeout,
    idleTimeoutMs: l.idle_timeout,
  });
  const tlsLimitsOf = (l: Settings['server']['tls']['limits']) => ({ ...limitsOf(l), handshakeTimeoutMs: l.handshake_timeout });
  /**
   * Plain TCP and DoT: `max_connections` and `idle_timeout` the block does not give come from the older
   * server.dns.max_tcp_connections and tcp_idle_timeout (same defaults), which keep working.
   */
  const dnsStream = <L extends ReturnType<typeof limitsOf>>(l: L, keyPath: string): L => ({
    ...l,
    maxConnections: given.has(`${keyPath}.max_connections`) ? l.maxConnections : dns.max_tcp_connections,
    idleTimeoutMs: given.has(`${keyPath}.idle_timeout`) ? l.idleTimeoutMs : dns.tcp_idle_timeout,
  });
  for (const [old, now] of [['max_tcp_connections', 'max_connections'], ['tcp_idle_timeout', 'idle_timeout']] as const)
    if (given.has(`server.dns.${old}`) && given.has(`server.dns.limits.${now}`))
      problems.push(`${name}: server.dns: set ${old} or limits.${now}, not both (the first is the older spelling)`);
  if (dns.quic.limits.idle_timeout < 5_000)
    problems.push(`${name}: server.dns.quic.limits.idle_timeout: must be at least 5s (quic-go clients assume a peer's is)`);

  const encrypted = (key: 'dot' | 'doh' | 'quic') => {
    const b = dns[key];
    const limits = tlsLimitsOf(b.limits);
    return {
      enabled: b.enabled,
      binds: b.bind,
      tls: tlsFiles(b, `server.dns.${key}`),
      hostname: b.hostname,
      limits: key === 'dot' ? dnsStream(limits, 'server.dns.dot.limits') : limits,
    } as const;
  };
  /** Every secret's value, however given: what the logger hides (Config.secrets). */
  const secrets: string[] = [];
  const kept = (secret: string): string => (secrets.push(secret), secret);
  /**
   * A secret given inline (`key`) or in a file (`key_file`), not both, and one of them when `required`: the file is
   * read now, trimmed, and checked against `pattern` (a problem names the key and the file, never the content).
   * '' when there is a problem; null when an optional secret is absent.
   */
  const secretOf = (
    block: string,
    key: string,
    inline: string | null,
    fileKey: string,
    file: string | null,
    pattern: RegExp,
    what: string,
    required: boolean,
  ): string | null => {
    if (!required && inline === null && file === null) return null;
    if ((inline === null) === (file === null)) {
      problems.push(`${name}: ${block}: set ${key} or ${fileKey} (${what}), ${required ? 'exactly one' : 'not both'}`);
      return '';
    }
    if (inline !== null) return kept(inline);
    const abs = path(file, `${block}.${fileKey}`);
    if (abs === null) return '';
    let content: string;
    try {
      content = readFileSync(abs, 'utf8').trim();
    } catch {
      return ''; // path() reported it
    }
    if (pattern.test(content)) return kept(content);
    problems.push(`${name}: ${block}.${fileKey}: ${abs} must hold ${what}`);
    return '';
  };
  /** The agent endpoint: null when its block is absent. The token is read from token_file now. */
  let agentConfig: {
    binds: NonNullable<typeof agent>['bind'];
    tls: TlsFiles;
    hostname: string;
    token: string | null;
    services: readonly string[];
    issueTokens: boolean;
    graceMs: number;
    limits: ReturnType<typeof tlsLimitsOf>;
  } | null = null;
  if (agent !== null) {
    const token = secretOf('server.agent', 'token', agent.token, 'token_file', agent.token_file, AGENT_TOKEN, 'a secret of 16..1024 non-blank characters', false);
    agentConfig = {
      binds: agent.bind,
      tls: tlsFiles(agent, 'server.agent'),
      hostname: agent.hostname,
      token,
      services: [...new Set(agent.services)],
      issueTokens: agent.issue_tokens,
      graceMs: agent.grace,
      limits: tlsLimitsOf(agent.limits),
    };
  }
  const reverseZones = dns.reverse_zones === null ? null : dns.reverse_zones.map((z) => {
    const zone = z.includes('/') ? reverseZoneOf(z) : z.toLowerCase().replace(/\.$/, '');
    if (zone === undefined || !/(^|\.)(in-addr|ip6)\.arpa$/.test(zone) || zone === 'in-addr.arpa' || zone === 'ip6.arpa')
      problems.push(`${name}: server.dns.reverse_zones: "${z}" is neither a subnet (prefix /8 or longer for IPv4, /4 for IPv6) nor a zone below in-addr.arpa or ip6.arpa`);
    return zone ?? '';
  });
  const nameServer = nameServerAddresses(dns.ns_addresses, dns.bind.map((b) => b.host));
  for (const p of nameServer.problems) problems.push(`${name}: ${p}`);
  if (dns.enabled && nameServer.fromBinds && nameServer.addresses.length === 0)
    warnings.push('server.dns.bind names no specific address, so the zone\'s name server (the apex NS) has no address: set server.dns.ns_addresses to the addresses clients reach lexa by');
  const notify = dns.transfer.notify.map((n) => {
    const m = /^(?:\[([^\]]+)\]|([0-9.]+))(?::(\d+))?$/.exec(n);
    const host = m?.[1] ?? m?.[2] ?? '';
    const port = m?.[3] === undefined ? 53 : Number(m[3]);
    if (!isIP(host) || port < 1 || port > 65535) problems.push(`${name}: server.dns.transfer.notify: "${n}" is not an address with an optional port 1..65535`);
    return { host, port };
  });
  for (const a of dns.transfer.allow) {
    const [ip, len] = a.split('/') as [string, string | undefined];
    const max = isIP(ip) === 6 ? 128 : 32;
    if (isIP(ip) === 0 || (len !== undefined && Number(len) > max))
      problems.push(`${name}: server.dns.transfer.allow: "${a}" is not an address or prefix`);
  }
  for (const a of dns.rate_limit.exempt) {
    const [ip, len] = a.split('/') as [string, string | undefined];
    if (isIP(ip) === 0 || (len !== undefined && Number(len) > (isIP(ip) === 6 ? 128 : 32)))
      problems.push(`${name}: server.dns.rate_limit.exempt: "${a}" is not an address or prefix`);
  }
  const keyBlock = dns.transfer.key;
  const key = keyBlock === null ? null : {
    name: keyBlock.name,
    algorithm: keyBlock.algorithm,
    secret: secretOf('server.dns.transfer.key', 'secret', keyBlock.secret, 'secret_file', keyBlock.secret_file, TSIG_SECRET, 'the base64 TSIG secret', true) ?? '',
  };
  if (notify.length > 0 && dns.transfer.allow.length === 0)
    warnings.push('server.dns.transfer.notify is set but transfer.allow is empty: the secondaries told of changes will be refused the transfer');
  const config = {
    /** The file this came from, or null when running on defaults. */
    source: file,
    /** The first site and the one zone's suffix: what a one-site file configures, read as before. */
    lxd: { ...omitName(sites[0]!), suffix },
    /**
     * Every site, in block order (the order unqualified names fail over in). One unnamed site is today's single
     * LXD; with several, each has its label.
     */
    sites: sites as readonly SiteConfig[],
    rest: {
      enabled: tls.enabled,
      binds: tls.bind,
      tls: tlsFiles(tls, 'server.tls'),
      limits: tlsLimitsOf(tls.limits),
      /** CA file (absolute) a client certificate must chain to; null: no client certificate asked for. */
      clientCa: path(tls.client_ca, 'server.tls.client_ca'),
    },
    dns: {
      enabled: dns.enabled,
      binds: dns.bind,
      ttl: dns.ttl,
      negativeTtl: dns.negative_ttl,
      tcpIdleTimeoutMs: dns.tcp_idle_timeout,
      maxTcpConnections: dns.max_tcp_connections,
      ednsUdpSize: dns.edns_udp_size,
      maxUdpReply: dns.max_udp_reply,
      /** SO_RCVBUF of each UDP socket, bytes; 0: the kernel's default. */
      udpReceiveBuffer: dns.udp_receive_buffer,
      /** Response rate limiting for UDP, or null when off (responses_per_second = 0). */
      rateLimit:
        dns.rate_limit.responses_per_second === 0
          ? null
          : {
              responsesPerSecond: dns.rate_limit.responses_per_second,
              slip: dns.rate_limit.slip,
              windowMs: dns.rate_limit.window,
              ipv4Prefix: dns.rate_limit.ipv4_prefix,
              ipv6Prefix: dns.rate_limit.ipv6_prefix,
              maxPrefixes: dns.rate_limit.max_prefixes,
              exempt: dns.rate_limit.exempt,
            },
      /** Plain TCP's fair sharing and deadlines (with tcpIdleTimeoutMs and maxTcpConnections folded in). */
      limits: dnsStream(limitsOf(dns.limits), 'server.dns.limits'),
      /** The addresses `ns.<suffix>` (the apex NS) answers: server.dns.ns_addresses, or the specific DNS binds. */
      nsAddresses: nameServer.addresses,
      /** Reverse zone names (CIDRs converted), or null to derive them from LXD's managed networks. */
      reverseZones: reverseZones as readonly string[] | null,
      transfer: {
        allow: dns.transfer.allow,
        notify: notify as readonly { readonly host: string; readonly port: number }[],
        key: key === null ? null : { name: key.name, algorithm: key.algorithm, secret: Buffer.from(key.secret, 'base64') },
      },
      dot: encrypted('dot'),
      doh: encrypted('doh'),
      quic: { ...encrypted('quic'), limits: { ...tlsLimitsOf(dns.quic.limits), handshakesPerSecond: dns.quic.limits.handshakes_per_second } },
    },
    log,
    /** The agent endpoint, or null when `server.agent` is absent. */
    agent: agentConfig,
    metrics: { enabled: metrics.enabled, binds: metrics.bind },
    /** The Consul API's names (on the REST listener). */
    consul: { datacenter: consul.datacenter },
    /** Where generated certificates are kept across restarts, or null (generated anew at every start). */
    stateDirectory: stateDirectory(settings.server.state_directory, env, base, name, problems),
    /**
     * The value of every secret (the keys schema.ts declares `.secret()`, given inline or in their `_file`), for
     * the logger to hide: TSIG secrets as base64, agent tokens.
     */
    secrets: secrets as readonly string[],
    /** Non-fatal remarks found while loading (e.g. accepted-but-ignored keys), to be logged once. */
    warnings: warnings as readonly string[],
  } as const;
  if (problems.length > 0) throw new ConfigError(problems);
  checked.set(config, settings);
  return config;
}

type LxdSettings = Settings['server']['lxd'][number];

/**
 * One `lxd` block → the site lexa watches: the socket or the HTTPS members with their certificates, the project
 * selection, the intervals. `keyPath` names the block in problems (`server.lxd[1]` when there are several).
 */
function siteOf(
  lxd: LxdSettings,
  keyPath: string,
  path: (p: string | null, keyPath: string, isFile?: boolean) => string | null,
  problems: string[],
  name: string,
  given: ReadonlySet<string>,
  env: NodeJS.ProcessEnv,
): SiteConfig {
  let endpoint: LxdEndpoint;
  if (lxd.bind.length > 0) {
    if (lxd.socket !== null) problems.push(`${name}: ${keyPath}: set either socket (local LXD) or bind (LXD over HTTPS), not both`);
    const certificate = path(lxd.certificate, `${keyPath}.certificate`);
    const key = path(lxd.key, `${keyPath}.key`);
    if (certificate === null || key === null)
      problems.push(`${name}: ${keyPath}: LXD over HTTPS needs certificate and key (a client certificate LXD trusts)`);
    endpoint = {
      kind: 'https',
      binds: lxd.bind,
      certificate: certificate ?? '',
      key: key ?? '',
      serverCertificate: path(lxd.server_certificate, `${keyPath}.server_certificate`),
    };
  } else {
    for (const k of ['certificate', 'key', 'server_certificate'] as const)
      if (lxd[k] !== null) problems.push(`${name}: ${keyPath}.${k}: only used with bind (LXD over HTTPS)`);
    endpoint = { kind: 'unix', socket: path(lxd.socket, `${keyPath}.socket`, false) ?? defaultSocket(env) };
  }
  // With one block, a project given at all (even "default") conflicts; `given` cannot tell blocks apart, so with
  // several the project must differ from the default to count as given.
  const projectGiven = keyPath === 'server.lxd' ? given.has('server.lxd.project') : lxd.project !== 'default';
  if (projectGiven && lxd.all_projects) problems.push(`${name}: ${keyPath}: set project or all_projects = true, not both`);
  return {
    name: lxd.name,
    endpoint,
    project: lxd.project,
    allProjects: lxd.all_projects,
    resyncIntervalMs: lxd.resync_interval,
    watchdogMs: lxd.watchdog_timeout,
    watchLeases: lxd.watch_leases,
  };
}

/** The site without its label: `config.lxd` keeps today's shape. */
function omitName({ name: _, ...rest }: SiteConfig): Omit<SiteConfig, 'name'> {
  return rest;
}

/** The checked, defaulted file behind each Config toConfig made (what `lexa check-config` prints). */
const checked = new WeakMap<object, Settings>();

/** The file's keys, checked and defaulted, that `config` was made from. */
export function settingsOf(config: object): Settings | undefined {
  return checked.get(config);
}

/**
 * `$LXD_DIR/unix.socket` when set, else `$INCUS_DIR/unix.socket` when set, else the first known socket that exists
 * (LXD's before Incus's), else the Debian path.
 */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  if (env['LXD_DIR']) return join(env['LXD_DIR'], 'unix.socket');
  if (env['INCUS_DIR']) return join(env['INCUS_DIR'], 'unix.socket');
  return LXD_SOCKETS.find((s) => existsSync(s)) ?? LXD_SOCKETS[0];
}

/**
 * The state directory: the configured one (relative to the file), else the first of systemd's $STATE_DIRECTORY,
 * else null. It must be a writable directory.
 */
function stateDirectory(given: string | null, env: NodeJS.ProcessEnv, base: string, name: string, problems: string[]): string | null {
  const fromEnv = env['STATE_DIRECTORY']?.split(':')[0];
  const dir = given !== null ? resolve(base, given) : fromEnv ? resolve(fromEnv) : null;
  if (dir === null) return null;
  const key = given !== null ? 'server.state_directory' : '$STATE_DIRECTORY';
  try {
    accessSync(dir, constants.W_OK | constants.X_OK);
    if (!statSync(dir).isDirectory()) problems.push(`${name}: ${key}: ${dir} is not a directory`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    problems.push(`${name}: ${key}: ${dir}: ${code === 'ENOENT' ? 'no such directory' : `not writable (${code})`}`);
  }
  return dir;
}
