import { REDACTED, type Key } from './builder.js';
import { settingsOf } from './load.js';
import { configSchema } from './schema.js';
import type { Config } from './types.js';

/**
 * The configuration in force, in the file's own key names with every default filled in (`lexa check-config`).
 * Walks the schema, so a key declared there appears here without more code. Durations are written as the file
 * writes them ("300s", "250ms"), not as the milliseconds lexa holds; the LXD socket shows the one found in the
 * environment, and state_directory the one taken from $STATE_DIRECTORY when the file names none. `server.lxd` is
 * one block for a one-site file and the list of sites otherwise, each with the one suffix in force. A key declared
 * `.secret()` in the schema shows REDACTED when set (null when not), so the output can be pasted into an issue.
 */
export function effectiveSettings(config: Config): Record<string, unknown> {
  const out = render(configSchema, settingsOf(config)) as { server: Record<string, unknown> };
  const sites = out.server['lxd'] as Record<string, unknown>[];
  sites.forEach((site, i) => {
    const endpoint = config.sites[i]?.endpoint;
    if (endpoint?.kind === 'unix') site['socket'] = endpoint.socket;
    site['suffix'] = config.lxd.suffix;
  });
  // One unnamed block prints as the one block it is, as before sites; several print as the list of sites.
  out.server['lxd'] = sites.length === 1 && config.sites[0]?.name === null ? sites[0] : sites;
  out.server['state_directory'] = config.stateDirectory;
  return out;
}

function render(key: Key<unknown>, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (key.isSecret) return REDACTED;
  if (key.kind === 'duration') return duration(value as number);
  const fields = Object.entries(key.fields);
  if (key.kind === 'list') return (value as unknown[]).map((v) => (fields.length ? renderFields(key.fields, v) : v));
  if (key.kind === 'block') return renderFields(key.fields, value);
  return value;
}

function renderFields(fields: Key<unknown>['fields'], value: unknown): Record<string, unknown> {
  const v = value as Record<string, unknown>;
  return Object.fromEntries(Object.entries(fields).map(([name, k]) => [name, render(k, v[name])]));
}

function duration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
