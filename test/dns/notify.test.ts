import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { Notifier, NOTIFY_FIRST_RETRY_MS } from '../../src/servers/dns/notify.js';
import { checkRequest, signMessage, type TsigKey } from '../../src/servers/dns/tsig.js';

// NOTIFY's retry and acknowledgement rules against a scripted secondary on a real UDP socket (knot.test.ts
// runs the real knot): it ignores the first NOTIFY, then answers, as a secondary that lost a packet would.
const KEY: TsigKey = { name: 'lexa-xfr', algorithm: 'hmac-sha256', secret: Buffer.from('0123456789abcdef0123456789abcdef') };

async function secondary(answer: (msg: Buffer, n: number) => Buffer | null) {
  const socket = dgram.createSocket('udp4');
  const seen: { at: number; msg: Buffer }[] = [];
  socket.on('message', (msg, rinfo) => {
    seen.push({ at: Date.now(), msg });
    const reply = answer(msg, seen.length);
    if (reply) socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  return { port: socket.address().port, seen, close: () => new Promise<void>((r) => socket.close(() => r())) };
}

/** The acknowledgement a secondary sends: the NOTIFY's header with QR set, and its question. */
function ack(msg: Buffer): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(out.readUInt16BE(2) | 0x8000, 2);
  return out;
}

t.test('NOTIFY is sent again until acknowledged, then not again', async (t) => {
  const s = await secondary((msg, n) => (n >= 2 ? ack(msg) : null));
  t.teardown(s.close);
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], null, memoryLogger());
  t.teardown(() => notifier.close());
  const start = Date.now();
  notifier.notify('lexa', 42);
  await new Promise((r) => setTimeout(r, NOTIFY_FIRST_RETRY_MS * 3.5));
  t.equal(s.seen.length, 2, 'the first (ignored) and one retry, then no more after the acknowledgement');
  const gap = s.seen[1]!.at - s.seen[0]!.at;
  t.ok(gap >= NOTIFY_FIRST_RETRY_MS * 0.9 && gap < NOTIFY_FIRST_RETRY_MS * 2.5, `retried after ${gap} ms`);
  t.ok(s.seen[0]!.at - start < 500, 'the first goes out at once');
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
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], KEY, memoryLogger());
  t.teardown(() => notifier.close());
  notifier.notify('0.99.10.in-addr.arpa', 7);
  await new Promise((r) => setTimeout(r, NOTIFY_FIRST_RETRY_MS * 3.5));
  t.equal(s.seen.length, 2, 'an unsigned acknowledgement is ignored; the signed one ends it');
  t.equal(checkRequest(s.seen[0]!.msg, [KEY], Math.floor(Date.now() / 1000)).kind, 'ok', 'the NOTIFY verifies with the key');
});

t.test('a newer serial replaces a pending NOTIFY', async (t) => {
  const s = await secondary(() => null);
  t.teardown(s.close);
  const notifier = new Notifier([{ host: '127.0.0.1', port: s.port }], null, memoryLogger());
  t.teardown(() => notifier.close());
  notifier.notify('lexa', 1);
  notifier.notify('lexa', 2);
  await new Promise((r) => setTimeout(r, 200));
  t.equal(s.seen.length, 2, 'one each');
  await new Promise((r) => setTimeout(r, NOTIFY_FIRST_RETRY_MS * 1.5));
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
  const notifier = new Notifier([{ host: '127.0.0.1', port: old.port }], KEY, memoryLogger());
  t.teardown(() => notifier.close());
  notifier.notify('lexa', 1);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(old.seen.length, 1, 'the old target got the first NOTIFY');
  notifier.configure([{ host: '127.0.0.1', port: next.port }], NEW);
  notifier.notify('lexa', 2);
  await new Promise((r) => setTimeout(r, NOTIFY_FIRST_RETRY_MS * 1.5));
  t.equal(old.seen.length, 1, 'no retry reaches the old target after the reload');
  t.equal(next.seen.length, 1, 'the new target got one NOTIFY (acknowledged, so no retry)');
  t.equal(checkRequest(next.seen[0]!.msg, [NEW], Math.floor(Date.now() / 1000)).kind, 'ok', 'signed with the new key');
  t.equal(checkRequest(next.seen[0]!.msg, [KEY], Math.floor(Date.now() / 1000)).kind, 'rejected', 'not with the old one');
});
