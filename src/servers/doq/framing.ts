// RFC 9250 message framing: one DNS message per stream direction, preceded by
// its length as a 2-byte big-endian integer. Pure functions; no QUIC here.

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

/** A DNS message is at most 65535 bytes (the 2-byte length field's range). */
export const MAX_DNS_MESSAGE = 0xffff;
/** The most a well-behaved client sends on one stream: the length prefix and one message. */
export const MAX_FRAMED_MESSAGE = 2 + MAX_DNS_MESSAGE;
/** A DNS header is 12 bytes; anything shorter is not a query. */
const DNS_HEADER_LENGTH = 12;

/** Why a stream's bytes are not one acceptable DoQ query. */
export type FramingError =
  | 'too-long' // more bytes than the prefix announced or than any DNS message can have
  | 'truncated' // FIN before the announced length arrived
  | 'too-short' // shorter than a DNS header
  | 'nonzero-id'; // RFC 9250 §4.2.1: the message ID MUST be 0

/**
 * Accumulates one stream's bytes, bounded: it never holds more than
 * MAX_FRAMED_MESSAGE bytes, and it reports a framing error as soon as the
 * bytes cannot be a single length-prefixed message.
 */
export class QueryAccumulator {
  private readonly chunks: Uint8Array[] = [];
  private received = 0;
  private announced = -1;

  /** Adds a chunk; returns an error as soon as the stream is known to be bad. */
  push(chunk: Uint8Array): FramingError | undefined {
    this.received += chunk.byteLength;
    if (this.received > MAX_FRAMED_MESSAGE) return 'too-long';
    this.chunks.push(chunk);
    if (this.announced < 0 && this.received >= 2) {
      const head = this.chunks.length === 1 ? chunk : concat(this.chunks, 2);
      this.announced = (head[0]! << 8) | head[1]!;
    }
    if (this.announced >= 0 && this.received > 2 + this.announced) return 'too-long';
    return undefined;
  }

  /** Called at FIN: the complete query message (without its prefix), or why there is none. */
  finish(): Uint8Array | FramingError {
    if (this.announced < 0 || this.received < 2 + this.announced) return 'truncated';
    const message = concat(this.chunks, this.received).subarray(2);
    return checkQuery(message) ?? message;
  }
}

/** Checks what RFC 9250 requires of a query's bytes beyond framing. */
export function checkQuery(message: Uint8Array): FramingError | undefined {
  if (message.byteLength < DNS_HEADER_LENGTH) return 'too-short';
  if (message[0] !== 0 || message[1] !== 0) return 'nonzero-id';
  return undefined;
}

/** Prefixes a message with its 2-byte length; undefined if it is too long to frame. */
export function frame(message: Uint8Array): Uint8Array | undefined {
  if (message.byteLength > MAX_DNS_MESSAGE) return undefined;
  const framed = new Uint8Array(2 + message.byteLength);
  framed[0] = message.byteLength >> 8;
  framed[1] = message.byteLength & 0xff;
  framed.set(message, 2);
  return framed;
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.byteLength === length) return chunks[0]!;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, length - offset);
    out.set(part, offset);
    offset += part.byteLength;
    if (offset === length) break;
  }
  return out;
}
