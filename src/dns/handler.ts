import type { View } from '../streams/index.js';
import type { Logger } from '../log/index.js';
import { checkResolveOptions, resolve, type ResolveOptions } from './resolve.js';
import { cachedAnswers } from './answer-cache.js';
import { skippedRecords } from './skipped.js';
import { answerQuery, clampPayload, DEFAULT_EDNS_UDP_SIZE, type ReplyLimit } from './wire.js';

/**
 * The core of lexa's DNS: one query in, one reply out (or null: send nothing). The daemon builds one handler;
 * every transport (UDP, TCP, DoT, DoH, DoQ) is an adapter that only moves bytes around it, saying with each
 * query how large a reply it can carry (`limit`). Synchronous: it reads the current snapshot and never waits.
 * Never throws.
 */
export type HandleQuery = (query: Uint8Array, limit: ReplyLimit) => Uint8Array | null;

export interface HandlerOptions {
  /** The current snapshot, read once per query (the store's synchronous `current`). */
  readonly snapshot: () => View;
  readonly resolver: ResolveOptions;
  /**
   * The UDP payload size our EDNS OPT advertises on every transport (`server.dns.edns_udp_size`). It does not
   * cap replies: the transport's ReplyLimit does. Default DEFAULT_EDNS_UDP_SIZE.
   */
  readonly udpPayload?: number;
  readonly log: Logger;
  /** Keep replies per snapshot and question (answer-cache.ts); default true. */
  readonly cache?: boolean;
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
  const udpPayload = clampPayload(opts.udpPayload ?? DEFAULT_EDNS_UDP_SIZE);
  const { snapshot, resolver, log } = opts;
  let lastErrorLog = 0;
  let suppressed = 0;
  const onError = (err: unknown): void => {
    const now = Date.now();
    if (now - lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    log.error('dns: query failed, answered SERVFAIL', { error: err instanceof Error ? (err.stack ?? err.message) : String(err), suppressed });
    lastErrorLog = now;
    suppressed = 0;
  };
  const onSkip = skippedRecords(log, 'a reply');
  const answerer = (q: Parameters<typeof resolve>[1]) => resolve(snapshot(), q, resolver);
  const full: HandleQuery = (query, limit) => answerQuery(query, limit, answerer, udpPayload, onError, onSkip);
  // Replies computed once per snapshot and question (answer-cache.ts): measured in `npm run bench`, the cached
  // path costs a fraction of decode + resolve + encode; opts.cache = false serves every query the full way.
  return opts.cache === false ? full : cachedAnswers(full, snapshot);
}

/** Resolver options from configuration: one object for the process, so derived values are computed once. */
export function resolverOptions(
  suffix: string,
  dns: { readonly ttl: number; readonly negativeTtl: number; readonly nsAddresses?: readonly string[] },
  sites: readonly { readonly name: string | null }[] = [],
): ResolveOptions {
  const named = sites.flatMap((s) => (s.name === null ? [] : [s.name]));
  const ns = dns.nsAddresses ?? [];
  return {
    suffix,
    ttl: dns.ttl,
    soa: { minimum: dns.negativeTtl },
    ...(ns.length > 0 ? { nameServerAddresses: ns } : {}),
    ...(named.length > 0 ? { sites: named } : {}),
  };
}
