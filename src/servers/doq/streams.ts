// DoQ query streams served directly on quiche's stream calls, without @matrixai/quic's QUICStream.
//
// WHY: profiled under 10 connections × 300 queries (docs/performance.md, DoQ), the library's per-stream layer
// cost more than everything else lexa does per query: each stream became a QUICStream with a web ReadableStream
// and WritableStream, an AbortController, a lock, several promises, events and custom errors with captured stacks
// (ts-custom-error), a logger child, and stream reads that each awaited a pull. A DoQ stream carries one small
// query and one reply (RFC 9250 §4.2), so none of that buys anything here: this file reads the query bytes with
// streamRecv where the library would have created the QUICStream, answers synchronously, and writes the reply with
// FIN in the same turn, so the library's send() after recv() carries it out in the very next datagram.
//
// What it promises, per connection: a client-initiated bidirectional stream is read to FIN (at most one framed
// DNS message: QueryAccumulator), answered once, and finished with FIN or reset with a DoQ error code; a
// unidirectional stream or broken framing is a protocol error for the whole connection (RFC 9250 §4.3.3); a query
// not complete within the read deadline has its stream reset. Memory is bounded by the stream credit the server
// grants (initialMaxStreamsBidi) times one framed message, in both directions.

import type { Clock } from '../../time/clock.js';
import { DoqErrorCode, MAX_FRAMED_MESSAGE, QueryAccumulator, type FramingError } from './framing.js';

/** quiche's stream calls, as @matrixai/quic's native Connection exposes them (its native/types.d.ts). */
export interface QuicheStreams {
  /** Every stream with something to read (data, FIN or a reset). Costly: ~9 µs to build, ~9 µs to iterate here. */
  readable(): Iterable<number>;
  /** Whether one stream has something to read; false for a stream that does not exist (yet). Cheap. */
  streamReadable(streamId: number): boolean;
  /** Bytes read and FIN, or null when nothing is buffered; throws "StreamReset(code)" once the peer reset it. */
  streamRecv(streamId: number, into: Uint8Array): [number, boolean] | null;
  /** Bytes taken (fewer than offered when flow control is short), or null when none fit; throws once stopped. */
  streamSend(streamId: number, data: Uint8Array, fin: boolean): number | null;
  streamShutdown(streamId: number, direction: Shutdown, code: number): void | null;
}

/** quiche's Shutdown directions (native/types.d.ts: Read = 0, Write = 1). */
export const Shutdown = { Read: 0, Write: 1 } as const;
export type Shutdown = (typeof Shutdown)[keyof typeof Shutdown];

/** What the server does with one complete query: the framed reply to send with FIN, or the code to reset with. */
export type Answer = (query: Uint8Array) => Uint8Array | DoqErrorCode;

export interface QueryStreamsOptions {
  answer: Answer;
  /** The peer broke RFC 9250: the connection must close with DOQ_PROTOCOL_ERROR (the caller does it, later). */
  protocolError: (why: string) => void;
  /** A new query stream appeared: the connection's idle deadline re-arms. */
  onStream: () => void;
  /** Sends what a timer-driven reset queued (outside recv(), nothing else would). */
  flush: () => void;
  clock: Clock;
  /** A stream whose query has not fully arrived by then is reset with DOQ_PROTOCOL_ERROR. */
  readTimeoutMs: number;
}

/** One stream read with: a query is one framed message, so this holds any legal query whole. */
const readChunk = new Uint8Array(MAX_FRAMED_MESSAGE);

/** RFC 9000 §2.1: the two low bits of a stream ID; 0b00 is a client-initiated bidirectional stream. */
const STREAM_TYPE_BITS = 0b11;
const CLIENT_BIDI = 0b00;
/** RFC 9000 §2.1: stream IDs of one type are 4 apart. */
const NEXT_ID = 4;
/**
 * Datagrams between full scans of quiche's readable streams while probing keeps finding streams (see process()):
 * bounds how long a stream hidden behind the probe waits, at ~1 µs per datagram for the scan's cost spread out.
 */
const FULL_SCAN_EVERY = 16;

export const framingMessages: Record<FramingError, string> = {
  'too-long': 'more than one length-prefixed message on the stream',
  truncated: 'stream ended before the announced message length',
  'too-short': 'message shorter than a DNS header',
  'nonzero-id': 'query message ID is not 0',
};

/** The query streams of one connection. `process()` runs where the library would run its processStreams(). */
export class QueryStreams {
  /** Streams whose query is still arriving, with their read deadline. */
  readonly #open = new Map<number, { query: QueryAccumulator; timer: unknown }>();
  /** Replies the peer's flow control has not yet let through. */
  readonly #unsent = new Map<number, Uint8Array>();
  #closed = false;
  /** The lowest client bidirectional stream ID above every one seen: where the next query most likely arrives. */
  #nextBidi = 0;
  /** Datagrams since the last full scan. */
  #sinceScan = 0;

  constructor(
    private readonly conn: QuicheStreams,
    private readonly options: QueryStreamsOptions,
  ) {}

  /**
   * Reads the streams this datagram made readable, answers every complete query, and continues replies waiting
   * for credit. Never throws.
   *
   * quiche's readable() costs ~18 µs per call here (its binding builds an iterator object each time), more than
   * answering a query, so it is not asked for every datagram. Clients open streams in order (IDs 0, 4, 8, ...),
   * so a probe of the streams still arriving and of the next ID finds what a datagram brought; the full scan runs
   * when the probe finds nothing (an out-of-order or skipped ID, a reset, a unidirectional stream), and every
   * FULL_SCAN_EVERY datagrams. A stream the probe missed is therefore found at the latest by the next datagram
   * without a new in-order stream, such as the ACK the peer owes for the reply just sent, or the 16th datagram.
   */
  process(): void {
    if (this.#closed) return;
    let found = false;
    for (const id of this.#open.keys()) {
      if (!this.conn.streamReadable(id)) continue;
      found = true;
      this.#read(id);
    }
    while (this.conn.streamReadable(this.#nextBidi)) {
      found = true;
      const id = this.#nextBidi;
      this.#nextBidi = id + NEXT_ID;
      this.#read(id);
    }
    if (!found || ++this.#sinceScan >= FULL_SCAN_EVERY) {
      this.#sinceScan = 0;
      for (const id of this.conn.readable()) this.#read(id);
    }
    for (const [id, rest] of this.#unsent) this.#send(id, rest);
  }

  /** Drops every stream's state and timer: the connection is gone. */
  close(): void {
    this.#closed = true;
    for (const { timer } of this.#open.values()) if (timer !== undefined) this.options.clock.clearTimeout(timer);
    this.#open.clear();
    this.#unsent.clear();
  }

  #read(id: number): void {
    if ((id & STREAM_TYPE_BITS) !== CLIENT_BIDI) {
      // Only a client's unidirectional stream can be readable here: the server opens none.
      this.#reset(id, DoqErrorCode.ProtocolError);
      this.options.protocolError('client opened a unidirectional stream');
      return;
    }
    // quiche reports a stream readable again after its FIN only to deliver a reset (streamRecv throws), and
    // drops bytes beyond a FIN itself (FINAL_SIZE_ERROR): a stream not in #open is a new query stream.
    let open = this.#open.get(id);
    for (;;) {
      let got: [number, boolean] | null;
      try {
        got = this.conn.streamRecv(id, readChunk);
      } catch {
        // The peer reset the stream (or it is otherwise gone): forget it; quiche has dropped its bytes.
        this.#forget(id);
        return;
      }
      if (got === null) break;
      if (open === undefined) {
        if (id >= this.#nextBidi) this.#nextBidi = id + NEXT_ID;
        open = { query: new QueryAccumulator(), timer: undefined };
        this.#open.set(id, open);
        this.options.onStream();
      }
      const [length, fin] = got;
      const error = open.query.push(readChunk.subarray(0, length));
      if (error === undefined && !fin) continue;
      this.#forget(id);
      const query = error ?? open.query.finish();
      if (typeof query === 'string') {
        this.#reset(id, DoqErrorCode.ProtocolError);
        this.options.protocolError(framingMessages[query]);
        return;
      }
      const reply = this.options.answer(query);
      if (typeof reply === 'number') this.#reset(id, reply);
      else this.#send(id, reply);
      return;
    }
    // The query is still arriving (rare: a query is one small message, usually in one packet with its FIN).
    if (open !== undefined && open.timer === undefined) {
      open.timer = this.options.clock.setTimeout(() => this.#expire(id), this.options.readTimeoutMs);
    }
  }

  #send(id: number, data: Uint8Array): void {
    let taken: number | null;
    try {
      taken = this.conn.streamSend(id, data, true);
    } catch {
      this.#unsent.delete(id); // the peer stopped the stream: it no longer wants the reply
      return;
    }
    if (taken !== null && taken >= data.byteLength) this.#unsent.delete(id);
    else this.#unsent.set(id, data.subarray(taken ?? 0));
  }

  #expire(id: number): void {
    if (this.#closed || !this.#open.has(id)) return;
    this.#forget(id);
    this.#reset(id, DoqErrorCode.ProtocolError);
    this.options.flush();
  }

  #forget(id: number): void {
    const open = this.#open.get(id);
    if (open === undefined) return;
    if (open.timer !== undefined) this.options.clock.clearTimeout(open.timer);
    this.#open.delete(id);
  }

  /** Resets both directions with `code` (RESET_STREAM and STOP_SENDING); a stream already gone is no error. */
  #reset(id: number, code: DoqErrorCode): void {
    this.#unsent.delete(id);
    for (const direction of [Shutdown.Read, Shutdown.Write]) {
      try {
        this.conn.streamShutdown(id, direction, code);
      } catch {
        // Already finished or reset in that direction.
      }
    }
  }
}
