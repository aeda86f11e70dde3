import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { Notifier, NOTIFY_ATTEMPTS, NOTIFY_FIRST_RETRY_MS } from '../../src/replication/notify.js';
import { checkRequest, signMessage, type TsigKey } from '../../src/replication/tsig.js';
import { FakeClock } from '../helpers/fake-clock.js';

// NOTIFY's retry and acknowledgement rules against a scripted secondary on a real UDP socket (knot.test.ts
// runs the real knot): it ignores the first NOTIFY, then answers, as a secondary that lost a packet would.
// The retry schedule runs on a fake clock: the packets are real, the waiting between them is not.
const KEY: TsigKey = { name: 'lexa-xfr', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };

async function secondary(answer: (msg: Buffer, n: number) => Buffer | null) {
  const socket = dgram.createSocket('udp4');
  const seen: { msg: Buffer }[] = [];
  socket.on('message', (msg, rinfo) => {
    seen.push({ msg });
    const reply = answer(msg, seen.length);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, seen, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

/**
 * Resolves once `ready()` holds: a packet on loopback takes a few event-loop turns to arrive. Throws after
 * PACKET_WAIT_TURNS turns, so a packet that never comes fails the test instead of hanging it.
 */
async function until(ready: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < PACKET_WAIT_TURNS; i++) {
    if (ready()) return;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`never happened: ${what}`);
}
/** Ample for a loopback datagram and its reply (each turn sleeps at least 1 ms: about 2 s in all). */
const PACKET_WAIT_TURNS = 2_000;

/** The acknowledgement a secondary sends: the NOTIFY's header with QR set, and its question. */
function ack(msg: Buffer): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(out.readUInt16BE(2) | 0x8000, 2);
  return out;
}

t.test('NOTIFY is sent again until acknowledged, then not again', async (t) => {
  const s = await secondary((msg, n) => (n >= 2 ? ack(msg) : null));
  t.teardown(s.close);
  const clock = new FakeClock();
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], null, memoryLogger(), clock);
  t.teardown(() => notifier.close());
  notifier.notify('lexa', 42);
  await until(() => s.seen.length === 1, 'the first NOTIFY goes out at once');
  await clock.advance(NOTIFY_FIRST_RETRY_MS - 1);
  t.equal(clock.pending, 1, 'the retry waits for its time');
  t.equal(s.seen.length, 1, 'no retry before NOTIFY_FIRST_RETRY_MS');
  await clock.advance(1);
  await until(() => s.seen.length === 2, 'the retry after NOTIFY_FIRST_RETRY_MS');
  await until(() => clock.pending === 0, 'the acknowledgement cancels the next retry');
  await clock.advance(NOTIFY_FIRST_RETRY_MS * 2 ** NOTIFY_ATTEMPTS);
  t.equal(s.seen.length, 2, 'the first (ignored) and one retry, then no more after the acknowledgement');
  const m = s.seen[0]!.msg;
  t.equal((m.readUInt16BE(2) >> 11) & 0xf, 4, 'opcode NOTIFY');
  t.equal(m.readUInt16BE(2) & 0x0400, 0x0400, 'AA set');
  t.equal(m.readUInt16BE(0), s.seen[1]!.msg.readUInt16BE(0), 'a retry keeps the ID');
});

t.test('with a key, NOTIFY is signed and only an acknowledgement signed with the key counts', async (t) => {
  const s = await secondary((msg, n) => {
    const check = checkRequest(msg, [KEY], Math.floor(Date.now() / 1000));
    if (check.kind !== 'ok') return null;
    const reply = ack(check.stripped);
    // First an unsigned acknowledgement (must not count), then a properly signed one.
    return n === 1 ? reply : signMessage(reply, KEY, { requestMac: check.mac, timeSigned: Math.floor(Date.now() / 1000) }).message;
  });
  t.teardown(s.close);
  const clock = new FakeClock(Date.now());
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], KEY, memoryLogger(), clock);
  t.teardown(() => notifier.close());
  notifier.notify('0.99.10.in-addr.arpa', 7);
  await until(() => s.seen.length === 1, 'the first NOTIFY');
  await clock.advance(NOTIFY_FIRST_RETRY_MS);
  await until(() => s.seen.length === 2 && clock.pending === 0, 'the retry, acknowledged with the key');
  await clock.advance(NOTIFY_FIRST_RETRY_MS * 2 ** NOTIFY_ATTEMPTS);
  t.equal(s.seen.length, 2, 'an unsigned acknowledgement is ignored; the signed one ends it');
  t.equal(checkRequest(s.seen[0]!.msg, [KEY], Math.floor(Date.now() / 1000)).kind, 'ok', 'the NOTIFY verifies with the key');
});

t.test('a newer serial replaces a pending NOTIFY', async (t) => {
  const s = await secondary(() => null);
  t.teardown(s.close);
  const clock = new FakeClock();
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], null, memoryLogger(), clock);
  t.teardown(() => notifier.close());
  notifier.notify('lexa', 1);
  notifier.notify('lexa', 2);
  await until(() => s.seen.length === 2, 'one NOTIFY each');
  t.equal(clock.pending, 1, 'one retry pending: the newer one');
  await clock.advance(NOTIFY_FIRST_RETRY_MS);
  await until(() => s.seen.length === 3, 'the retry of the newer one');
  t.equal(s.seen.length, 3, 'only the newer one is retried');
});

t.test('configure (SIGHUP): later NOTIFYs go to the new targets signed with the new key; pending retries to the old stop', async (t) => {
  const NEW: TsigKey = { ...KEY, secret: Buffer.from('another secret of thirty-two byte') };
  const old = await secondary(() => null); // never acknowledges: lexa would retry it
  const next = await secondary((msg) => {
    const check = checkRequest(msg, [NEW], Math.floor(Date.now() / 1000));
    return check.kind === 'ok' ? signMessage(ack(check.stripped), NEW, { requestMac: check.mac, timeSigned: Math.floor(Date.now() / 1000) }).message : null;
  });
  t.teardown(old.close);
  t.teardown(next.close);
  const clock = new FakeClock(Date.now());
  const notifier = new Notifier([{ host: '127.0.0.1', port: old.port }], KEY, memoryLogger(), clock);
  t.teardown(() => notifier.close());
  notifier.notify('lexa', 1);
  await until(() => old.seen.length === 1, 'the old target gets the first NOTIFY');
  notifier.configure([{ host: '127.0.0.1', port: next.port }], NEW);
  notifier.notify('lexa', 2);
  await until(() => next.seen.length === 1 && clock.pending === 0, 'the new target acknowledges');
  await clock.advance(NOTIFY_FIRST_RETRY_MS * 2 ** NOTIFY_ATTEMPTS);
  t.equal(old.seen.length, 1, 'no retry reaches the old target after the reload');
  t.equal(next.seen.length, 1, 'the new target got one NOTIFY (acknowledged, so no retry)');
  t.equal(checkRequest(next.seen[0]!.msg, [NEW], Math.floor(Date.now() / 1000)).kind, 'ok', 'signed with the new key');
  t.equal(checkRequest(next.seen[0]!.msg, [KEY], Math.floor(Date.now() / 1000)).kind, 'rejected', 'not with the old one');
});
