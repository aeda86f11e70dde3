// The QUIC socket's datagrams in batches (PACKETS, quic.ts): native/udp_batch.c reads up to BATCH datagrams with
// one recvmmsg(2) and calls JavaScript once for all of them; the datagrams the connections write meanwhile are
// queued in the addon's output slots and leave together with one sendmmsg(2) on the next microtask, which runs
// before the addon's call returns, so the replies a batch produces go in one system call. Datagrams written outside
// a batch (a connection's timer: loss recovery, ACKs, closing) leave on the microtask after the timer's callback.
// Measured under the bench load (docs/performance.md, DoQ): 10 connections at once deliver ~27 datagrams per
// readable event, each of which cost dgram a recvmsg, a JS callback and a Buffer, and each reply a send request.

import { isIPv4, isIPv6 } from 'node:net';
import { ADDRESS_BYTES, writeAddress } from '../dns/rate-limit.js';
import { loadBatchAddon, type BatchAddon, type BatchSocket } from '../dns/udp-batch.js';

/**
 * Datagrams per recvmmsg and send queue slots. Under the bench load ~27 datagrams wait per readable event; 64
 * leaves room for bursts at 2 × 64 × SLOT bytes of memory per socket.
 */
const BATCH = 64;
/**
 * Bytes per slot. quiche advertises max_udp_payload_size 1350 (its MAX_DATAGRAM_SIZE, the library's default for
 * maxRecvUdpPayloadSize) and sends no larger; a peer's datagram larger than a slot breaks that limit and is
 * dropped unread (MSG_TRUNC), as quiche would drop it.
 */
export const QUIC_SLOT = 4096;

/** Receives one datagram in a Buffer of its own, as dgram's 'message' does. */
export type OnDatagram = (data: Buffer, host: string, port: number) => void;

/** Why the batched QUIC socket cannot be used (the caller falls back to dgram), or the addon with send(). */
export function quicBatchAddon(path?: string): (BatchAddon & Required<Pick<BatchAddon, 'send'>>) | Error {
  const addon = loadBatchAddon(path);
  if (addon instanceof Error) return addon;
  if (typeof addon.send !== 'function') return new Error('the udp_batch addon predates the QUIC send queue; rebuild it (node scripts/build-native.mjs)');
  return addon as BatchAddon & Required<Pick<BatchAddon, 'send'>>;
}

/**
 * One bound UDP socket whose datagrams arrive in batches and leave queued. Never throws after open: a datagram
 * that cannot be queued (an unparsable address, too large, the socket closed) is dropped and reported to
 * `onDrop`, as a lost datagram is for QUIC, whose loss recovery repairs it.
 */
export class QuicBatchSocket {
  readonly port: number;
  /** SO_RCVBUF as the kernel granted it (Linux reports twice what was set); undefined from an addon too old to say. */
  readonly receiveBuffer: number | undefined;
  private readonly sock: BatchSocket & Required<Pick<BatchSocket, 'sourcePorts' | 'destinations' | 'destinationPorts' | 'sendLengths'>>;
  private queued = 0;
  private flushScheduled = false;
  private closed = false;
  /** The last destination written, so that a run of datagrams to one peer parses its address once. */
  private lastHost = '';
  private readonly lastAddress = new Uint8Array(ADDRESS_BYTES);
  /** The last source formatted, for the same reason on the way in. */
  private lastSourceHost = '';
  private readonly lastSource = new Uint8Array(ADDRESS_BYTES);
  private readonly ipv6: boolean;

  /**
   * Binds `host`:`port` (an IP literal; IPv6 sockets also take IPv4, as the library's dgram socket does), with
   * SO_RCVBUF `receiveBuffer` bytes (0: the kernel's default). Throws as bind does.
   */
  constructor(
    private readonly addon: BatchAddon & Required<Pick<BatchAddon, 'send'>>,
    host: string,
    port: number,
    private readonly onDatagram: OnDatagram,
    private readonly onDrop: (why: Error) => void,
    receiveBuffer = 0,
  ) {
    if (!isIPv4(host) && !isIPv6(host)) throw new TypeError(`QuicBatchSocket: ${host} is not an IP address`);
    this.ipv6 = isIPv6(host);
    const sock = addon.open(host, port, this.ipv6, BATCH, QUIC_SLOT, (count) => this.deliver(count), receiveBuffer, true);
    if (!sock.sourcePorts || !sock.destinations || !sock.destinationPorts || !sock.sendLengths) {
      addon.close(sock.handle);
      throw new Error('the udp_batch addon predates the QUIC send queue');
    }
    this.sock = sock as QuicBatchSocket['sock'];
    this.port = sock.port;
    this.receiveBuffer = sock.receiveBuffer;
  }

  /**
   * Queues one datagram (the first `length` bytes of `data`) for `host`:`port`; it leaves on the next microtask,
   * or at once when the queue is full. `data` may be reused as soon as this returns.
   */
  send(data: Uint8Array, length: number, port: number, host: string): void {
    if (this.closed) return this.onDrop(new Error('doq: datagram queued on a closed socket'));
    if (!Number.isInteger(length) || length > QUIC_SLOT || length > data.byteLength || length <= 0) return this.onDrop(new Error(`doq: datagram of ${length} bytes does not fit a slot`));
    const i = this.queued;
    const s = this.sock;
    const at = i * ADDRESS_BYTES;
    if (host === this.lastHost) s.destinations.set(this.lastAddress, at);
    else if (typeof host === 'string' && writeAddress(host, s.destinations, at)) {
      this.lastHost = host;
      this.lastAddress.set(s.destinations.subarray(at, at + ADDRESS_BYTES));
    } else return this.onDrop(new Error(`doq: cannot send to ${host}`));
    s.output.set(length === data.byteLength ? data : data.subarray(0, length), i * QUIC_SLOT);
    s.sendLengths[i] = length;
    s.destinationPorts[i] = port;
    this.queued = i + 1;
    if (this.queued === BATCH) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Sends what is queued with one sendmmsg. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const count = this.queued;
    this.queued = 0;
    if (count > 0 && !this.closed) this.addon.send(this.sock.handle, count);
  };

  /** Stops receiving and closes the socket at once; what is still queued is dropped (QUIC is closing anyway). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued = 0;
    this.addon.close(this.sock.handle);
  }

  /** The addon's batch callback: hands each datagram to onDatagram with its source. */
  private deliver(count: number): void {
    const s = this.sock;
    for (let i = 0; i < count; i++) {
      const length = s.inputLengths[i]!;
      if (length <= 0) continue; // larger than a slot: dropped on receipt
      // A copy: the next batch rewrites the slot, and a connection's recv() may yield before quiche reads the bytes
      // (the library's recv lock, until packets.ts makes it a plain call). Handing out views of the slots lost
      // whole connections under the bench load (a later datagram decrypted in their place).
      const offset = i * QUIC_SLOT;
      const data = Buffer.allocUnsafe(length);
      data.set(s.input.subarray(offset, offset + length));
      try {
        this.onDatagram(data, this.sourceHost(i), s.sourcePorts[i]!);
      } catch (error) {
        // onDatagram promises never to throw; if it does, this datagram is lost, not the batch (nor the process:
        // an exception out of the addon's callback is fatal).
        this.onDrop(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  /** Source i as dgram would name it: dotted IPv4 on an IPv4 socket, RFC 5952 IPv6 (mapped IPv4 as ::ffff:a.b.c.d) on an IPv6 one. */
  private sourceHost(i: number): string {
    const sources = this.sock.sources;
    const at = i * ADDRESS_BYTES;
    let same = this.lastSourceHost !== '';
    for (let b = 0; same && b < ADDRESS_BYTES; b++) same = sources[at + b] === this.lastSource[b];
    if (same) return this.lastSourceHost;
    const bytes = sources.subarray(at, at + ADDRESS_BYTES);
    this.lastSource.set(bytes);
    this.lastSourceHost = formatAddress(bytes, this.ipv6);
    return this.lastSourceHost;
  }
}

/** 16 address bytes as text: see QuicBatchSocket.sourceHost. Exported for its unit test. */
export function formatAddress(bytes: Uint8Array, ipv6Socket: boolean): string {
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  const dotted = mapped ? `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}` : '';
  if (mapped && !ipv6Socket) return dotted;
  if (mapped) return `::ffff:${dotted}`;
  const groups: number[] = [];
  for (let g = 0; g < 8; g++) groups.push((bytes[2 * g]! << 8) | bytes[2 * g + 1]!);
  // RFC 5952 §4.2: the longest run of two or more zero groups (the first of equals) becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let g = 0; g < 8; ) {
    if (groups[g] !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && groups[end] === 0) end++;
    if (end - g > bestLength) [bestStart, bestLength] = [g, end - g];
    g = end;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((n) => n.toString(16)).join(':');
  return bestStart < 0 ? hex(0, 8) : `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}
