import pino, { type DestinationStream } from 'pino';
import { REDACTED } from '../config/builder.js';
import type { LogConfig, LogLevel } from '../config/types.js';
import { openDestination } from './destination.js';

/**
 * Structured logger: one JSON object per line (`{"level","time",...fields,"msg"}`), written by pino to a bounded
 * sonic-boom destination (destination.ts; no worker-thread transport).
 *
 * Measured against the hand-written logger it replaced, same machine, same run (2 shared cores, load ~13):
 *   `node dist/bench/log.js --seconds 8` (to /dev/null, bursts of 1,000 lines): 467,000 and 570,000 lines/s written,
 *   none dropped, RSS 71.9 / 68.3 MiB at the end; before: 349,000 and 298,000 lines/s, RSS 100.6 / 86.4 MiB.
 *   `node dist/bench/growth.js --sizes 10` (the daemon, RSS once ready), three runs each, interleaved: 101.0 / 104.0
 *   / 107.4 MiB; before: 100.0 / 103.1 / 102.7 MiB (about +2 MiB: pino's modules).
 */
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

/** The daemon's logger: a Logger whose lines go to a real destination, which the exit path flushes. */
export interface DestinationLogger extends Logger {
  /**
   * Resolves true once every line logged so far is written, false after `ms` if the destination has not taken
   * them (a pipe nobody reads): the process may then exit without waiting longer.
   */
  flush(ms: number): Promise<boolean>;
  /** Lines dropped so far because the destination did not keep up (each drop is also reported in the log). */
  readonly dropped: number;
  /** A file destination opens its path again (after log rotation; see Destination.reopen); false for stdout/stderr. */
  reopen(): boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * The logger on `cfg.out` (stdout, stderr or a file path, appended to): asynchronous, with a bounded queue
 * (destination.ts). When lines had to be dropped, a warning with their count follows once the destination has
 * caught up. Throws when the file cannot be opened.
 */
export function createLogger(cfg: LogConfig): DestinationLogger {
  let logger: Logger | undefined;
  const destination = openDestination(cfg.out, (dropped) =>
    logger?.warn('log: lines dropped, the destination did not keep up', { dropped }),
  );
  logger = make({ write: (line: string) => destination.write(line) }, { min: RANK[cfg.level], hidden: [] });
  return Object.defineProperties(logger as DestinationLogger, {
    flush: { value: (ms: number) => destination.flush(ms) },
    dropped: { get: () => destination.dropped },
    reopen: { value: () => destination.reopen() },
  });
}

/** A logger that writes nothing; for tests and library use. */
export const silentLogger: Logger = make({ write: () => undefined }, { min: Infinity, hidden: [] });

/** A logger that collects lines in memory; for tests that assert on logging. */
export function memoryLogger(): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = make({ write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }, { min: 0, hidden: [] });
  return Object.assign(logger, { lines });
}

/**
 * Shared by a logger and all its children so that setLevel and hide reach them all: the least rank written, and
 * the secrets to hide, each as it appears inside a JSON string. (pino fixes a child's level when it is made, so
 * the threshold is checked here and pino itself always runs at debug.)
 */
interface Threshold {
  min: number;
  hidden: string[];
}

function make(stream: DestinationStream, threshold: Threshold): Logger {
  const root = pino(
    {
      level: 'debug',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: plainErrors },
      hooks: {
        // Secrets are hidden in the finished line, so any field, nested value or the message is covered.
        // A few includes per line: lexa holds one or two secrets, and lines are short.
        streamWrite: (line) => {
          for (const secret of threshold.hidden) if (line.includes(secret)) line = line.replaceAll(secret, REDACTED);
          return line;
        },
      },
    },
    stream,
  );
  return wrap(root, threshold);
}

function wrap(p: pino.Logger, threshold: Threshold): Logger {
  const emit = (level: LogLevel) => (msg: string, fields?: Record<string, unknown>) => {
    if (RANK[level] < threshold.min) return;
    p[level](fields ?? {}, msg);
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (fields) => wrap(p.child(plainErrors(fields)), threshold),
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

/**
 * The fields with every Error, at any depth, replaced by its message (pino would write `{}` for an Error under any
 * key but `err`). Copies only the objects that hold an Error; fields are small.
 */
function plainErrors(fields: Record<string, unknown>): Record<string, unknown> {
  return plain(fields, 0) as Record<string, unknown>;
}

/** How deep plainErrors looks: far below any field lexa logs, and a bound should a field ever be circular. */
const MAX_FIELD_DEPTH = 8;

function plain(value: unknown, depth: number): unknown {
  if (value instanceof Error) return value.message;
  if (value === null || typeof value !== 'object' || depth >= MAX_FIELD_DEPTH) return value;
  if (Array.isArray(value)) {
    const items = value.map((item) => plain(item, depth + 1));
    return items.some((item, i) => item !== value[i]) ? items : value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  let copy: Record<string, unknown> | undefined;
  for (const [key, item] of Object.entries(value)) {
    const next = plain(item, depth + 1);
    if (next !== item) (copy ??= { ...value })[key] = next;
  }
  return copy ?? value;
}
