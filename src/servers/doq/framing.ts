// RFC 9250 message framing: one DNS message per stream direction, preceded by
// its length as a 2-byte big-endian integer. Pure; no QUIC here.
import { FrameReader } from '../dns/index.js';
import { MAX_DNS_MESSAGE } from '../../dns/index.js';

/** DoQ application error codes (RFC 9250 §4.3), used in CONNECTION_CLOSE and RESET_STREAM. */
export const DoqErrorCode = {
  /** No error; used when closing a connection or stream normally. */
  NoError: 0x0,
  /** The endpoint could not do what the peer asked for a reason of its own. */
  InternalError: 0x1,
  /** The peer broke RFC 9250 (non-zero message ID, bad framing, unidirectional stream, ...). */
  ProtocolError: 0x2,
  /** The transaction was cancelled (the server chose not to answer it). */
  RequestCancelled: 0x3,
} as const;
export type DoqErrorCode = (typeof DoqErrorCode)[keyof typeof DoqErrorCode];

/** The most a well-behaved client sends on one stream: the length prefix and one message. */
export const MAX_FRAMED_MESSAGE = 2 + MAX_DNS_MESSAGE;
/** A DNS header is 12 bytes; anything shorter is not a query. */
const DNS_HEADER_LENGTH = 12;

/** Why a stream's bytes are not one acceptable DoQ query. */
export type FramingError =
  | 'too-long' // more bytes than the prefix announced
  | 'truncated' // FIN before the announced length arrived
  | 'too-short' // shorter than a DNS header
  | 'nonzero-id'; // RFC 9250 §4.2.1: the message ID MUST be 0

/**
 * Reads one stream's bytes as exactly one length-prefixed message (RFC 9250 §4.2), with the framing shared with
 * TCP and DoT (dns/stream.ts). Bounded: it never holds more than MAX_FRAMED_MESSAGE bytes, and it reports an error
 * as soon as the bytes cannot be a single message (a byte after the first message is one too many).
 */
export class QueryAccumulator {
  readonly #reader = new FrameReader();
  #message: Uint8Array | undefined;

  /** Adds a chunk; returns an error as soon as the stream is known to be bad. */
  push(chunk: Uint8Array): FramingError | undefined {
    if (this.#message !== undefined) return chunk.byteLength > 0 ? 'too-long' : undefined;
    let extra = false;
    this.#reader.push(chunk, (msg) => {
      if (this.#message !== undefined) {
        extra = true;
        return false;
      }
      this.#message = Uint8Array.from(msg); // the view is valid only during the call
      return true;
    });
    if (extra || (this.#message !== undefined && this.#reader.pendingBytes > 0)) return 'too-long';
    return undefined;
  }

  /** Called at FIN: the complete query message (without its prefix), or why there is none. */
  finish(): Uint8Array | FramingError {
    if (this.#message === undefined) return 'truncated';
    return checkQuery(this.#message) ?? this.#message;
  }
}

/** Checks what RFC 9250 requires of a query's bytes beyond framing. */
export function checkQuery(message: Uint8Array): FramingError | undefined {
  if (message.byteLength < DNS_HEADER_LENGTH) return 'too-short';
  if (message[0] !== 0 || message[1] !== 0) return 'nonzero-id';
  return undefined;
}
