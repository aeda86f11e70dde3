// A UDP flooder for the DoQ attack test (test/doq/flood.test.ts) and its measurements: a child process that sends
// datagrams from one loopback address at a set rate for a set time, batched with sendmmsg through lexa's own addon
// (native/udp_batch.c), so that 100,000 datagrams a second cost the flooder a fraction of a core, not the test's
// process (where lexa runs) anything. Run as a script it floods; imported, `flood` starts that script and resolves
// with how many datagrams the kernel took.

import { fork } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadBatchAddon } from '../../src/servers/dns/udp-batch.js';
import { writeAddress } from '../../src/servers/dns/rate-limit.js';

/**
 * `junk`: random bytes of random sizes (1–1200). `initial`: what a new client's first datagram looks like, 1200
 * bytes (RFC 9000 §14.1's minimum): a version 1 Initial with random 8-byte connection IDs, no token, a random
 * payload (it cannot decrypt, but nothing can tell before trying).
 */
export type FloodKind = 'junk' | 'initial';

export interface FloodOptions {
  readonly kind: FloodKind;
  /** Where to: lexa's DoQ port on 127.0.0.1. */
  readonly port: number;
  /** Datagrams per second. */
  readonly rate: number;
  readonly seconds: number;
  /** The source address (a loopback one other than the good client's). */
  readonly from?: string;
}

/** Datagrams per sendmmsg, and the slot size: an Initial is 1200 bytes. */
const BATCH = 64;
const SLOT = 2048;
/** How often the flooder wakes to send what is due; a larger burst only follows a stall of its own process. */
const TICK_MS = 1;
const INITIAL_SIZE = 1200;

/** A flood under way in its child process. */
export interface Flood {
  /** Resolves once the first datagrams are sent (the child takes a while to start: wait for this, not a delay). */
  readonly started: Promise<void>;
  /** Resolves once the flood is over, with how many datagrams the kernel took. */
  readonly done: Promise<{ sent: number }>;
}

/** Starts a flood in a child process. */
export function flood(options: FloodOptions): Flood {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const done = new Promise<{ sent: number }>((resolve, fail) => {
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as { sent: number }) : fail(new Error(`udp-flood exited ${code}: ${out}`))));
  });
  const started = new Promise<void>((resolve, fail) => {
    child.once('message', () => resolve());
    done.then(() => fail(new Error('udp-flood ended before it started')), fail);
  });
  started.catch(() => {}); // a caller awaiting only `done` hears of the failure there
  return { started, done };
}

/**
 * Random bytes made once and drawn from at a moving offset: filling every datagram from the CSPRNG cost the
 * flooder more CPU than sending it (it reached ~80,000 a second instead of 100,000).
 */
const POOL = randomFillSync(new Uint8Array(1 << 20));
let drawn = 0;
function draw(size: number): Uint8Array {
  const bytes = POOL.subarray(drawn, drawn + size);
  // A prime stride, so that consecutive datagrams share no bytes at the same offsets; never within the last
  // datagram's size of the end, so that every draw (and the junk's size, read at `drawn`) is inside the pool.
  drawn = (drawn + size + 7919) % (POOL.byteLength - INITIAL_SIZE);
  return bytes;
}

/** Writes the next datagram of the flood into `slot`; returns its size. */
function fill(kind: FloodKind, slot: Uint8Array): number {
  if (kind === 'junk') {
    const size = 1 + (POOL[drawn]! | (POOL[drawn + 1]! << 8)) % INITIAL_SIZE;
    slot.set(draw(size));
    return size;
  }
  slot.set(draw(INITIAL_SIZE));
  return writeInitial(slot, INITIAL_SIZE);
}

/**
 * Makes `bytes` (random already) a version 1 Initial of `size` bytes: 4-byte packet number, 8-byte destination and
 * source IDs (the random bytes where they fall), no token, the Length field covering the rest. Returns `size`.
 */
function writeInitial(bytes: Uint8Array, size: number): number {
  bytes.set([0xc3, 0, 0, 0, 1, 8]);
  bytes[14] = 8;
  bytes[23] = 0;
  const length = size - 26;
  bytes[24] = 0x40 | (length >> 8);
  bytes[25] = length & 0xff;
  return size;
}

/** One client Initial of `size` bytes (at least 64) with random connection IDs and payload, as the flood sends them. */
export function quicInitial(size = INITIAL_SIZE): Uint8Array {
  const bytes = randomFillSync(new Uint8Array(size));
  writeInitial(bytes, size);
  return bytes;
}

function run({ kind, port, rate, seconds, from = '127.0.0.2' }: FloodOptions): void {
  const addon = loadBatchAddon();
  if (addon instanceof Error || typeof addon.send !== 'function') throw new Error('udp-flood needs the udp_batch addon (node scripts/build-native.mjs)');
  const sock = addon.open(from, 0, false, BATCH, SLOT, () => {}, 0);
  const { destinations, destinationPorts, sendLengths } = sock;
  if (!destinations || !destinationPorts || !sendLengths) throw new Error('udp-flood: the addon predates its send queue');
  for (let i = 0; i < BATCH; i++) {
    writeAddress('127.0.0.1', destinations, i * 16);
    destinationPorts[i] = port;
  }
  let sent = 0;
  let attempted = 0;
  const start = performance.now();
  const tick = () => {
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= seconds) {
      addon.close(sock.handle);
      process.stdout.write(JSON.stringify({ sent, attempted }));
      return;
    }
    const before = attempted;
    let due = Math.floor(rate * elapsed) - attempted;
    while (due > 0) {
      const count = Math.min(BATCH, due);
      for (let i = 0; i < count; i++) sendLengths[i] = fill(kind, sock.output.subarray(i * SLOT, (i + 1) * SLOT));
      sent += addon.send!(sock.handle, count);
      attempted += count;
      due -= count;
    }
    if (before === 0 && attempted > 0) process.send?.('started');
    setTimeout(tick, TICK_MS);
  };
  tick();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) run(JSON.parse(process.argv[2]!) as FloodOptions);
