import { Buffer } from 'node:buffer';
import dnsPacket, { type Answer } from 'dns-packet';
import t from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { createHandler, MESSAGE_LIMIT } from '../../src/dns/index.js';
import { cacheMaxAge, decodeBase64Url, route, type DohReply } from '../../src/servers/doh/index.js';
import { clustered, OPTS } from '../helpers/dns-fixture.js';
import { query, stubHandler } from '../helpers/transport-stub.js';

// The DoH core without sockets: base64url, the cache lifetime read from a reply's wire format, and routing.

t.test('decodeBase64Url: the URL-safe alphabet, padding tolerated, nothing else', async (t) => {
  const bytes = Buffer.from([0xfb, 0xff, 0xbe, 0xef, 0x00]);
  t.same(decodeBase64Url('-_--7wA'), bytes, 'unpadded, with - and _');
  t.same(decodeBase64Url('-_--7wA='), bytes, 'padded');
  t.same(decodeBase64Url('QUJD'), Buffer.from('ABC'), 'a whole quantum');
  t.same(decodeBase64Url('QQ'), Buffer.from('A'));
  t.same(decodeBase64Url('QQ=='), Buffer.from('A'));
  for (const bad of ['', '=', 'QQ=', 'Q', 'QUJDQ', '+_--7wA', '/w', 'QQ==QQ', 'QQ===', 'Q Q', 'QQ%3D', 'ÿÿ']) {
    t.equal(decodeBase64Url(bad), undefined, `${JSON.stringify(bad)} is refused`);
  }
});

/** The reference: the smallest TTL among decoded answer and authority records, and an authority SOA's MINIMUM. */
function referenceMaxAge(msg: Buffer): number {
  const p = dnsPacket.decode(msg);
  const ttl = (rr: Answer) => (rr.type === 'OPT' ? [] : [rr.ttl ?? 0]);
  const ttls = [
    ...(p.answers ?? []).flatMap(ttl),
    ...(p.authorities ?? []).flatMap((rr) => (rr.type === 'SOA' ? [...ttl(rr), rr.data.minimum ?? 0] : ttl(rr))),
  ];
  return ttls.length === 0 ? 0 : Math.min(...ttls);
}

t.test("cacheMaxAge agrees with a full decode, on the stub's replies and on lexa's compressed ones", async (t) => {
  const stub = stubHandler();
  const stubCases: [string, dnsPacket.RecordType, number][] = [
    ['web.test', 'A', 60],
    ['ttls.test', 'A', 45],
    ['zero.test', 'A', 0],
    ['nx.test', 'A', 15],
    ['web.test', 'AAAA', 10],
    ['test', 'SOA', 300], // an SOA asked for is a positive answer: its MINIMUM (15) does not count
    ['servfail.test', 'A', 0],
    ['big.test', 'A', 60],
  ];
  for (const [name, type, expected] of stubCases) {
    const reply = Buffer.from(stub.handle(query(1, name, type), MESSAGE_LIMIT)!);
    t.equal(cacheMaxAge(reply), expected, `${name} ${type}: ${expected}`);
    t.equal(cacheMaxAge(reply), referenceMaxAge(reply), `${name} ${type}: as decoded`);
  }
  // lexa's own encoder compresses names (pointers in owners and in SOA/SRV rdata) and adds OPT records
  const handle = createHandler({ snapshot: clustered, resolver: { ...OPTS, ttl: 30 }, log: silentLogger });
  const lexaCases: [string, dnsPacket.RecordType][] = [
    ['web-1.lexa', 'A'],
    ['*.lexa', 'A'],
    ['_https._tcp.service.lexa', 'SRV'],
    ['nope.lexa', 'A'],
    ['web-1.lexa', 'TXT'],
    ['lexa', 'SOA'],
    ['lexa', 'NS'],
  ];
  for (const [name, type] of lexaCases) {
    const withEdns = dnsPacket.encode({
      type: 'query',
      id: 2,
      questions: [{ name, type }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: 0 } as unknown as Answer],
    });
    for (const q of [query(2, name, type), withEdns]) {
      const reply = Buffer.from(handle(q, MESSAGE_LIMIT)!);
      const rcode = (dnsPacket.decode(reply) as { rcode?: string }).rcode;
      t.equal(cacheMaxAge(reply), referenceMaxAge(reply), `lexa ${name} ${type} (${rcode}): max-age ${cacheMaxAge(reply)}`);
    }
  }
});

t.test('cacheMaxAge never throws: truncated replies, pointers off the end, a TTL with the top bit set', async (t) => {
  const reply = Buffer.from(stubHandler().handle(query(1, 'nx.test'), MESSAGE_LIMIT)!);
  for (let len = 0; len < reply.length; len++) {
    const v = cacheMaxAge(reply.subarray(0, len));
    if (!(Number.isInteger(v) && v >= 0)) t.fail(`length ${len}: ${v}`);
  }
  t.pass(`every truncation of a ${reply.length}-byte reply gives a number >= 0`);
  const a = Buffer.from(stubHandler().handle(query(1, 'web.test'), MESSAGE_LIMIT)!);
  // A record at the end: TTL is 10 bytes from the end (TTL 4, RDLENGTH 2, RDATA 4)
  a.writeUInt32BE(0x80000000, a.length - 10);
  t.equal(cacheMaxAge(a), 0, 'TTL 2^31 counts as 0 (RFC 2181 §8)');
  a.writeUInt32BE(0x7fffffff, a.length - 10);
  t.equal(cacheMaxAge(a), 0x7fffffff);
  const pointer = Buffer.from(reply);
  pointer[12] = 0xc0; // the question name becomes a pointer; where it points is never followed
  pointer[13] = 0xff;
  t.equal(typeof cacheMaxAge(pointer), 'number');
  const badLabel = Buffer.from(reply);
  badLabel[12] = 0x40; // an obsolete label type
  t.equal(cacheMaxAge(badLabel), 0);
});

t.test('route: by path and method, before any body is read', async (t) => {
  const { handle, calls } = stubHandler();
  const q = Buffer.from(query(3, 'web.test')).toString('base64url');
  const head = (method: string, url: string, contentType?: string, contentLength?: string) => ({ method, url, contentType, contentLength });
  const status = (r: ReturnType<typeof route>) => (r === 'read-body' ? r : (r as DohReply).status);
  t.equal(status(route(head('GET', `/dns-query?dns=${q}`), '/dns-query', handle)), 200);
  t.equal(status(route(head('HEAD', `/dns-query?dns=${q}`), '/dns-query', handle)), 200);
  t.equal(status(route(head('POST', '/dns-query', 'application/dns-message', '40'), '/dns-query', handle)), 'read-body');
  t.equal(status(route(head('POST', '/dns-query', 'application/dns-message'), '/dns-query', handle)), 'read-body', 'no length: read, bounded');
  t.equal(status(route(head('POST', '/dns-query', 'application/dns-message', '65536'), '/dns-query', handle)), 413, 'refused by its length alone');
  t.equal(status(route(head('POST', '/dns-query'), '/dns-query', handle)), 415);
  t.equal(status(route(head('PATCH', '/dns-query'), '/dns-query', handle)), 405);
  t.equal(status(route(head('GET', `/dns-query?dns=${q}`), '/other', handle)), 404);
  t.equal(status(route({ method: undefined, url: undefined, contentType: undefined, contentLength: undefined }, '/dns-query', handle)), 404);
  const ok = route(head('GET', `/dns-query?dns=${q}`), '/dns-query', handle) as DohReply;
  t.equal(dnsPacket.decode(Buffer.from(ok.body)).id, 3);
  t.equal(calls.length, 3, 'the handler ran for the three GET and HEAD requests only');
});
