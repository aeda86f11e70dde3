import t from 'tap';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import { silentLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/handler.js';
import { datagramLimit } from '../../src/dns/wire.js';
import { Glob } from '../../src/streams/state/glob.js';
import { iface, instance, seeded, snapshotOf } from '../helpers/model.js';
import { OPTS } from '../helpers/dns-fixture.js';
import { rdata } from '../helpers/zone.js';

// Host wildcards (glob.ts, Snapshot.matchHosts): checked against a plain dynamic-programming matcher on seeded
// random patterns and names, and the pattern that froze the daemon when wildcards were regular expressions.

/** The reference: dp[i][j] = pattern[0..i) matches name[0..j). Obviously right, O(len × len), never used by lexa. */
function reference(pattern: string, name: string): boolean {
  let row = new Array<boolean>(name.length + 1).fill(false);
  row[0] = true;
  for (const c of pattern) {
    const next = new Array<boolean>(name.length + 1).fill(false);
    next[0] = c === '*' && row[0]!;
    for (let j = 1; j <= name.length; j++) next[j] = c === '*' ? row[j]! || next[j - 1]! : row[j - 1]! && name[j - 1] === c;
    row = next;
  }
  return row[name.length]!;
}

/** A random string of 0..max characters drawn from `alphabet`. */
function randomText(random: () => number, alphabet: string, max: number): string {
  let s = '';
  const n = Math.floor(random() * (max + 1));
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(random() * alphabet.length)];
  return s;
}

t.test('the glob matcher agrees with the reference on 20,000 seeded random cases', async (t) => {
  const random = seeded(15);
  let mismatches = 0;
  let matched = 0;
  for (let i = 0; i < 20_000; i++) {
    // A small alphabet makes matches common; `*` runs, leading and trailing stars all occur.
    const pattern = randomText(random, 'ab*', 8);
    const name = randomText(random, 'ab', 10);
    const want = reference(pattern, name);
    if (want) matched++;
    if (new Glob(pattern).matches(name) !== want) {
      if (mismatches++ < 5) t.fail(`${JSON.stringify(pattern)} vs ${JSON.stringify(name)}: want ${want}`);
    }
  }
  t.equal(mismatches, 0, 'no case disagrees');
  t.ok(matched > 2000 && matched < 18_000, `both outcomes are exercised (${matched} matches)`);
});

t.test('Snapshot.matchHosts (prefix narrowing + glob) equals a scan with the reference', async (t) => {
  const random = seeded(7);
  const names = new Set<string>();
  while (names.size < 300) names.add(randomText(random, 'ab-', 7) || 'x');
  const snap = snapshotOf([...names].map((n) => instance(n)));
  for (let i = 0; i < 2000; i++) {
    const pattern = randomText(random, 'ab-*', 6) + '*';
    const got = snap.matchHosts(pattern).map((inst) => inst.name).sort();
    const want = [...names].filter((n) => reference(pattern, n)).sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      t.same(got, want, `pattern ${pattern}`);
      return;
    }
  }
  t.pass('2000 patterns agree');
});

t.test('the wildcard that froze the regular expression answers (a fake snapshot, the real handler)', async (t) => {
  // One running instance named with 60 `a`s, and the pattern with ten `*a` runs before a `z` that never comes: a
  // backtracking RegExp tries every way of splitting 60 `a`s among ten stars before it fails. On the old
  // matcher this test never returns (tap's timeout fails it).
  const long = 'a'.repeat(60);
  const snap = snapshotOf([instance(long, { interfaces: [iface('eth0', ['10.99.0.60'])] }), instance('web-1')]);
  const handle = createHandler({ snapshot: () => snap, resolver: OPTS, log: silentLogger, cache: false });
  const ask = (name: string) =>
    dnsPacket.decode(Buffer.from(handle(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] }), datagramLimit(1232))!)) as DecodedPacket & { rcode: string };
  const bad = ask('*a*a*a*a*a*a*a*a*a*a*z.lexa');
  t.equal(bad.rcode, 'NXDOMAIN', 'no instance matches: NXDOMAIN');
  const good = ask('*a*a*a*a*a*a*a*a*a*a*.lexa');
  t.same(
    (good.answers ?? []).map((a) => rdata(a)),
    ['10.99.0.60'],
    'the same stars with a pattern that matches find the instance',
  );
});
