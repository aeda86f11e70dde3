import { fileURLToPath } from 'node:url';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import type { BoundListener } from '../listen.js';
import { loadAddon } from '../native-addon.js';
import type { HandleQuery } from '../../dns/handler.js';
import { ADDRESS_BYTES, limited, type ResponseRateLimiter } from './rate-limit.js';
import type { ReplyLimit } from '../../dns/wire.js';

/**
 * The batched UDP path: native/udp_batch.c takes up to BATCH queries with one recvmmsg(2), calls back once, and
 * sends the replies with one sendmmsg(2). Node's dgram pays a syscall, a JS callback, a Buffer and a send request
 * per packet; here those costs are shared by a batch. The addon is built from source at install
 * (scripts/build-native.mjs) where a C compiler and Node's headers exist; without it, udp.ts uses dgram.
 */

/**
 * Queries taken per recvmmsg. 64 fills a batch at a few hundred thousand queries per second and costs 2 × 64
 * slots of memory per socket; more only helps when the callback itself is slower than the kernel.
 */
const BATCH = 64;
/** Slot size floor: a query with EDNS options is still far below 4096 bytes; a larger datagram is dropped. */
const MIN_SLOT = 4096;

/** One socket of the addon (native/udp_batch.c documents the contract). */
export interface BatchSocket {
  readonly port: number;
  readonly input: Uint8Array;
  readonly inputLengths: Int32Array;
  readonly output: Uint8Array;
  readonly outputLengths: Int32Array;
  /** Each query's source address, ADDRESS_BYTES per slot (IPv4 as IPv4-mapped IPv6). */
  readonly sources: Uint8Array;
  /** SO_RCVBUF as the kernel reports it after open (absent from an addon built before it was asked for). */
  readonly receiveBuffer?: number;
  /**
   * The send queue (send()) and each datagram's source port: absent from an addon built before the QUIC path
   * asked for them (batch-socket.ts then falls back to dgram).
   */
  readonly sourcePorts?: Int32Array;
  /** Per output slot, the 16-byte address (IPv4 as IPv4-mapped IPv6) send() sends it to. */
  readonly destinations?: Uint8Array;
  readonly destinationPorts?: Int32Array;
  /** Per output slot, the size send() sends; outputLengths is onBatch's and is not read by send(). */
  readonly sendLengths?: Int32Array;
  readonly handle: object;
}

export interface BatchAddon {
  /**
   * `receiveBuffer` > 0 sets SO_RCVBUF (SO_RCVBUFFORCE where permitted); 0 keeps the kernel's default.
   * `dualStack`: an IPv6 socket also takes IPv4 (default: IPv6-only).
   */
  open(
    host: string,
    port: number,
    ipv6: boolean,
    batch: number,
    slot: number,
    onBatch: (count: number) => void,
    receiveBuffer: number,
    dualStack?: boolean,
  ): BatchSocket;
  close(handle: object): void;
  /** Sends output slots 0..count-1 to their destinations; returns how many the kernel took. Absent from older builds. */
  send?(handle: object, count: number): number;
}

/** The addon was built from an older udp_batch.c that does not report source addresses (rate limiting needs them). */
export class AddonWithoutSources extends Error {
  constructor() {
    super('the udp_batch addon predates rate limiting; rebuild it (node scripts/build-native.mjs)');
  }
}

/** Where install puts the addon: <package>/native/build, from src/servers/dns or dist/servers/dns alike. */
export const ADDON_PATH = fileURLToPath(new URL('../../../native/build/udp_batch.node', import.meta.url));

/** The addon at `path`, or the reason it cannot be used (not built, wrong platform, wrong ABI). Loaded once. */
export function loadBatchAddon(path: string = ADDON_PATH): BatchAddon | Error {
  return loadAddon<BatchAddon>(path, 'udp_batch', ['open', 'close']);
}

/**
 * One batched UDP socket on `bind`: the same contract as the dgram path (each datagram one query, answered
 * synchronously with `limit`, rate-limited by `rrl` when given), IPv6 sockets IPv6-only. Rejects like a bind
 * does (EADDRINUSE...). `receiveBuffer` (bytes, 0: the kernel's default) is the socket's SO_RCVBUF; the listener
 * reports what the kernel granted.
 */
export function openBatchUdp(
  addon: BatchAddon,
  bind: Bind,
  handle: HandleQuery,
  limit: ReplyLimit,
  log: Logger,
  rrl: ResponseRateLimiter | null = null,
  receiveBuffer = 0,
): BoundListener & { readonly receiveBuffer: number | undefined } {
  const slot = Math.max(MIN_SLOT, limit.kind === 'datagram' ? limit.max : MIN_SLOT);
  let sock: BatchSocket | undefined;
  const onBatch = (count: number): void => {
    const s = sock!;
    for (let i = 0; i < count; i++) {
      const len = s.inputLengths[i]!;
      if (len <= 0) continue; // truncated on receipt (larger than a slot): dropped
      const off = i * slot;
      let reply: Uint8Array | null;
      try {
        const query = s.input.subarray(off, off + len);
        reply = rrl === null ? handle(query, limit) : limited(rrl, s.sources, i * ADDRESS_BYTES, query, handle, limit);
      } catch (err) {
        // The handler promises never to throw; if it does, this query goes unanswered, not the whole batch.
        log.warn('dns/udp: handler threw', { error: err instanceof Error ? err.message : String(err) });
        continue;
      }
      if (reply === null || reply.length > slot) continue;
      s.output.set(reply, off);
      s.outputLengths[i] = reply.length;
    }
  };
  sock = addon.open(bind.host, bind.port, bind.host.includes(':'), BATCH, slot, onBatch, receiveBuffer);
  if (rrl !== null && !(sock.sources instanceof Uint8Array)) {
    // Built before sources were exposed: rate limiting could not see who asks, so this socket must not serve.
    addon.close(sock.handle);
    throw new AddonWithoutSources();
  }
  let closed = false;
  return {
    port: sock.port,
    receiveBuffer: sock.receiveBuffer,
    close: async () => {
      if (closed) return;
      closed = true;
      addon.close(sock!.handle);
    },
  };
}
