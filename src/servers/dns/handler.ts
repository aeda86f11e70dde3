import type { Snapshot } from '../../streams/snapshot.js';
import { checkResolveOptions, resolve, type ResolveOptions } from './resolve.js';
import { answerQuery, DEFAULT_MAX_UDP_PAYLOAD, MAX_MESSAGE, MIN_UDP_PAYLOAD, type Transport } from './wire.js';

/** Structured logger the DNS servers write to; `fields` carry machine-readable context. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * One DNS query in, one reply out (or null: send nothing). Every transport (UDP, TCP, and later DoT, DoH, DoQ)
 * calls this and only converts bytes around it. Synchronous: it reads the current snapshot and never waits.
 * Never throws. `maxUdp` overrides the handler's UDP ceiling for one call; TCP-like transports ignore it.
 */
export type HandleQuery = (buf: Uint8Array, transport: Transport, maxUdp?: number) => Uint8Array | null;

export interface HandlerOptions {
  /** The current snapshot, read once per query (the store's synchronous `current`). */
  readonly snapshot: () => Snapshot;
  readonly resolver: ResolveOptions;
  /** Largest UDP reply, and what our EDNS OPT advertises; default DEFAULT_MAX_UDP_PAYLOAD. */
  readonly maxUdpPayload?: number;
  readonly log: Logger;
}

/**
 * How often at most an internal error is logged: a broken record in the snapshot would otherwise log once per
 * query, thousands of times a second.
 */
const ERROR_LOG_INTERVAL_MS = 10_000;

/** Builds the handler; throws here (at start-up, not per query) when the resolver options are unusable. */
export function createHandler(opts: HandlerOptions): HandleQuery {
  const problems = checkResolveOptions(opts.resolver);
  if (problems.length > 0) throw new Error(problems.join('; '));
  const maxUdp = clampUdp(opts.maxUdpPayload ?? DEFAULT_MAX_UDP_PAYLOAD);
  const { snapshot, resolver, log } = opts;
  let lastErrorLog = 0;
  let suppressed = 0;
  const onError = (err: unknown): void => {
    const now = Date.now();
    if (now - lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    log.error('dns: query failed, answered SERVFAIL', { error: describe(err), suppressed });
    lastErrorLog = now;
    suppressed = 0;
  };
  const answerer = (q: Parameters<typeof resolve>[1]) => resolve(snapshot(), q, resolver);
  return (buf, transport, max = maxUdp) => answerQuery(buf, transport, answerer, max, onError);
}

function clampUdp(n: number): number {
  return Number.isFinite(n) ? Math.max(MIN_UDP_PAYLOAD, Math.min(Math.floor(n), MAX_MESSAGE)) : DEFAULT_MAX_UDP_PAYLOAD;
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
