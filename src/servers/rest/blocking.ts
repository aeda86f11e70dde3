import type { Request, Response } from 'express';
import { parseDuration } from '../../config/index.js';
import type { Clock } from '../../time/clock.js';
import type { Doc, Documents } from './documents.js';

/**
 * Blocking queries (Consul's style): `?index=N` waits until the document's index differs from N, or until
 * `wait` has passed, then answers with the current document either way. Without `index` a request answers at
 * once. Every answer carries `X-Lexa-Index`.
 */

/** Consul's default wait when `index` is given without `wait`. */
export const DEFAULT_WAIT_MS = 5 * 60_000;
/** Consul's cap, and the issue's: longer waits buy nothing and hold a connection slot. */
export const MAX_WAIT_MS = 10 * 60_000;
/**
 * The wait is stretched by up to wait/16 at random (Consul does the same) so that many clients that started
 * together do not all come back in the same instant.
 */
export const JITTER_FRACTION = 1 / 16;

export const INDEX_HEADER = 'X-Lexa-Index';

export type BlockingParams = { readonly index: number; readonly waitMs: number } | { readonly error: string } | undefined;

/**
 * What `wait` without `index` means: an error (lexa's own API: the client surely meant to block), or nothing
 * (Consul's API, which ignores it: its client libraries send it on a first, non-blocking request).
 */
export type WaitAlone = 'error' | 'ignore';

/** Reads `index` and `wait` from the query string: undefined when not blocking, `{error}` when malformed. */
export function blockingParams(query: Request['query'], random: () => number, waitAlone: WaitAlone = 'error'): BlockingParams {
  const { index, wait } = query;
  if (index === undefined) return wait === undefined || waitAlone === 'ignore' ? undefined : { error: 'wait needs index' };
  if (typeof index !== 'string' || !/^\d{1,16}$/.test(index)) return { error: 'index must be a whole number (from the index header of an earlier answer)' };
  let waitMs = DEFAULT_WAIT_MS;
  if (wait !== undefined) {
    const ms = typeof wait === 'string' ? parseDuration(/^\d+(\.\d+)?$/.test(wait) ? Number(wait) : wait) : undefined;
    if (ms === undefined) return { error: 'wait must be a duration such as "60s", "5m" or a number of seconds' };
    waitMs = ms;
  }
  waitMs = Math.min(waitMs, MAX_WAIT_MS);
  return { index: Number(index), waitMs: Math.round(waitMs + random() * waitMs * JITTER_FRACTION) };
}

/**
 * Answers `req` with document `key` through `send`, after waiting as a blocking query when it asks to. The one
 * timer a waiter holds (on `clock`) is cleared when it is answered or its client leaves.
 */
export function answerBlocking(
  req: Request,
  res: Response,
  docs: Documents,
  key: string,
  send: (res: Response, doc: Doc) => void,
  random: () => number,
  clock: Clock,
  waitAlone: WaitAlone = 'error',
): void {
  const params = blockingParams(req.query, random, waitAlone);
  if (params === undefined) return send(res, docs.get(key));
  if ('error' in params) {
    res.status(400).json({ error: params.error });
    return;
  }
  let timer: unknown;
  // Declared before the watch: `watch` calls `finish` at once when the index has already moved (a stale index,
  // index 0), and `finish` refers to `leave`.
  let cancel: () => void = () => undefined;
  const leave = () => {
    clock.clearTimeout(timer);
    cancel();
  };
  let answered = false;
  const finish = (doc: Doc) => {
    answered = true;
    clock.clearTimeout(timer);
    res.off('close', leave);
    if (!res.writableEnded && !res.destroyed) send(res, doc);
  };
  cancel = docs.watch(key, params.index, finish);
  if (answered) return; // at once: the index had already moved
  timer = clock.setTimeout(() => {
    cancel();
    finish(docs.get(key));
  }, params.waitMs);
  res.on('close', leave);
}
