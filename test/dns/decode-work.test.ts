import { Buffer } from 'node:buffer';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/handler.js';
import { MESSAGE_LIMIT } from '../../src/dns/wire.js';
import { OPTS, clustered } from '../helpers/dns-fixture.js';

// A query's cost is linear in its bytes, whatever its records say. dns-packet follows compression pointers with
// no hop limit, so a message that holds a chain of pointers to pointers, and thousands of records whose owners
// name the chain's end, made decoding it follow the chain once per record (~0.8 s of CPU for one 64 KiB TCP
// message). Counted, not timed: pointer hops are 2-byte reads (`readUInt16BE`), so the test counts those.

/**
 * Header (QDCOUNT 1, ARCOUNT k), the question `web-1.lexa A`, one record of an unknown type whose rdata is a
 * chain of `chainBytes / 2` pointers (each to the one before, the first to the question name), then as many
 * 12-byte records owned by a pointer to the chain's end as fit in 65535 bytes.
 */
function chained(chainBytes: number): Buffer {
  const question = Buffer.from([5, ...Buffer.from('web-1'), 4, ...Buffer.from('lexa'), 0, 0, 1, 0, 1]);
  const carrier = Buffer.alloc(11);
  carrier.writeUInt16BE(65280, 1); // owner root, a private type, class IN, TTL 0
  carrier.writeUInt16BE(1, 3);
  carrier.writeUInt16BE(chainBytes, 9);
  const chainAt = 12 + question.length + carrier.length;
  const chain = Buffer.alloc(chainBytes);
  for (let i = 0; i < chainBytes; i += 2) chain.writeUInt16BE(0xc000 | (i === 0 ? 12 : chainAt + i - 2), i);
  const records: Buffer[] = [];
  let size = chainAt + chainBytes;
  while (size + 12 <= 65535) {
    const r = Buffer.alloc(12);
    r.writeUInt16BE(0xc000 | (chainAt + chainBytes - 2), 0);
    r.writeUInt16BE(65280, 2);
    r.writeUInt16BE(1, 4);
    records.push(r);
    size += 12;
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0x4242, 0);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1 + records.length, 10);
  return Buffer.concat([header, question, carrier, chain, ...records]);
}

/** Runs `fn` counting calls of Buffer.prototype.readUInt16BE (restored after, even on a throw). */
function twoByteReads(fn: () => void): number {
  const original = Buffer.prototype.readUInt16BE;
  let calls = 0;
  Buffer.prototype.readUInt16BE = function (this: Buffer, offset?: number) {
    calls++;
    return original.call(this, offset);
  };
  try {
    fn();
  } finally {
    Buffer.prototype.readUInt16BE = original;
  }
  return calls;
}

t.test('a 64 KiB query full of pointer chains is answered with work bounded by its size', async (t) => {
  const handle = createHandler({ snapshot: clustered, resolver: OPTS, log: silentLogger, cache: false });
  const query = chained(1000);
  t.equal(query.length <= 65535 && query.length > 65000, true, `the query is ${query.length} bytes`);
  let reply: Uint8Array | null = null;
  const reads = twoByteReads(() => (reply = handle(query, MESSAGE_LIMIT)));
  // Following the 500-pointer chain once per record would be ~2.7 million reads; reading each record's fixed
  // fields once would be ~5,400. What answering the question needs is a few dozen.
  t.ok(reads < 1000, `${reads} two-byte reads for a ${query.length}-byte query`);
  const r = dnsPacket.decode(Buffer.from(reply!)) as DecodedPacket & { rcode: string };
  t.equal(r.id, 0x4242);
  t.equal(r.rcode, 'NOERROR', 'the question is answered');
  t.equal(r.answers?.length, 1, 'web-1 A');
});

t.test('records running past the end are still FORMERR without decoding them', async (t) => {
  const handle = createHandler({ snapshot: clustered, resolver: OPTS, log: silentLogger, cache: false });
  const query = chained(1000);
  const cut = Buffer.from(query.subarray(0, query.length - 5));
  const r = dnsPacket.decode(Buffer.from(handle(cut, MESSAGE_LIMIT)!)) as DecodedPacket & { rcode: string };
  t.equal(r.rcode, 'FORMERR');
});
