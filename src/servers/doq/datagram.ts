// Which datagrams reaching the DoQ socket are worth the QUIC library's time, decided from their first bytes before
// anything is queued, paused for or handed to the library (quic.ts): a pure function of the bytes and of whether a
// connection ID is ours. Everything it drops would have been dropped by the library or quiche too, only later and
// at a higher cost (quiche's header parse allocates an object of buffers; an Initial for no connection is answered
// with a signed Retry), and while it waited in the socket's backlog it took a slot a real client needed.

/** RFC 9000 §17.2: the header form bit (1: long header). */
const LONG_HEADER = 0x80;
/** RFC 9000 §17.2, §17.3: the fixed bit, 1 in every QUIC version 1 packet; 0 means it is not QUIC v1. */
const FIXED_BIT = 0x40;
/** RFC 9000 §17.2: the long header's type, bits 5–4 of the first byte. */
const TYPE_SHIFT = 4;
const TYPE_MASK = 0x03;
/** RFC 9000 §17.2: long-header packet types of QUIC version 1. */
const enum LongType {
  Initial = 0,
  ZeroRtt = 1,
  Handshake = 2,
  Retry = 3,
}
/** RFC 9000 §15: the one version lexa's QUIC speaks; 0 marks a Version Negotiation packet (§17.2.1). */
const QUIC_V1 = 0x00000001;
const VERSION_NEGOTIATION = 0;
/** RFC 9000 §17.2: a version 1 connection ID is at most 20 bytes; RFC 8999 §5.1 lets other versions use up to 255. */
const MAX_V1_CONNECTION_ID = 20;
/** The first byte, the version and the two connection ID length bytes of a long header (RFC 8999 §5.1). */
const LONG_HEADER_FIXED_BYTES = 7;
/**
 * RFC 9001 §5.4.2: header protection samples 16 bytes starting 4 bytes after the packet number's start, so a
 * packet carries at least 20 bytes from there; one that does not cannot be decrypted.
 */
const MIN_PROTECTED_BYTES = 20;
/**
 * RFC 9000 §14.1: a server MUST discard an Initial carried in a UDP datagram smaller than 1200 bytes, and §5.2.2: it
 * must drop smaller packets of versions it does not speak rather than answer them. So an attacker cannot make the
 * server answer (a Retry, a Version Negotiation) with more bytes than it sent from a spoofed address.
 */
export const MIN_INITIAL_DATAGRAM = 1200;
/**
 * The connection IDs lexa's server hands out: @matrixai/quic gives every server connection an ID of quiche's
 * maximum length (quic.ts checks the two agree), so a 1-RTT packet's destination ID is always this long.
 */
export const SERVER_CONNECTION_ID_LENGTH = 20;

/** Why a datagram was dropped before the library saw it: the `reason` label of lexa_doq_datagrams_dropped_total. */
export type DropReason =
  /** Shorter than any QUIC packet it could be: no room for its header, or too short to decrypt. */
  | 'too-short'
  /** Its lengths disagree with its size: a connection ID over 20 bytes, a token or payload past its end. */
  | 'malformed'
  /** The fixed bit is clear (RFC 9000 §17): not a QUIC version 1 packet. */
  | 'fixed-bit'
  /** A type a client never sends a server (a Retry, a Version Negotiation packet), or another version's non-Initial. */
  | 'unexpected-type'
  /** An Initial (or a packet of a version lexa does not speak) in a datagram under 1200 bytes (RFC 9000 §14.1). */
  | 'small-initial'
  /** A packet other than an Initial whose destination connection ID is no connection of this server. */
  | 'unknown-connection';

/**
 * What a datagram is for: `connection`, a connection this server holds (the library routes it to it); `new`, a
 * possible new connection (an Initial the library answers with a Retry or a handshake, or a packet of another
 * version it answers with Version Negotiation); otherwise why it is dropped.
 */
export type Verdict = 'connection' | 'new' | DropReason;

/**
 * Classifies one UDP datagram by its first packet (RFC 9000 §12.2: coalesced packets share the first one's
 * connection). `knownConnection` says whether a destination connection ID (a view into `bytes`) is one of this
 * server's connections. Reads at most the header; never throws.
 */
export function classifyDatagram(bytes: Uint8Array, knownConnection: (id: Uint8Array) => boolean): Verdict {
  const first = bytes[0];
  if (first === undefined) return 'too-short';
  if ((first & LONG_HEADER) === 0) return shortHeader(bytes, first, knownConnection);
  if (bytes.byteLength < LONG_HEADER_FIXED_BYTES) return 'too-short';
  const version = readUint32(bytes, 1);
  if (version === VERSION_NEGOTIATION) return 'unexpected-type';
  const maxId = version === QUIC_V1 ? MAX_V1_CONNECTION_ID : 255;
  const dcidLength = bytes[5]!;
  if (dcidLength > maxId) return 'malformed';
  const dcidEnd = 6 + dcidLength;
  const scidLength = bytes[dcidEnd];
  if (scidLength === undefined) return 'too-short';
  if (scidLength > maxId) return 'malformed';
  const headerEnd = dcidEnd + 1 + scidLength;
  if (headerEnd > bytes.byteLength) return 'too-short';
  const type = (first >> TYPE_SHIFT) & TYPE_MASK;
  // Past the connection IDs the header is version-specific (RFC 8999 §5.1): another version can only be answered
  // with Version Negotiation, which the library sends to what would be an Initial or 0-RTT packet in version 1, and
  // only to a datagram large enough to start a connection.
  if (version !== QUIC_V1) {
    if (type !== LongType.Initial && type !== LongType.ZeroRtt) return 'unexpected-type';
    return bytes.byteLength < MIN_INITIAL_DATAGRAM ? 'small-initial' : 'new';
  }
  if ((first & FIXED_BIT) === 0) return 'fixed-bit';
  if (type === LongType.Retry) return 'unexpected-type';
  let at = headerEnd;
  if (type === LongType.Initial) {
    if (bytes.byteLength < MIN_INITIAL_DATAGRAM) return 'small-initial';
    const token = readVarint(bytes, at);
    if (token === undefined) return 'too-short';
    at = token.end + token.value;
    if (at >= bytes.byteLength) return 'malformed';
  }
  const length = readVarint(bytes, at);
  if (length === undefined) return 'too-short';
  if (length.value < MIN_PROTECTED_BYTES || length.end + length.value > bytes.byteLength) return 'malformed';
  if (knownConnection(bytes.subarray(6, dcidEnd))) return 'connection';
  // A Handshake or 0-RTT packet needs a connection to belong to (lexa accepts no 0-RTT data: server.ts).
  return type === LongType.Initial ? 'new' : 'unknown-connection';
}

/** RFC 9000 §17.3: a 1-RTT packet; its destination connection ID has the length this server gave it. */
function shortHeader(bytes: Uint8Array, first: number, knownConnection: (id: Uint8Array) => boolean): Verdict {
  if ((first & FIXED_BIT) === 0) return 'fixed-bit';
  const packetNumberAt = 1 + SERVER_CONNECTION_ID_LENGTH;
  if (bytes.byteLength < packetNumberAt + MIN_PROTECTED_BYTES) return 'too-short';
  return knownConnection(bytes.subarray(1, packetNumberAt)) ? 'connection' : 'unknown-connection';
}

function readUint32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** RFC 9000 §16: a variable-length integer at `at`: its value and where it ends, or undefined past the end. */
function readVarint(bytes: Uint8Array, at: number): { value: number; end: number } | undefined {
  const first = bytes[at];
  if (first === undefined) return undefined;
  const size = 1 << (first >> 6);
  if (at + size > bytes.byteLength) return undefined;
  let value = first & 0x3f;
  // Multiplication, not shifts: an 8-byte varint exceeds 32 bits (any such length is past the datagram anyway).
  for (let i = 1; i < size; i++) value = value * 256 + bytes[at + i]!;
  return { value, end: at + size };
}
