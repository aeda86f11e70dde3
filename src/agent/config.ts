import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, parseHcl } from '../config/index.js';
import { AGENT_TOKEN } from '../config/schema.js';
import { MAX_SERVICES } from './protocol.js';
import { readAgentSettings, type AgentSettings } from './schema.js';

/** Where `lexa agent` looks for its file without `--config`, in order. */
export const AGENT_CONFIG_PLACES = (cwd: string, home: string): string[] => [
  join(cwd, 'lexa.hcl'),
  join(home, 'lexa.hcl'),
  '/etc/lexa/agent.hcl',
];

export interface CheckConfig {
  readonly kind: 'tcp' | 'http';
  /** `host:port` for tcp, the URL for http. */
  readonly target: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly failuresBeforeCritical: number;
  readonly successBeforePassing: number;
}

export interface AgentServiceConfig {
  readonly name: string;
  readonly port: number;
  readonly proto: 'tcp' | 'udp';
  readonly tags: readonly string[];
  readonly interface: string | null;
  readonly priority: number;
  readonly weight: number;
  readonly checks: readonly CheckConfig[];
}

export interface AgentConfig {
  readonly source: string;
  readonly server: { readonly host: string; readonly port: number };
  /** The optional shared secret (`server.agent.token`), or null when the server sets none. */
  readonly token: string | null;
  /** devlxd's socket, where the instance's own credential is read (DEVLXD_SOCKET; a test may point elsewhere). */
  readonly devlxd: string;
  /** How the server's certificate is verified: a CA (or the certificate itself) in PEM, or a pinned fingerprint. */
  readonly trust: { readonly kind: 'ca'; readonly pem: string } | { readonly kind: 'fingerprint'; readonly sha256: string };
  readonly services: readonly AgentServiceConfig[];
}

export interface AgentLoadOptions {
  readonly path?: string | undefined;
  readonly cwd?: string;
  readonly home?: string;
}

/** Finds, parses and checks the agent's file. Throws ConfigError listing every problem (file:line or key path). */
export async function loadAgentConfig(opts: AgentLoadOptions = {}): Promise<AgentConfig> {
  const cwd = opts.cwd ?? process.cwd();
  let file: string;
  if (opts.path !== undefined) {
    file = resolve(cwd, opts.path);
    if (!existsSync(file)) throw new ConfigError([`${file}: no such file`]);
  } else {
    const found = AGENT_CONFIG_PLACES(cwd, opts.home ?? homedir()).find((f) => existsSync(f));
    if (found === undefined)
      throw new ConfigError([`no agent configuration: tried ${AGENT_CONFIG_PLACES(cwd, opts.home ?? homedir()).join(', ')}`]);
    file = found;
  }
  return agentFromParsed(await parseHcl(file), file);
}

/** Checks already-parsed HCL JSON; `file` names problems and anchors relative paths. */
export function agentFromParsed(json: unknown, file: string): AgentConfig {
  const { settings, problems } = readAgentSettings(json);
  if (settings === undefined) throw new ConfigError(problems.map((p) => `${file}: ${p}`));
  return toAgentConfig(settings, file);
}

function toAgentConfig(settings: AgentSettings, file: string): AgentConfig {
  const problems: string[] = [];
  const a = settings.agent;
  const base = dirname(file);
  const read = (p: string, keyPath: string): string => {
    const abs = isAbsolute(p) ? p : resolve(base, p);
    try {
      return readFileSync(abs, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${file}: ${keyPath}: ${abs}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code})`}`);
      return '';
    }
  };

  let token = a.token;
  if (a.token !== null && a.token_file !== null) problems.push(`${file}: agent: set token or token_file (the server's optional shared secret), not both`);
  if (a.token_file !== null) {
    token = read(a.token_file, 'agent.token_file').trim();
    if (token !== '' && !AGENT_TOKEN.test(token)) problems.push(`${file}: agent.token_file: must hold a secret of 16..1024 non-blank characters`);
  }
  let trust: AgentConfig['trust'] = { kind: 'fingerprint', sha256: '' };
  if ((a.ca === null) === (a.fingerprint === null))
    problems.push(`${file}: agent: set ca (the server's certificate or its CA) or fingerprint, exactly one`);
  else if (a.ca !== null) trust = { kind: 'ca', pem: read(a.ca, 'agent.ca') };
  else trust = { kind: 'fingerprint', sha256: a.fingerprint!.slice('sha256:'.length).toUpperCase() };

  const m = /^\[?(.*?)\]?:(\d+)$/.exec(a.server)!;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) problems.push(`${file}: agent.server: port ${port} is out of range 1..65535`);

  const seen = new Set<string>();
  const services = a.service.map((s, i): AgentServiceConfig => {
    const path = `agent.service[${i}]`;
    const id = `${s.name}/${s.proto}`;
    if (seen.has(id)) problems.push(`${file}: ${path}: service ${s.name} (${s.proto}) is declared twice`);
    seen.add(id);
    if (new Set(s.tags).size !== s.tags.length) problems.push(`${file}: ${path}.tags: a tag is listed twice`);
    const checks = s.check.map((c, j): CheckConfig => {
      const cpath = `${path}.check[${j}]`;
      if ((c.tcp === null) === (c.http === null)) problems.push(`${file}: ${cpath}: set tcp or http, exactly one`);
      if (c.timeout > c.interval) problems.push(`${file}: ${cpath}.timeout: must not exceed interval`);
      return {
        kind: c.tcp !== null ? 'tcp' : 'http',
        target: c.tcp ?? c.http ?? '',
        intervalMs: c.interval,
        timeoutMs: c.timeout,
        failuresBeforeCritical: c.failures_before_critical,
        successBeforePassing: c.success_before_passing,
      };
    });
    return { name: s.name, port: s.port, proto: s.proto, tags: s.tags, interface: s.interface, priority: s.priority, weight: s.weight, checks };
  });
  if (services.length > MAX_SERVICES) problems.push(`${file}: agent.service: ${services.length} services; at most ${MAX_SERVICES}`);
  if (problems.length > 0) throw new ConfigError(problems);
  return { source: file, server: { host: m[1]!, port }, token, devlxd: a.devlxd, trust, services };
}
