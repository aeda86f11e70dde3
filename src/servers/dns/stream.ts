import { Buffer } from 'node:buffer';
import type net from 'node:net';
import type { Logger } from '../../log/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import type { StreamLimits } from '../transport.js';
import type { HandleQuery } from '../../dns/handler.js';
import type { HandleTransfer } from '../../replication/transfer.js';
import { asBuffer, MESSAGE_LIMIT } from '../../dns/wire.js';

/**
 * DNS over a byte stream: the 2-byte big-endian length framing of RFC 1035 §4.2.2, shared by plain TCP
 * (RFC 7766) and DNS over TLS (RFC 7858 §3.3), which only differ in what the socket is.
 */

/**
 * Bytes one connection may hold by default: an incomplete query waiting for its end, or replies the client is
 * not reading. Real queries are a few hundred bytes; a larger partial frame closes the connection, and unread
 * replies above it stop reading from that client until they drain.
 */
export const STREAM_MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * Splits a byte stream into length-prefixed messages. Chunks may end anywhere, even inside a length prefix;
 * several messages may arrive in one chunk. It keeps only the start of a message whose end has not arrived.
 */
export class FrameReader {
  /** The start of a frame whose end has not arrived yet. */
  #pending: Buffer | undefined;

  /** Bytes held for an incomplete frame. */
  get pendingBytes(): number {
    return this.#pending?.length ?? 0;
  }

  /**
   * The length the incomplete frame announces (without its prefix), or -1 when there is none or its prefix has
   * not fully arrived. Lets a caller reject a frame that could never fit its buffer limit before it arrives.
   */
  get announced(): number {
    const p = this.#pending;
    return p !== undefined && p.length >= 2 ? p.readUInt16BE(0) : -1;
  }

  /**
   * Calls `onMessage` with every message completed by `chunk`, in stream order. The message is a view into the
   * received bytes, valid only during the call. `onMessage` returning false stops the reading: the rest of the
   * bytes are kept, and `push` with an empty chunk goes on from there (a caller that closed the stream just
   * drops the reader).
   */
  push(chunk: Uint8Array, onMessage: (msg: Buffer) => boolean): void {
    const buf = this.#pending === undefined ? asBuffer(chunk) : chunk.length === 0 ? this.#pending : Buffer.concat([this.#pending, chunk]);
    let off = 0;
    while (buf.length - off >= 2) {
      const len = buf.readUInt16BE(off);
      if (buf.length - off - 2 < len) break;
      const msg = buf.subarray(off + 2, off + 2 + len);
      off += 2 + len;
      if (!onMessage(msg)) break;
    }
    // Copy the remainder: a view would pin the whole (possibly large) chunk it came from.
    this.#pending = off === buf.length ? undefined : Buffer.from(buf.subarray(off));
  }
}

/** Prefixes a message with its 2-byte length (RFC 1035 §4.2.2, RFC 9250 §4.2); the caller guarantees it is at most
 * MAX_DNS_MESSAGE bytes. */
export function frameMessage(msg: Uint8Array): Buffer {
  const framed = Buffer.allocUnsafe(2 + msg.length);
  framed.writeUInt16BE(msg.length, 0);
  framed.set(msg, 2);
  return framed;
}

/**
 * Answers length-prefixed DNS queries on an open, connected socket (plain TCP or an established TLS socket) until
 * either side closes it: any number of pipelined queries, each handed to `handle` with MESSAGE_LIMIT (full
 * answers, never truncated) and answered synchronously, so replies go out in query order (RFC 7766 §6.2.1.1 and
 * RFC 7858 §3.3 both allow it). A query the handler drops (null) gets no reply; the connection stays open.
 * Limits: the first query must be complete within `firstRequestTimeoutMs`, and each later one within
 * `idleTimeoutMs` of the previous (complete queries count, not bytes, so a client trickling a byte at a time, or
 * never finishing a frame, cannot hold the connection); a partial frame that cannot fit `maxBufferedBytes` closes
 * it. Backpressure is per query: once the replies the client has not read pass `maxBufferedBytes`, no further
 * query is answered (and nothing more is read) until they drain, so a client that pipelines and never reads holds
 * at most one read chunk of queries plus `maxBufferedBytes` and one reply (or one zone transfer) of output.
 * `name` prefixes log messages (e.g. 'dns/tcp'). With `transfer`, a zone-transfer query (AXFR/IXFR) is answered
 * by it with a sequence of messages, written in order before the next query's reply. `clock` times the deadlines
 * (tests drive a fake one). Never throws.
 */
export function serveStream(
  socket: net.Socket,
  handle: HandleQuery,
  limits: StreamLimits,
  log: Logger,
  name: string,
  transfer?: HandleTransfer,
  clock: Clock = realClock,
): void {
  const { idleTimeoutMs } = limits;
  const firstRequestTimeoutMs = limits.firstRequestTimeoutMs ?? idleTimeoutMs;
  const maxBufferedBytes = limits.maxBufferedBytes ?? STREAM_MAX_BUFFERED_BYTES;
  const reader = new FrameReader();
  socket.setNoDelay(true);
  socket.on('error', (err) => log.debug(`${name}: connection error`, { error: err.message }));

  // One timer, re-armed lazily: the deadline is `limit` after the last complete query (or the start).
  let lastProgress = clock.now();
  let limit = firstRequestTimeoutMs;
  const checkIdle = (): void => {
    const quiet = clock.now() - lastProgress;
    if (quiet >= limit) socket.destroy();
    else idleTimer = clock.setTimeout(checkIdle, limit - quiet);
  };
  let idleTimer = clock.setTimeout(checkIdle, limit);
  socket.on('close', () => clock.clearTimeout(idleTimer));
  // A client that reads everything we queued is making progress too, even if it asks nothing new.
  socket.on('drain', () => (lastProgress = clock.now()));

  /** Answers one query; false when reading must stop (closed, or replies waiting past the buffer bound). */
  const onMessage = (msg: Buffer): boolean => {
    if (socket.destroyed) return false;
    lastProgress = clock.now();
    if (limit !== idleTimeoutMs) {
      // The first query: from now on the idle deadline, which may be shorter than the timer armed for the first.
      limit = idleTimeoutMs;
      clock.clearTimeout(idleTimer);
      idleTimer = clock.setTimeout(checkIdle, limit);
    }
    let reply: Uint8Array | null;
    try {
      const many = transfer?.(msg, socket.remoteAddress ?? '');
      if (many !== undefined) {
        for (const m of many) socket.write(frameMessage(m));
        return socket.writableLength <= maxBufferedBytes;
      }
      reply = handle(msg, MESSAGE_LIMIT);
    } catch (err) {
      // The handler promises never to throw; if it does, this connection ends, not the server.
      const error = err instanceof Error ? err.message : String(err);
      log.warn(`${name}: handler threw, closing the connection`, { error });
      socket.destroy();
      return false;
    }
    if (reply !== null) socket.write(frameMessage(reply));
    return socket.writableLength <= maxBufferedBytes;
  };

  /** Answers what is buffered; pauses reading while replies wait, resuming (and answering the rest) on 'drain'. */
  const answer = (chunk: Uint8Array): void => {
    reader.push(chunk, onMessage);
    if (socket.destroyed) return;
    if (socket.writableLength > maxBufferedBytes) {
      if (!socket.isPaused()) socket.pause();
      socket.once('drain', () => {
        answer(EMPTY);
        if (!socket.destroyed && socket.writableLength <= maxBufferedBytes) socket.resume();
      });
      return;
    }
    // The frame being received can never fit: close now rather than after buffering up to the limit.
    if (2 + reader.announced > maxBufferedBytes) {
      log.debug(`${name}: partial query over the buffer limit, closing`, {
        bytes: reader.pendingBytes,
        announced: reader.announced,
        limit: maxBufferedBytes,
      });
      socket.destroy();
    }
  };
  socket.on('data', answer);
}

const EMPTY = new Uint8Array(0);
