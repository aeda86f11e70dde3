import type { CheckKind, ServiceCheck } from './model.js';

/**
 * The server-side check of a `user.lexa.service.<name>` declaration (services.ts gathers the fields):
 *
 *   check                          = tcp | http:<path> | https:<path>   (`http` alone means `http:/`)
 *   check_interval                 = 10s     how often; 1s..1h
 *   check_timeout                  = 2s      a run not done by then fails; 100ms.., below the interval
 *                                            (default: 2s, or half the interval when that is shorter)
 *   check_failures_before_critical = 1       consecutive failures that withdraw a served service; 1..1000
 *   check_success_before_passing   = 1       consecutive successes that serve a critical one; 1..1000
 *
 * Names and defaults are the agent's (src/agent/schema.ts) with a `check_` prefix; the interval and timeout are
 * Consul's defaults. Every value comes from LXD config, which any LXD user may write: all are bounded, so no key
 * makes lexa probe faster than once a second, wait longer than an hour, or send an unbounded request line.
 */
export const CHECK_FIELDS = ['check', 'check_interval', 'check_timeout', 'check_failures_before_critical', 'check_success_before_passing'] as const;

/** Consul's default interval. */
export const DEFAULT_INTERVAL_MS = 10_000;
/** Consul's default timeout. */
export const DEFAULT_TIMEOUT_MS = 2_000;
/** A floor on the interval: one probe a second per service is already more than any health check needs. */
export const MIN_INTERVAL_MS = 1_000;
/** A ceiling on the interval: a check run less often than hourly says nothing about health. */
export const MAX_INTERVAL_MS = 3_600_000;
/** A floor on the timeout: below this a healthy service on a busy host would flap. */
export const MIN_TIMEOUT_MS = 100;
/** The agent's bound on both thresholds (src/agent/schema.ts). */
export const MAX_THRESHOLD = 1000;
/** The longest path GET may ask for: a request line stays small whatever the key says. */
export const MAX_PATH_CHARS = 256;
/** Duration text longer than this is refused before parsing ("1h30m15s500ms" is 13). */
const MAX_DURATION_CHARS = 32;

/** Visible ASCII without `#` (a fragment is never sent): no space, control character or line break can reach the request. */
const PATH = /^\/[\x21-\x22\x24-\x7e]*$/;
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** The parsed check, or why not (the message names the key); `undefined` when no check field is set. */
export function parseCheck(fields: ReadonlyMap<string, string>, key: (field: string) => string): ServiceCheck | string | undefined {
  const text = fields.get('check');
  if (text === undefined) {
    const stray = CHECK_FIELDS.find((f) => fields.has(f));
    return stray === undefined ? undefined : `${key(stray)}: set without ${key('check')}`;
  }
  const m = /^(tcp|https?)(?::([\s\S]*))?$/i.exec(text);
  const kind = m?.[1]?.toLowerCase() as CheckKind | undefined;
  if (m === null || kind === undefined || (kind === 'tcp' && m[2] !== undefined))
    return `${key('check')}: ${quote(text)} must be tcp, http:<path> or https:<path>`;
  let path: string | null = null;
  if (kind !== 'tcp') {
    path = m[2] ?? '/';
    if (path.length > MAX_PATH_CHARS || !PATH.test(path))
      return `${key('check')}: the path must start with / and be at most ${MAX_PATH_CHARS} visible ASCII characters, without spaces or #`;
  }
  const intervalMs = duration(fields.get('check_interval'), DEFAULT_INTERVAL_MS);
  if (intervalMs === undefined || intervalMs < MIN_INTERVAL_MS || intervalMs > MAX_INTERVAL_MS)
    return `${key('check_interval')}: ${quote(fields.get('check_interval'))} must be a duration from 1s to 1h, e.g. "10s"`;
  const timeoutMs = duration(fields.get('check_timeout'), Math.min(DEFAULT_TIMEOUT_MS, intervalMs / 2));
  if (timeoutMs === undefined || timeoutMs < MIN_TIMEOUT_MS || timeoutMs >= intervalMs)
    return `${key('check_timeout')}: ${quote(fields.get('check_timeout'))} must be a duration of at least 100ms and below the interval (${intervalMs}ms)`;
  const failuresBeforeCritical = count(fields.get('check_failures_before_critical'));
  if (failuresBeforeCritical === undefined)
    return `${key('check_failures_before_critical')}: ${quote(fields.get('check_failures_before_critical'))} must be 1..${MAX_THRESHOLD}`;
  const successBeforePassing = count(fields.get('check_success_before_passing'));
  if (successBeforePassing === undefined)
    return `${key('check_success_before_passing')}: ${quote(fields.get('check_success_before_passing'))} must be 1..${MAX_THRESHOLD}`;
  return { kind, path, intervalMs, timeoutMs, failuresBeforeCritical, successBeforePassing };
}

/** Milliseconds of "10s", "1m30s", "500ms" (units ms, s, m, h); `fallback` when absent; undefined when malformed. */
export function duration(text: string | undefined, fallback: number): number | undefined {
  if (text === undefined) return fallback;
  if (text.length === 0 || text.length > MAX_DURATION_CHARS || !/^(\d+(ms|s|m|h))+$/.test(text)) return undefined;
  let ms = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

function count(text: string | undefined): number | undefined {
  if (text === undefined) return 1;
  if (!/^\d{1,4}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= MAX_THRESHOLD ? n : undefined;
}

/** A value quoted for a message, cut short: a key's value can be as long as LXD allows. */
function quote(text: string | undefined): string {
  const s = text ?? '';
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
}
