import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, configSpec, type Raw } from './schema.js';
import type { Bind, Config, EncryptedDnsConfig, LogLevel, TlsFiles } from './types.js';

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

export const DEFAULTS = {
  suffix: 'lexa',
  project: 'default',
  /** Events carry every change; the re-list only repairs what a lost event would leave wrong. */
  resyncIntervalMs: 5 * 60_000,
  /** LXD pings every 10 s (FACTS §2); missing two and a half of them means the daemon is gone or hung. */
  watchdogMs: 25_000,
  restBind: { host: '127.0.0.1', port: 18443 },
  dnsBind: { host: '127.0.0.1', port: 18053 },
  dotBind: { host: '127.0.0.1', port: 18853 },
  doqBind: { host: '127.0.0.1', port: 18854 },
  dohBind: { host: '127.0.0.1', port: 18855 },
  ttl: 0,
  negativeTtl: 0,
  /** RFC 7766 §6.2.3 suggests seconds, not minutes, for idle TCP clients of a busy server. */
  tcpIdleTimeoutMs: 10_000,
  maxTcpConnections: 256,
  hostname: 'localhost',
} as const;

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
  if (file === null) return fromRaw({}, null, opts.env ?? process.env);
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
  const problems: string[] = [];
  const checked = check(json, configSpec, '', problems) as Raw | undefined;
  const name = file ?? '<defaults>';
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `${name}: ${p}`));
  const server = (checked?.['server'] as Raw | undefined) ?? {};
  return fromRaw(server, file, env);
}

async function parseHcl(file: string): Promise<unknown> {
  // Compiled, the child is hcl-child.js beside this file. Run from source (tests), it is the .ts file, run with
  // this process's loader flags.
  const compiled = fileURLToPath(new URL('./hcl-child.js', import.meta.url));
  const args = existsSync(compiled)
    ? [compiled, file]
    : [...process.execArgv, fileURLToPath(new URL('./hcl-child.ts', import.meta.url)), file];
  const stdout = await new Promise<string>((resolveOut, reject) => {
    execFile(
      process.execPath,
      args,
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

function fromRaw(server: Raw, file: string | null, env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  const warnings: string[] = [];
  const name = file ?? '<defaults>';
  const base = file ? dirname(file) : process.cwd();
  const block = (r: Raw | undefined, key: string): Raw | undefined => r?.[key] as Raw | undefined;
  const str = (r: Raw | undefined, key: string): string | undefined => r?.[key] as string | undefined;
  const num = (r: Raw | undefined, key: string): number | undefined => r?.[key] as number | undefined;
  const bool = (r: Raw | undefined, key: string): boolean | undefined => r?.[key] as boolean | undefined;

  /** A configured file path, made absolute against the config file's directory and checked readable. */
  const path = (r: Raw | undefined, key: string, keyPath: string): string | null => {
    const p = str(r, key);
    if (p === undefined) return null;
    const abs = isAbsolute(p) ? p : resolve(base, p);
    try {
      accessSync(abs, constants.R_OK);
      if (!statSync(abs).isFile() && !keyPath.endsWith('socket')) problems.push(`${name}: ${keyPath}: ${abs} is not a file`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${name}: ${keyPath}: ${abs}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
    }
    return abs;
  };
  const tlsFiles = (r: Raw | undefined, keyPath: string): TlsFiles => {
    const certificate = path(r, 'certificate', `${keyPath}.certificate`);
    const key = path(r, 'key', `${keyPath}.key`);
    if ((certificate === null) !== (key === null))
      problems.push(`${name}: ${keyPath}: set both certificate and key, or neither (to generate a self-signed pair)`);
    return { certificate, key };
  };
  const binds = (r: Raw | undefined, fallback: Bind, keyPath: string): Bind[] => {
    const list = (r?.['bind'] as Raw[] | undefined) ?? [];
    if (list.length === 0) return [fallback];
    const out = list.map((b) => ({ host: str(b, 'host') ?? fallback.host, port: num(b, 'port') ?? fallback.port }));
    const seen = new Set<string>();
    for (const b of out) {
      const id = `${b.host}:${b.port}`;
      if (seen.has(id) && b.port !== 0) problems.push(`${name}: ${keyPath}.bind: ${id} is listed twice`);
      seen.add(id);
    }
    return out;
  };

  // server.lxd
  const lxd = block(server, 'lxd');
  const lxdBind = block(lxd, 'bind');
  let endpoint: Config['lxd']['endpoint'];
  if (lxdBind !== undefined) {
    if (str(lxd, 'socket') !== undefined)
      problems.push(`${name}: server.lxd: set either socket (local LXD) or bind (LXD over HTTPS), not both`);
    const host = str(lxdBind, 'host');
    if (host === undefined) problems.push(`${name}: server.lxd.bind.host: required to reach LXD over HTTPS`);
    const certificate = path(lxd, 'certificate', 'server.lxd.certificate');
    const key = path(lxd, 'key', 'server.lxd.key');
    if (certificate === null || key === null)
      problems.push(`${name}: server.lxd: LXD over HTTPS needs certificate and key (a client certificate LXD trusts)`);
    endpoint = {
      kind: 'https',
      bind: { host: host ?? '', port: num(lxdBind, 'port') ?? 8443 },
      certificate: certificate ?? '',
      key: key ?? '',
      serverCertificate: path(lxd, 'server_certificate', 'server.lxd.server_certificate'),
    };
  } else {
    for (const k of ['certificate', 'key', 'server_certificate'])
      if (str(lxd, k) !== undefined) problems.push(`${name}: server.lxd.${k}: only used with bind (LXD over HTTPS)`);
    endpoint = { kind: 'unix', socket: path(lxd, 'socket', 'server.lxd.socket') ?? defaultSocket(env) };
  }
  if (str(lxd, 'project') !== undefined && bool(lxd, 'all_projects') === true)
    problems.push(`${name}: server.lxd: set project or all_projects = true, not both`);

  // server.tls (the REST API)
  const tls = block(server, 'tls');
  if (tls?.['so_reuse_port'] !== undefined || tls?.['so_resue_port'] !== undefined)
    warnings.push('server.tls.so_reuse_port is accepted but ignored: Node 20 has no SO_REUSEPORT for TCP');

  // server.dns
  const dns = block(server, 'dns');
  const encrypted = (key: 'dot' | 'doh' | 'quic', fallback: Bind): EncryptedDnsConfig => {
    const b = block(dns, key);
    return {
      enabled: b !== undefined && bool(b, 'enabled') !== false,
      binds: binds(b, fallback, `server.dns.${key}`),
      tls: tlsFiles(b, `server.dns.${key}`),
      hostname: str(b, 'hostname') ?? DEFAULTS.hostname,
    };
  };

  const log = block(server, 'log');
  const config: Config = {
    source: file,
    lxd: {
      endpoint,
      suffix: (str(lxd, 'suffix') ?? DEFAULTS.suffix).toLowerCase().replace(/\.$/, ''),
      project: str(lxd, 'project') ?? DEFAULTS.project,
      allProjects: bool(lxd, 'all_projects') ?? false,
      resyncIntervalMs: num(lxd, 'resync_interval') ?? DEFAULTS.resyncIntervalMs,
      watchdogMs: num(lxd, 'watchdog_timeout') ?? DEFAULTS.watchdogMs,
    },
    rest: {
      enabled: bool(tls, 'enabled') ?? true,
      binds: binds(tls, DEFAULTS.restBind, 'server.tls'),
      tls: tlsFiles(tls, 'server.tls'),
    },
    dns: {
      enabled: bool(dns, 'enabled') ?? true,
      binds: binds(dns, DEFAULTS.dnsBind, 'server.dns'),
      ttl: num(dns, 'ttl') ?? DEFAULTS.ttl,
      negativeTtl: num(dns, 'negative_ttl') ?? DEFAULTS.negativeTtl,
      tcpIdleTimeoutMs: num(dns, 'tcp_idle_timeout') ?? DEFAULTS.tcpIdleTimeoutMs,
      maxTcpConnections: num(dns, 'max_tcp_connections') ?? DEFAULTS.maxTcpConnections,
      dot: encrypted('dot', DEFAULTS.dotBind),
      doh: encrypted('doh', DEFAULTS.dohBind),
      quic: encrypted('quic', DEFAULTS.doqBind),
    },
    log: { out: str(log, 'out') ?? 'stdout', level: (str(log, 'level') ?? 'info') as LogLevel },
    warnings,
  };
  if (config.lxd.watchdogMs < 1000) problems.push(`${name}: server.lxd.watchdog_timeout: must be at least 1s`);
  if (config.lxd.resyncIntervalMs !== 0 && config.lxd.resyncIntervalMs < 1000)
    problems.push(`${name}: server.lxd.resync_interval: must be 0 (off) or at least 1s`);
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** `$LXD_DIR/unix.socket` when set, else the first known socket that exists, else the Debian path. */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  if (env['LXD_DIR']) return join(env['LXD_DIR'], 'unix.socket');
  return LXD_SOCKETS.find((s) => existsSync(s)) ?? LXD_SOCKETS[0];
}
