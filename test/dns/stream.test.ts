import { Buffer } from 'node:buffer';
import t from 'tap';
import { FrameReader, frameMessage } from '../../src/servers/dns/index.js';

// The length-prefix frame reader shared by DNS over TCP and DNS over TLS, without sockets.

const messages = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(300, 7), Buffer.from('hello, dns'), Buffer.alloc(1000, 1)];
const stream = Buffer.concat(messages.map(frameMessage));

/** The messages read from `chunks`; throws if bytes of an unfinished frame are left over. */
function readAll(chunks: Buffer[]): Buffer[] {
  const reader = new FrameReader();
  const out: Buffer[] = [];
  for (const c of chunks) reader.push(c, (m) => (out.push(Buffer.from(m)), true));
  if (reader.pendingBytes !== 0) throw new Error(`${reader.pendingBytes} bytes left over`);
  return out;
}

t.test('frameMessage → FrameReader round trip: one chunk, every two-chunk split, byte by byte', async (t) => {
  t.equal(stream.length, messages.reduce((n, m) => n + 2 + m.length, 0), 'each frame is 2 + length bytes');
  t.same(readAll([stream]), messages, 'one chunk');
  let splits = 0;
  for (let at = 0; at <= stream.length; at++) {
    const got = readAll([stream.subarray(0, at), stream.subarray(at)]);
    if (got.length !== messages.length || got.some((m, i) => !m.equals(messages[i]!))) t.fail(`split at ${at}`);
    splits++;
  }
  t.pass(`${splits} splits`);
  t.same(readAll([...stream].map((b) => Buffer.from([b]))), messages, 'byte by byte');
  t.same(Buffer.concat(readAll([stream]).map(frameMessage)), stream, 're-framing gives the same bytes');
});

t.test('pending bytes and the announced length of an incomplete frame', async (t) => {
  const reader = new FrameReader();
  t.equal(reader.announced, -1);
  reader.push(Buffer.from([0x01]), () => true);
  t.equal(reader.pendingBytes, 1);
  t.equal(reader.announced, -1, 'half a prefix announces nothing');
  reader.push(Buffer.from([0x00, 0xaa]), () => true);
  t.equal(reader.announced, 256);
  t.equal(reader.pendingBytes, 3);
});

t.test('onMessage returning false stops reading and keeps the rest; an empty push goes on from there', async (t) => {
  const reader = new FrameReader();
  const seen: number[] = [];
  reader.push(stream, (m) => (seen.push(m.length), seen.length < 2));
  t.same(seen, [1, 0]);
  t.equal(reader.pendingBytes, stream.length - 2 - 1 - 2, 'the frames not yet read are kept');
  reader.push(new Uint8Array(0), (m) => (seen.push(m.length), true));
  const all: number[] = [];
  new FrameReader().push(stream, (m) => (all.push(m.length), true));
  t.same(seen, all, 'every frame, each once, in order');
});
