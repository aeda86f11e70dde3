// Drives native/udp_batch.c, built with AddressSanitizer (scripts/build-native.mjs --asan), through every entry
// point with the inputs a hostile peer or a careless caller could produce, for test/native/udp-batch-asan.test.ts.
// Plain JavaScript, run as `node --expose-gc asan-driver.mjs <addon>` with libasan preloaded: ASan reports any
// out-of-bounds access, use after free or double free on stderr and exits non-zero. Prints one JSON line of counts
// at the end, which the test checks, so a driver that stopped early cannot pass.
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';

const addon = createRequire(import.meta.url)(process.argv[2]);
const counts = { replies: 0, queued: 0, received: 0, refused: 0, batches: 0, emptyOrOversize: 0 };
const BATCH = 8;
const SLOT = 1024;

/** Resolves once `predicate` holds, or after `ms` (a bounded wait: the counts then show what was missing). */
async function until(predicate, ms = 3000) {
  for (let waited = 0; !predicate() && waited < ms; waited += 10) await sleep(10);
}

function client(type = 'udp4') {
  const c = dgram.createSocket(type);
  c.on('message', () => counts.received++);
  return new Promise((resolve) => c.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => resolve(c)));
}

// Bad arguments: each refused with an exception, nothing opened.
for (const args of [
  [],
  ['127.0.0.1', 0, false, 0, SLOT, () => {}],
  ['127.0.0.1', 0, false, 2000, SLOT, () => {}],
  ['127.0.0.1', 0, false, BATCH, 100, () => {}],
  ['127.0.0.1', 70000, false, BATCH, SLOT, () => {}],
  ['not an address', 0, false, BATCH, SLOT, () => {}],
  ['x'.repeat(500), 0, false, BATCH, SLOT, () => {}],
]) {
  try {
    addon.open(...args);
  } catch {
    counts.refused++;
  }
}

// The DNS shape: each datagram answered in its own output slot, some replies deliberately out of range.
let dns;
dns = addon.open('127.0.0.1', 0, false, BATCH, SLOT, (count) => {
  counts.batches++;
  for (let i = 0; i < count; i++) {
    const len = dns.inputLengths[i];
    if (len <= 0) {
      counts.emptyOrOversize++;
      continue;
    }
    const query = dns.input.subarray(i * SLOT, i * SLOT + len);
    const kind = query[0] ?? 0;
    // 0: echo; 1: a reply longer than a slot; 2: a negative length; 3: no reply; 4: a full slot.
    const reply = kind === 1 ? SLOT + 1 : kind === 2 ? -5 : kind === 3 ? 0 : kind === 4 ? SLOT : len;
    if (reply > 0 && reply <= SLOT) dns.output.fill(7, i * SLOT, i * SLOT + reply);
    dns.outputLengths[i] = reply;
    if (reply > 0 && reply <= SLOT) counts.replies++;
  }
});
const c4 = await client();
const burst = [];
for (let k = 0; k < 200; k++) burst.push(Buffer.from([k % 5, 1, 2, 3]));
burst.push(Buffer.alloc(0), Buffer.alloc(SLOT + 500, 0), Buffer.alloc(SLOT, 4));
for (const b of burst) c4.send(b, dns.port, '127.0.0.1');
await until(() => counts.received >= counts.replies && counts.batches > 0 && counts.replies >= 80);

// The QUIC shape: the send queue, with every field a caller could get wrong.
const quic = addon.open('::', 0, true, BATCH, SLOT, () => {}, 0, true);
const target = c4.address().port;
const mapped = (ip) => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...ip.split('.').map(Number)];
const slots = [
  { addr: mapped('127.0.0.1'), port: target, len: 100 },
  { addr: mapped('127.0.0.1'), port: 0, len: 100 },
  { addr: mapped('127.0.0.1'), port: 70000, len: 100 },
  { addr: mapped('127.0.0.1'), port: target, len: -1 },
  { addr: mapped('127.0.0.1'), port: target, len: SLOT + 1 },
  { addr: mapped('127.0.0.1'), port: target, len: SLOT },
  { addr: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], port: target, len: 10 }, // ::1, where nobody listens
  { addr: mapped('127.0.0.1'), port: target, len: 1 },
];
slots.forEach((s, i) => {
  quic.destinations.set(s.addr, i * 16);
  quic.destinationPorts[i] = s.port;
  quic.sendLengths[i] = s.len;
  if (s.len > 0 && s.len <= SLOT) quic.output.fill(9, i * SLOT, i * SLOT + s.len);
});
const before = counts.received;
counts.queued += addon.send(quic.handle, BATCH);
for (const bad of [BATCH + 1, -1, 2 ** 32]) {
  try {
    addon.send(quic.handle, bad);
  } catch {
    counts.refused++;
  }
}
try {
  addon.send({}, 1);
} catch {
  counts.refused++;
}
await until(() => counts.received >= before + 3);

// An IPv4 socket asked to send to an IPv6 destination: skipped, not written.
const v4only = addon.open('127.0.0.1', 0, false, BATCH, SLOT, () => {});
v4only.destinations.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 0);
v4only.destinationPorts[0] = target;
v4only.sendLengths[0] = 10;
counts.queued += addon.send(v4only.handle, 1);

// Close: twice, then send on the closed socket; datagrams in flight to a closed socket; then the wrappers dropped
// and collected, so each socket's memory is freed by whichever owner lets go last.
addon.close(quic.handle);
addon.close(quic.handle);
counts.afterClose = addon.send(quic.handle, 1);
for (let k = 0; k < 20; k++) c4.send(Buffer.from([0, 1]), dns.port, '127.0.0.1');
addon.close(dns.handle);
addon.close(v4only.handle);
c4.close();
dns = undefined;
await sleep(100);
globalThis.gc?.();
await sleep(100);
globalThis.gc?.();
console.log(JSON.stringify(counts));
