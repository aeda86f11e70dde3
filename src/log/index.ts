import { createWriteStream, type WriteStream } from 'node:fs';
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
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(cfg: LogConfig): Logger {
  let out: NodeJS.WritableStream | WriteStream;
  if (cfg.out === 'stdout') out = process.stdout;
  else if (cfg.out === 'stderr') out = process.stderr;
  else out = createWriteStream(cfg.out, { flags: 'a' });
  return make((line) => out.write(line), { min: RANK[cfg.level] }, {});
}

/** A logger that writes nothing; for tests and library use. */
export const silentLogger: Logger = make(() => true, { min: Infinity }, {});

/** A logger that collects lines in memory; for tests that assert on logging. */
export function memoryLogger(): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = make((line) => lines.push(JSON.parse(line) as Record<string, unknown>) > 0, { min: 0 }, {});
  return Object.assign(logger, { lines });
}

/** The least rank written, shared by a logger and all its children so that setLevel reaches them all. */
interface Threshold {
  min: number;
}

function make(write: (line: string) => boolean, threshold: Threshold, base: Record<string, unknown>): Logger {
  const emit = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < threshold.min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...fields }, errorReplacer)}\n`);
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
