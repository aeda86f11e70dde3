import { Buffer } from 'node:buffer';
import t from 'tap';
import dnsPacket, { type Answer, type DecodedPacket, type OptAnswer, type SoaAnswer } from 'dns-packet';
import { silentLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/handler.js';
import type { Outcome, Question } from '../../src/dns/resolve.js';
import { answerQuery, datagramLimit, DEFAULT_MAX_UDP_REPLY, MESSAGE_LIMIT } from '../../src/dns/wire.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import { iface, instance, seeded, service, snapshotOf } from '../helpers/model.js';
import { rdata, sortedText, zone } from '../helpers/zone.js';
import { clustered, OPTS, SOA } from '../helpers/dns-fixture.js';

/** What the UDP transport passes with the default ceiling. */
const UDP = datagramLimit(DEFAULT_MAX_UDP_REPLY);

// Unit tests of the wire layer (decode, validate, EDNS, outcome → rcode, fitting) on hand-built snapshots.

const RD = dnsPacket.RECURSION_DESIRED;

interface QueryOpts {
  id?: number;
  flags?: number;
  klass?: 'IN' | 'CH';
  /** EDNS: false for none, else the client's UDP payload size, version, DO bit. */
  edns?: false | { size?: number; version?: number; do?: boolean };
}

function query(name: string, type: string, o: QueryOpts = {}): Buffer {
  const edns = o.edns ?? false;
  const additionals: Answer[] = [];
  if (edns !== false) {
    additionals.push({
      name: '.',
      type: 'OPT',
      udpPayloadSize: edns.size ?? 1232,
      extendedRcode: 0,
      ednsVersion: edns.version ?? 0,
      flags: edns.do ? dnsPacket.DNSSEC_OK : 0,
      flag_do: edns.do ?? false,
      options: [],
    });
  }
  return dnsPacket.encode({
    type: 'query',
    id: o.id ?? 0xbeef,
    flags: o.flags ?? RD,
    questions: [{ name, type: type as dnsPacket.RecordType, class: o.klass ?? 'IN' }],
    additionals,
  });
}

type Reply = DecodedPacket & { rcode: string; opcode: string };

function decode(buf: Uint8Array | null): Reply {
  if (buf === null) throw new Error('no reply');
  return dnsPacket.decode(Buffer.from(buf)) as Reply;
}

function optOf(r: Reply): OptAnswer | undefined {
  return r.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
}

function records(list: Answer[] | undefined): Answer[] {
  return (list ?? []).filter((a) => a.type !== 'OPT');
}

const handle = createHandler({ snapshot: clustered, resolver: OPTS, log: silentLogger });

t.test('outcomes map to rcodes and flags', (t) => {
  const cases: [string, string, Buffer, Partial<Record<'rcode' | 'aa' | 'an' | 'ns', string | boolean | number>>][] = [
    ['answer', 'NOERROR', query('web-1.lexa', 'A'), { aa: true, an: 1, ns: 0 }],
    ['nodata', 'NOERROR', query('web-2.lexa', 'AAAA'), { aa: true, an: 0, ns: 1 }],
    ['nxdomain', 'NXDOMAIN', query('nope.lexa', 'A'), { aa: true, an: 0, ns: 1 }],
    ['refused', 'REFUSED', query('example.com', 'A'), { aa: false, an: 0, ns: 0 }],
    ['root NS probe', 'REFUSED', query('.', 'NS'), { aa: false, an: 0, ns: 0 }],
    ['class CH', 'REFUSED', query('web-1.lexa', 'A', { klass: 'CH' }), { aa: false, an: 0, ns: 0 }],
    ['notimp', 'NOTIMP', query('web-1.lexa', 'OPT'), { aa: false, an: 0, ns: 0 }],
  ];
  for (const [what, rcode, q, want] of cases) {
    const r = decode(handle(q, UDP));
    t.equal(r.rcode, rcode, `${what}: rcode`);
    t.equal(r.id, 0xbeef, `${what}: id echoed`);
    t.equal(r.flag_qr, true, `${what}: QR`);
    t.equal(r.flag_aa, want.aa, `${what}: AA`);
    t.equal(r.flag_rd, true, `${what}: RD copied`);
    t.equal(r.flag_ra, false, `${what}: RA off`);
    t.equal(r.flag_tc, false, `${what}: TC off`);
    t.equal(r.answers?.length, want.an, `${what}: answers`);
    t.equal(r.authorities?.length, want.ns, `${what}: authority`);
    t.same(r.questions, dnsPacket.decode(q).questions, `${what}: question echoed`);
  }
  // 12 header + 16 question + 16 answer: the owner is a 2-byte pointer to the question name
  t.equal(handle(query('web-1.lexa', 'A'), UDP)!.length, 44, 'owner name compressed');
  const nx = decode(handle(query('nope.lexa', 'A'), UDP));
  t.same(sortedText(nx.authorities ?? []), zone(SOA), 'NXDOMAIN carries the zone SOA');
  const noRd = decode(handle(query('web-1.lexa', 'A', { flags: 0 }), UDP));
  t.equal(noRd.flag_rd, false, 'RD off when the query had it off');
  const notReady = createHandler({ snapshot: () => Snapshot.empty(), resolver: OPTS, log: silentLogger });
  t.equal(decode(notReady(query('web-1.lexa', 'A'), UDP)).rcode, 'SERVFAIL', 'not synced: SERVFAIL');
  t.end();
});

t.test('replies round-trip: encode → decode → encode gives the same bytes', (t) => {
  const queries: [string, string, QueryOpts?][] = [
    ['web-1.lexa', 'A'],
    ['WEB-1.lexa', 'AAAA', { edns: {} }],
    ['*.lexa', 'A', { edns: {} }],
    ['_https._tcp.service.lexa', 'SRV', { edns: { do: true } }],
    ['cluster.web-1.lexa', 'CNAME'],
    ['lexa', 'SOA', { edns: {} }],
    ['lexa', 'NS'],
    ['nope.lexa', 'A', { edns: {} }],
    ['web-2.lexa', 'AAAA'],
    ['example.com', 'A', { edns: {} }],
    ['web-1.lexa', 'A', { edns: { version: 1 } }],
  ];
  for (const [name, type, o] of queries) {
    const what = `${name} ${type}`;
    const q = query(name, type, o);
    const reply = handle(q, UDP)!;
    const d = decode(reply);
    // our encoder again, fed the decoded records
    const again = answerQuery(q, UDP, () => outcomeOf(d))!;
    t.same(Buffer.from(again), Buffer.from(reply), `${what}: same bytes`);
    // and dns-packet (no compression) agrees on the content, never smaller
    const plain = dnsPacket.encode(d);
    t.same(dnsPacket.decode(plain), dnsPacket.decode(Buffer.from(reply)), `${what}: dns-packet re-encodes the same message`);
    t.ok(reply.length <= plain.length, `${what}: ${reply.length} <= ${plain.length} bytes uncompressed`);
  }
  t.end();
});

/** The outcome a decoded reply stands for (the inverse of the outcome → wire mapping). */
function outcomeOf(r: Reply): Outcome {
  switch (r.rcode) {
    case 'NXDOMAIN':
      return { kind: 'nxdomain', soa: r.authorities![0] as SoaAnswer };
    case 'REFUSED':
      return { kind: 'refused' };
    case 'SERVFAIL':
      return { kind: 'notready' };
    case 'NOERROR':
      if (r.answers!.length === 0) return { kind: 'nodata', soa: r.authorities![0] as SoaAnswer };
      return { kind: 'answer', answers: r.answers!, additionals: records(r.additionals) };
    default:
      throw new Error(`no outcome for ${r.rcode}`);
  }
}

t.test('EDNS(0): OPT only when asked, our size advertised, DO echoed, BADVERS for version > 0', (t) => {
  t.equal(optOf(decode(handle(query('web-1.lexa', 'A'), UDP))), undefined, 'no OPT without EDNS');
  const opt = optOf(decode(handle(query('web-1.lexa', 'A', { edns: { size: 1232 } }), UDP)))!;
  t.equal(opt.udpPayloadSize, 1232, 'advertises DNS Flag Day 2020\'s 1232 by default');
  t.equal(opt.ednsVersion, 0);
  t.equal(opt.flag_do, false);
  t.equal(optOf(decode(handle(query('web-1.lexa', 'A', { edns: { do: true } }), UDP)))!.flag_do, true, 'DO echoed');
  const small = createHandler({ snapshot: clustered, resolver: OPTS, log: silentLogger, udpPayload: 1232 });
  t.equal(optOf(decode(small(query('web-1.lexa', 'A', { edns: {} }), datagramLimit(1232))))!.udpPayloadSize, 1232, 'configured size');
  const big = createHandler({ snapshot: clustered, resolver: OPTS, log: silentLogger, udpPayload: 4096 });
  t.equal(optOf(decode(big(query('web-1.lexa', 'A', { edns: {} }), UDP)))!.udpPayloadSize, 4096, 'configured size, up to 4096');

  const bad = decode(handle(query('web-1.lexa', 'A', { edns: { version: 1 } }), UDP));
  const badOpt = optOf(bad)!;
  t.equal(bad.rcode, 'NOERROR', 'header rcode holds the low 4 bits of 16: 0');
  t.equal(badOpt.extendedRcode, 1, 'OPT holds the upper 8 bits: BADVERS = 16');
  t.equal(badOpt.ednsVersion, 0, 'we speak version 0');
  t.equal(bad.answers?.length, 0, 'no answer');
  t.equal(bad.id, 0xbeef);
  t.end();
});

t.test('fitting: truncation keeps as many answers as fit, never none', async (t) => {
  // 600 running instances many-000..many-599, one IPv4 each; many-000..many-039 offer "web", the first 10 tagged "ten"
  const many = Array.from({ length: 600 }, (_, i) => {
    const n = String(i).padStart(3, '0');
    return instance(`many-${n}`, {
      interfaces: [iface('eth0', [`10.1.${i >> 8}.${i & 255}`])],
      services: i < 40 ? [service('web', { tags: i < 10 ? ['ten'] : [] })] : [],
    });
  });
  const snap = snapshotOf(many);
  const h = createHandler({ snapshot: () => snap, resolver: { ...OPTS, random: seeded(5) }, log: silentLogger });
  const h8k = createHandler({ snapshot: () => snap, resolver: OPTS, log: silentLogger, udpPayload: 8192 });

  // Header 12; question 'many-*.lexa' 13 + 4 = 17; OPT 11; each A record 16 (owner: a 2-byte pointer to the question).
  const wild = (o: QueryOpts) => query('many-*.lexa', 'A', o);
  const cases: [string, Uint8Array | null, number, boolean, number][] = [
    ['no EDNS → 512', h(wild({}), UDP), 30, true, 512], // (512-29)/16
    ['EDNS 1232', h(wild({ edns: { size: 1232 } }), UDP), 74, true, 1232], // (1232-40)/16
    ['EDNS 8192, server max 4096', h(wild({ edns: { size: 8192 } }), UDP), 253, true, 4096], // (4096-40)/16
    ['EDNS 8192, server max 8192', h8k(wild({ edns: { size: 8192 } }), datagramLimit(8192)), 509, true, 8192], // (8192-40)/16
    ['EDNS 300 → floor 512', h(wild({ edns: { size: 300 } }), UDP), 29, true, 512], // (512-40)/16
    ['per-call max 1232', h(wild({ edns: { size: 4096 } }), datagramLimit(1232)), 74, true, 1232],
    ['TCP: everything', h(wild({}), MESSAGE_LIMIT), 600, false, 65535],
  ];
  for (const [what, buf, answers, tc, limit] of cases) {
    const r = decode(buf);
    t.equal(r.answers?.length, answers, `${what}: answers`);
    t.equal(r.flag_tc, tc, `${what}: TC`);
    t.ok(buf!.length <= limit, `${what}: ${buf!.length} <= ${limit}`);
    if (tc) t.ok(buf!.length + 16 > limit, `${what}: one more answer would not have fit`);
    t.equal(r.rcode, 'NOERROR');
    t.equal(new Set(r.answers!.map((a) => rdata(a))).size, answers, `${what}: distinct addresses`);
  }

  // SRV: question '_web._ten.service.lexa' 24 + 4 = 28; each SRV 2 + 10 + 6 + 23 ('eth0.if.many-000.lexa') = 41;
  // each additional A 16 (its owner points at the target inside the SRV record).
  const srv = (name: string, o: QueryOpts) => decode(h(query(name, 'SRV', o), UDP));
  const fit = srv('_web._ten.service.lexa', { edns: { size: 1232 } }); // 51 + 10*41 + 10*16 = 621
  t.equal(fit.answers?.length, 10, 'all SRV fit');
  t.equal(records(fit.additionals).length, 10, 'with all additionals');
  t.equal(fit.flag_tc, false);
  const partial = srv('_web._ten.service.lexa', { edns: { size: 512 } }); // 461 + 3*16 = 509
  t.equal(partial.answers?.length, 10, 'answers kept whole');
  t.equal(records(partial.additionals).length, 3, 'additionals dropped from the end first');
  t.equal(partial.flag_tc, false, 'no TC for dropped additionals (RFC 2181 §9)');
  t.same(
    records(partial.additionals).map((a) => a.name),
    partial.answers!.slice(0, 3).map((a) => rdata<{ target: string }>(a).target),
    'the additionals kept are those of the first answers',
  );
  const cut = srv('_web._tcp.service.lexa', {}); // 40 + 11*41 = 491
  t.equal(cut.answers?.length, 11, 'no EDNS: 11 SRV of 40');
  t.equal(records(cut.additionals).length, 0, 'additionals all gone before any answer');
  t.equal(cut.flag_tc, true);
  const big = srv('_web._tcp.service.lexa', { edns: { size: 1232 } }); // 51 + 28*41 = 1199
  t.equal(big.answers?.length, 28, '40 endpoints at 1232: 28 SRV');
  t.equal(big.flag_tc, true);
  t.equal(records(big.additionals).length, 0);
  t.equal(optOf(big)?.udpPayloadSize, 1232, 'OPT kept when truncating');
  // The advertised 1232 does not cap replies: a client asking for more gets up to the ceiling (DEFAULT_MAX_UDP_REPLY).
  const whole = srv('_web._tcp.service.lexa', { edns: { size: 8192 } });
  t.equal(whole.answers?.length, 40, 'EDNS 8192 (HAProxy), ceiling 4096: all 40 SRV');
  t.equal(whole.flag_tc, false);
  t.equal(optOf(whole)?.udpPayloadSize, 1232, 'while advertising 1232');

  // A single answer that alone exceeds 512 is still sent (with TC): never an empty truncated answer.
  const longName = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.lexa`;
  const three = (): Outcome => ({
    kind: 'answer',
    answers: ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((ip) => ({ name: longName.toUpperCase(), type: 'A' as const, ttl: 0, data: ip })),
    additionals: [],
  });
  const one = decode(answerQuery(query(longName, 'A'), UDP, three)); // 12 + 254 + (250 + 14) = 530
  t.equal(one.answers?.length, 1, 'one answer kept');
  t.equal(one.flag_tc, true, 'TC set');
  t.end();
});

t.test('TCP: a reply never exceeds 65535 bytes', (t) => {
  const many = Array.from({ length: 5000 }, (_, i) =>
    instance(`h${i}`, { interfaces: [iface('eth0', [`10.2.${i >> 8}.${i & 255}`])] }),
  );
  const snap = snapshotOf(many);
  const h = createHandler({ snapshot: () => snap, resolver: OPTS, log: silentLogger });
  const reply = h(query('*.lexa', 'A'), MESSAGE_LIMIT)!;
  const r = decode(reply);
  // header 12 + question 8 + 4 = 24; (65535 - 24) / 16 = 4094 answers
  t.equal(r.answers?.length, 4094);
  t.equal(r.flag_tc, true, 'TC: even TCP could not carry all 5000');
  t.ok(reply.length <= 65535, `${reply.length} bytes`);
  t.end();
});

t.test('malformed and foreign queries: FORMERR, NOTIMP, drops; never a throw', (t) => {
  const header = (flags: number, qd: number, an = 0, ns = 0, ar = 0) => {
    const b = Buffer.alloc(12);
    b.writeUInt16BE(0x1234, 0);
    b.writeUInt16BE(flags, 2);
    b.writeUInt16BE(qd, 4);
    b.writeUInt16BE(an, 6);
    b.writeUInt16BE(ns, 8);
    b.writeUInt16BE(ar, 10);
    return b;
  };
  const formerr = (what: string, buf: Buffer) => {
    const r = decode(handle(buf, UDP));
    t.equal(r.rcode, 'FORMERR', `${what}: FORMERR`);
    t.equal(r.id, 0x1234, `${what}: id echoed`);
    t.equal(r.flag_qr, true, `${what}: QR`);
    t.equal(r.questions?.length, 0, `${what}: header only`);
  };
  const aQuestion = Buffer.from([4, ...Buffer.from('web1'), 4, ...Buffer.from('lexa'), 0, 0, 1, 0, 1]);
  formerr('header only, qdcount 1', header(RD, 1));
  formerr('qdcount 0', header(RD, 0));
  formerr('qdcount 2', Buffer.concat([header(RD, 2), aQuestion, aQuestion]));
  formerr('label length over 63', Buffer.concat([header(RD, 1), Buffer.alloc(40, 0xff)]));
  formerr('compression pointer as question name', Buffer.concat([header(RD, 1), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]));
  formerr('name runs past the end', Buffer.concat([header(RD, 1), Buffer.from([10, 0x61, 0x62])]));
  formerr('no type and class', Buffer.concat([header(RD, 1), aQuestion.subarray(0, 11)]));
  formerr('arcount 3 with nothing there', Buffer.concat([header(RD, 1, 0, 0, 3), aQuestion]));
  const twoOpts = dnsPacket.encode({
    type: 'query',
    id: 0x1234,
    questions: [{ name: 'web-1.lexa', type: 'A' }],
    additionals: [0, 1].map(() => ({ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }) as OptAnswer),
  });
  formerr('two OPT records', twoOpts);

  t.equal(handle(Buffer.alloc(0), UDP), null, 'empty: dropped');
  t.equal(handle(Buffer.from([0x12, 0x34, 1, 0, 0]), UDP), null, 'shorter than a header: dropped');
  const response = Buffer.concat([header(0x8000, 1), aQuestion]);
  t.equal(handle(response, UDP), null, 'a response (QR=1): dropped');

  const status = decode(handle(Buffer.concat([header((2 << 11) | RD, 1), aQuestion]), UDP));
  t.equal(status.rcode, 'NOTIMP', 'opcode STATUS: NOTIMP');
  t.equal(status.opcode, 'STATUS', 'opcode echoed');
  t.equal(status.id, 0x1234);
  const update = decode(handle(Buffer.concat([header(5 << 11, 1), aQuestion]), UDP));
  t.equal(update.rcode, 'NOTIMP', 'opcode UPDATE: NOTIMP');

  // Names dns-packet cannot re-encode faithfully: REFUSED, question echoed byte for byte.
  for (const [what, label] of [
    ['a non-ASCII byte', Buffer.from([0x77, 0xff, 0x62])],
    ['a dot inside a label', Buffer.from('if.web-1')],
  ] as const) {
    const q = Buffer.concat([header(RD, 1), Buffer.from([label.length]), label, Buffer.from([4]), Buffer.from('lexa'), Buffer.from([0, 0, 1, 0, 1])]);
    const reply = handle(q, UDP)!;
    t.equal(decode(reply).rcode, 'REFUSED', `${what}: REFUSED`);
    t.same(Buffer.from(reply.subarray(12)), q.subarray(12), `${what}: question bytes echoed`);
  }

  // Fuzz: random bytes and mutated valid queries never throw, and every reply decodes with our id and QR.
  const random = seeded(42);
  const byte = () => Math.floor(random() * 256);
  const valid = query('_https._tcp.service.lexa', 'SRV', { edns: {} });
  let replies = 0;
  for (let i = 0; i < 3000; i++) {
    let buf: Buffer;
    if (i % 2 === 0) buf = Buffer.from(Array.from({ length: Math.floor(random() * 80) }, byte));
    else {
      buf = Buffer.from(valid);
      for (let k = 0; k < 1 + (i % 4); k++) buf[Math.floor(random() * buf.length)] = byte();
    }
    let reply: Uint8Array | null = null;
    try {
      reply = handle(buf, i % 3 === 0 ? MESSAGE_LIMIT : UDP);
    } catch (err) {
      t.fail(`threw on ${buf.toString('hex')}: ${String(err)}`);
      continue;
    }
    if (reply === null) continue;
    replies++;
    const r = decode(reply);
    if (r.id !== buf.readUInt16BE(0) || !r.flag_qr) t.fail(`bad reply to ${buf.toString('hex')}`);
  }
  t.ok(replies > 500, `fuzz produced replies (${replies})`);
  t.end();
});

t.test('internal failures become SERVFAIL, reported once to onError', (t) => {
  const errors: unknown[] = [];
  const onError = (e: unknown) => errors.push(e);
  const throws = () => {
    throw new Error('boom');
  };
  t.equal(decode(answerQuery(query('web-1.lexa', 'A'), UDP, throws, 4096, onError)).rcode, 'SERVFAIL', 'answerer threw');
  const badAddress = (q: Question): Outcome => ({
    kind: 'answer',
    answers: [{ name: q.name, type: 'A', data: '10.0.0.300' }],
    additionals: [],
  });
  const r = decode(answerQuery(query('web-1.lexa', 'A', { edns: {} }), UDP, badAddress, 4096, onError));
  t.equal(r.rcode, 'SERVFAIL', 'record failed to encode');
  t.equal(optOf(r)?.udpPayloadSize, 4096, 'still a well-formed EDNS reply');
  t.equal(errors.length, 2, 'both reported');
  t.end();
});
