/**
 * A small declarative schema for lexa's HCL: the one place that knows which keys exist, their types and ranges.
 * `check` walks parsed HCL (as JSON: every block is an array of bodies) and returns plain values plus a problem
 * list in which each entry names the key path (e.g. `server.dns.bind.port`). It never throws.
 */

export type Spec =
  | { readonly t: 'string'; readonly pattern?: RegExp; readonly hint?: string }
  | { readonly t: 'int'; readonly min: number; readonly max: number }
  | { readonly t: 'bool' }
  | { readonly t: 'duration' }
  | { readonly t: 'enum'; readonly values: readonly string[] }
  | { readonly t: 'block'; readonly fields: Readonly<Record<string, Spec>>; readonly repeat?: boolean };

const port: Spec = { t: 'int', min: 0, max: 65535 };
const bind: Spec = {
  t: 'block',
  repeat: true,
  fields: { host: { t: 'string', pattern: /^[^\s]+$/, hint: 'an address such as 127.0.0.1 or ::' }, port },
};
const file: Spec = { t: 'string', pattern: /\S/, hint: 'a file path' };
const encrypted: Spec = {
  t: 'block',
  fields: { enabled: { t: 'bool' }, bind, certificate: file, key: file, hostname: { t: 'string' } },
};

/** The whole configuration file. Keys marked in the README as lexa 0.2 spellings are accepted as they were. */
export const configSpec: Spec = {
  t: 'block',
  fields: {
    server: {
      t: 'block',
      fields: {
        lxd: {
          t: 'block',
          fields: {
            suffix: {
              t: 'string',
              pattern: /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?$/i,
              hint: 'a DNS name such as "lexa" or "lxd.example.com"',
            },
            socket: file,
            bind: { t: 'block', fields: { host: { t: 'string', pattern: /\S/ }, port } },
            certificate: file,
            key: file,
            server_certificate: file,
            project: { t: 'string', pattern: /^[A-Za-z0-9_.-]+$/, hint: 'an LXD project name' },
            all_projects: { t: 'bool' },
            resync_interval: { t: 'duration' },
            watchdog_timeout: { t: 'duration' },
          },
        },
        tls: {
          t: 'block',
          fields: {
            enabled: { t: 'bool' },
            bind,
            so_reuse_port: { t: 'bool' },
            so_resue_port: { t: 'bool' },
            certificate: file,
            key: file,
          },
        },
        dns: {
          t: 'block',
          fields: {
            enabled: { t: 'bool' },
            bind,
            ttl: { t: 'int', min: 0, max: 2147483647 },
            negative_ttl: { t: 'int', min: 0, max: 2147483647 },
            tcp_idle_timeout: { t: 'duration' },
            max_tcp_connections: { t: 'int', min: 1, max: 65535 },
            dot: encrypted,
            doh: encrypted,
            quic: encrypted,
          },
        },
        log: {
          t: 'block',
          fields: {
            out: { t: 'string', pattern: /\S/, hint: '"stdout", "stderr" or a file path' },
            level: { t: 'enum', values: ['debug', 'info', 'warn', 'error'] },
          },
        },
      },
    },
  },
};

/** Validated but not yet defaulted values: blocks become objects (or arrays when repeatable), scalars stay. */
export type Raw = { [key: string]: RawValue };
export type RawValue = string | number | boolean | Raw | Raw[];

export function check(value: unknown, spec: Spec, path: string, problems: string[]): RawValue | undefined {
  switch (spec.t) {
    case 'string':
      if (typeof value !== 'string') return wrong(problems, path, 'a string', value);
      if (spec.pattern && !spec.pattern.test(value))
        return void problems.push(`${path}: ${JSON.stringify(value)} is not ${spec.hint ?? 'valid here'}`);
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) return wrong(problems, path, 'a whole number', value);
      if (value < spec.min || value > spec.max)
        return void problems.push(`${path}: ${value} is out of range ${spec.min}..${spec.max}`);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') return wrong(problems, path, 'true or false', value);
      return value;
    case 'duration': {
      const ms = parseDuration(value);
      if (ms === undefined) return wrong(problems, path, 'a duration such as "30s", "5m" or a number of seconds', value);
      return ms;
    }
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value))
        return wrong(problems, path, `one of ${spec.values.map((v) => JSON.stringify(v)).join(', ')}`, value);
      return value;
    case 'block': {
      // HCL2 → JSON gives every block as an array of bodies; the top level is a bare body.
      const bodies = Array.isArray(value) ? value : [value];
      if (!spec.repeat && bodies.length > 1) return void problems.push(`${path}: block is declared ${bodies.length} times; declare it once`);
      const out: Raw[] = [];
      for (const body of bodies) {
        if (typeof body !== 'object' || body === null || Array.isArray(body)) {
          problems.push(`${path}: must be a block (${path.split('.').pop()} { ... }), not ${describe(body)}`);
          continue;
        }
        const obj: Raw = {};
        for (const [key, v] of Object.entries(body as Record<string, unknown>)) {
          const sub = spec.fields[key];
          const subPath = path ? `${path}.${key}` : key;
          if (!sub) {
            const known = Object.keys(spec.fields).join(', ');
            problems.push(`${subPath}: unknown key (known here: ${known})`);
            continue;
          }
          const checked = check(v, sub, subPath, problems);
          if (checked !== undefined) obj[key] = checked;
        }
        out.push(obj);
      }
      return spec.repeat ? out : out[0];
    }
  }
}

function wrong(problems: string[], path: string, expected: string, got: unknown): undefined {
  problems.push(`${path}: expected ${expected}, got ${describe(got)}`);
  return undefined;
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a block or list';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'a block';
  return `${typeof v} ${JSON.stringify(v)}`;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "250ms", "30s", "5m", "1h", "1m30s", or a plain number of seconds. Returns ms, or undefined if invalid. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : undefined;
  if (typeof v !== 'string' || !/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(v.trim())) return undefined;
  let total = 0;
  for (const m of v.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(total);
}
