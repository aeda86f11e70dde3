import { createWriteStream, type WriteStream } from 'node:fs';
import { REDACTED } from '../config/builder.js';
import type { LogConfig, LogLevel } from '../config/types.js';

/** Structured logger: one JSON object per line (`{"time","level","msg",...fields}`). */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line. */
  child(fields: Record<string, unknown>): Logger;
  /** Changes the least level written, for this logger, its parent and every child alike (SIGHUP reload). */
  setLevel(level: LogLevel): void;
  /**
   * Adds secret values (Config.secrets) that no line written from now on shows, for this logger, its parent and
   * every child alike: each occurrence becomes REDACTED (as `lexa check-config` prints it), whatever field or message carries it. Secrets added
   * earlier stay hidden (an old token may still be presented after a reload).
   */
  hide(secrets: readonly string[]): void;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(cfg: LogConfig): Logger {
  let out: NodeJS.WritableStream | WriteStream;
  if (cfg.out === 'stdout') out = process.stdout;
  else if (cfg.out === 'stderr') out = process.stderr;
  else out = createWriteStream(cfg.out, { flags: 'a' });
  return make((line) => out.write(line), { min: RANK[cfg.level], hidden: [] }, {});
}

/** A logger that writes nothing; for tests and library use. */
export const silentLogger: Logger = make(() => true, { min: Infinity, hidden: [] }, {});

/** A logger that collects lines in memory; for tests that assert on logging. */
export function memoryLogger(): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = make((line) => lines.push(JSON.parse(line) as Record<string, unknown>) > 0, { min: 0, hidden: [] }, {});
  return Object.assign(logger, { lines });
}

/**
 * Shared by a logger and all its children so that setLevel and hide reach them all: the least rank written, and
 * the secrets to hide, each as it appears inside a JSON string.
 */
interface Threshold {
  min: number;
  hidden: string[];
}

function make(write: (line: string) => boolean, threshold: Threshold, base: Record<string, unknown>): Logger {
  const emit = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < threshold.min) return;
    let line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }, errorReplacer);
    // A few includes per line: lexa holds one or two secrets, and lines are short.
    for (const secret of threshold.hidden) if (line.includes(secret)) line = line.replaceAll(secret, REDACTED);
    write(`${line}\n`);
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => make(write, threshold, { ...base, ...fields }),
    setLevel: (level) => {
      // The silent logger stays silent.
      if (threshold.min !== Infinity) threshold.min = RANK[level];
    },
    hide: (secrets) => {
      for (const secret of secrets) {
        const inJson = JSON.stringify(secret).slice(1, -1);
        if (inJson !== '' && !threshold.hidden.includes(inJson)) threshold.hidden.push(inJson);
      }
    },
  };
}

/**
 * One line for an error in a log field: its message, and its cause's message when it has one (undici and
 * node:net wrap the interesting part, e.g. ECONNREFUSED, in `cause`). Anything else thrown is stringified.
 */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message}: ${cause.message}` : err.message;
  }
  return String(err);
}

function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}
