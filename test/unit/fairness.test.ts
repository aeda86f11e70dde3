import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { reservedSlots, SourceGate, sourceKey } from '../../src/servers/fairness.js';
import { docExample } from '../helpers/doc-example.js';
import { seeded } from '../helpers/model.js';

// The admission arithmetic of servers/fairness.ts, without sockets: what a source is, how many connections one
// source may hold, and that the reserved slots always admit a source holding none.

t.test('a source: an IPv4 address, an IPv6 address cut to the configured prefix', async (t) => {
  t.equal(sourceKey('10.0.0.1', 64), '10.0.0.1');
  t.equal(sourceKey('::ffff:10.0.0.1', 64), '10.0.0.1', 'an IPv4-mapped address is its IPv4 address');
  t.equal(sourceKey('2001:db8:1:2:aaaa::1', 64), sourceKey('2001:db8:1:2::ffff', 64), 'one /64, one source');
  t.not(sourceKey('2001:db8:1:2::1', 64), sourceKey('2001:db8:1:3::1', 64), 'another /64, another source');
  t.equal(sourceKey('2001:db8:1:2::1', 64), '2001:db8:1:2:0:0:0:0/64');
  t.equal(sourceKey('2001:db8:1:2ff::1', 56), '2001:db8:1:200:0:0:0:0/56', 'a prefix inside a group');
  t.not(sourceKey('fd42:99::10', 128), sourceKey('fd42:99::11', 128), '/128: every address apart (containers on one bridge)');
  t.equal(sourceKey('::ffff:0a00:0001', 128), '::ffff:0a00:0001', 'hex-written mapped addresses are IPv6 as written');
  t.equal(sourceKey('fe80::1%eth0', 64), 'fe80:0:0:0:0:0:0:0/64', 'a zone index is ignored');
  t.equal(sourceKey('::ffff:1.2.3.4', 128), '1.2.3.4');
  t.equal(sourceKey('64:ff9b::1.2.3.4', 96), '64:ff9b:0:0:0:0:0:0/96', 'a trailing dotted quad');
});

t.test('the reserve: a quarter of the slots, never all of them', async (t) => {
  t.same([1, 2, 3, 4, 16, 256, 8192].map(reservedSlots), [0, 1, 1, 1, 4, 64, 2048]);
});

t.test('one source holds at most min(maxPerSource, max - reserve); the reserve admits only sources holding none', async (t) => {
  const gate = new SourceGate({ maxConnections: 16, maxPerSource: 100, ipv6SourcePrefix: 64 });
  const a = Array.from({ length: 20 }, () => gate.admit('127.0.0.5'));
  t.equal(a.filter((r) => typeof r === 'function').length, 12, 'one source: 12 of 16 (4 reserved)');
  t.same(a.slice(12), Array(8).fill('reserved-for-others'));
  const others = Array.from({ length: 6 }, (_, i) => gate.admit(`127.0.1.${i}`));
  t.equal(others.filter((r) => typeof r === 'function').length, 4, 'the 4 reserved slots go to 4 new sources');
  t.same(others.slice(4), ['listener-full', 'listener-full']);
  t.equal(gate.admit('127.0.1.0'), 'listener-full');
  (others[0] as () => void)();
  t.equal(gate.admit('127.0.0.5'), 'reserved-for-others', 'a freed reserved slot is not for a source already holding some');
  const again = gate.admit('127.0.2.1');
  t.type(again, 'function', 'it is for a new source');

  const capped = new SourceGate({ maxConnections: 100, maxPerSource: 4, ipv6SourcePrefix: 64 });
  const b = Array.from({ length: 6 }, () => capped.admit('2001:db8::1'));
  t.same(b.slice(4), ['source-limit', 'source-limit'], 'maxPerSource');
  t.equal(capped.admit('2001:db8::2'), 'source-limit', 'the same /64 is the same source');
  t.type(capped.admit('2001:db8:0:1::1'), 'function', 'another /64 is not');
  const release = b[0] as () => void;
  release();
  release();
  t.equal(capped.open, 4, 'releasing twice frees one slot');
});

t.test('random admits and releases: the promised bounds always hold (20,000 seeded operations)', async (t) => {
  const random = seeded(15);
  for (const [max, perSource] of [[16, 4], [16, 100], [5, 2], [1, 1], [64, 8]] as const) {
    const gate = new SourceGate({ maxConnections: max, maxPerSource: perSource, ipv6SourcePrefix: 64 });
    const reserve = reservedSlots(max);
    const open: { source: string; release: () => void }[] = [];
    const count = (s: string) => open.filter((o) => o.source === s).length;
    let broken = '';
    for (let i = 0; i < 4_000 && broken === ''; i++) {
      if (open.length > 0 && random() < 0.4) {
        open.splice(Math.floor(random() * open.length), 1)[0]!.release();
        continue;
      }
      const source = `10.0.0.${Math.floor(random() * 6)}`;
      const held = count(source);
      const r = gate.admit(source);
      const expected = open.length >= max ? 'listener-full' : held >= perSource ? 'source-limit' : held > 0 && open.length >= max - reserve ? 'reserved-for-others' : 'admit';
      if ((typeof r === 'function' ? 'admit' : r) !== expected) broken = `op ${i}: ${source} holding ${held} of ${open.length}: got ${String(r)}, want ${expected}`;
      if (typeof r === 'function') open.push({ source, release: r });
      if (count(source) > Math.min(perSource, Math.max(1, max - reserve))) broken = `op ${i}: ${source} holds ${count(source)}`;
      if (gate.open !== open.length) broken = `op ${i}: gate counts ${gate.open}, open ${open.length}`;
    }
    t.equal(broken, '', `max ${max}, per source ${perSource}`);
  }
});

t.test('docs/security.md, fair sharing: the configuration example loads and sets what it says', async (t) => {
  const hcl = docExample('security.md', 'Fair sharing of every listener');
  t.ok(hcl, 'the document has an hcl example');
  const dir = mkdtempSync(join(tmpdir(), 'lexa-fair-'));
  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, hcl!);
  const c = await loadConfig({ path: file, env: {} });
  t.match(c.dns.limits, { maxPerSource: 8, firstRequestTimeoutMs: 2_000, maxConnections: 256 });
  t.match(c.dns.dot.limits, { handshakeTimeoutMs: 3_000, maxPerSource: 16 });
  t.match(c.rest.limits, { maxConnections: 512, maxPerSource: 64 });
});
