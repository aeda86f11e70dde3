import type { Bind } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { Clock } from '../time/clock.js';
import type { TlsMaterial } from '../tls/index.js';
import type { HandleQuery } from '../dns/handler.js';
import type { ConnectionLimits } from './fairness.js';

/**
 * What every DNS transport's `start*` takes: where to listen, the one handler the daemon built, a logger, and
 * the transport's resource limits (`L`, resolved once by the caller: from the configuration in the daemon).
 * A transport converts bytes and calls `handle`; it never resolves names itself.
 */
export interface TransportOptions<L> {
  readonly binds: readonly Bind[];
  readonly handle: HandleQuery;
  readonly log: Logger;
  readonly limits: L;
  /** Times the connection deadlines (the process's clock when absent; tests drive a fake one). */
  readonly clock?: Clock;
}

/** A transport that speaks TLS (DoT, DoH, DoQ): the certificate it presents at start. */
export interface TlsTransportOptions<L> extends TransportOptions<L> {
  readonly tls: TlsMaterial;
}

/**
 * Limits of a connection carrying length-framed DNS messages (plain TCP, DoT): fair admission (fairness.ts) and
 * two deadlines that only complete queries meet.
 */
export interface StreamLimits extends ConnectionLimits {
  /** A connection that completes no query for this long after its first one is closed. */
  readonly idleTimeoutMs: number;
  /**
   * A connection must complete its first query within this from the start of serving (after the TLS handshake for
   * DoT). Default: idleTimeoutMs.
   */
  readonly firstRequestTimeoutMs?: number;
  /**
   * Bytes one connection may hold: an incomplete query, or replies the client is not reading. Default
   * STREAM_MAX_BUFFERED_BYTES (dns/stream.ts).
   */
  readonly maxBufferedBytes?: number;
}

export type { Listeners } from './listen.js';
export type { TlsListeners } from './tls-servers.js';
export type { ConnectionLimits } from './fairness.js';
