import t from 'tap';
import { Documents, MAX_DOCUMENTS, type Doc } from '../../src/servers/rest/documents.js';
import type { Snapshot } from '../../src/streams/index.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';

// Per-document change indexes and their watchers (blocking queries, SSE), on scripted snapshots.
let snap: Snapshot = snapshotOf(Array.from({ length: 100 }, (_, i) => instance(`h${i}`, { interfaces: [iface('eth0', [`10.0.0.${i + 1}`])] })));
let renders = 0;
const docs = new Documents({
  snapshot: () => snap,
  suffix: () => 'lexa',
  render: (key, s) => {
    renders++;
    if (key === 'all') return JSON.stringify([...s.running()].map((i) => i.name).sort());
    const found = s.hosts(key);
    return found.length ? JSON.stringify(found.map((i) => i.interfaces)) : null;
  },
});
const readdress = (name: string, ip: string) => {
  const inst = instance(name, { interfaces: [iface('eth0', [ip])] });
  snap = snap.withInstance(inst, snap.updatedAt + 1);
  docs.changed();
};

t.test('an index moves only when its own document changes', async (t) => {
  const a = docs.get('h1');
  const b = docs.get('h2');
  const all = docs.get('all');
  t.not(a.index, b.index, 'indexes come from one counter');
  t.ok(a.index > Date.now() - 60_000, 'seeded with the start time, so a restarted lexa hands out larger ones');
  readdress('h1', '10.9.9.9');
  t.ok(docs.get('h1').index > a.index, "h1's index moved");
  t.equal(docs.get('h2').index, b.index, "h2's did not");
  t.equal(docs.get('all').index, all.index, 'nor the list, whose content (names) is the same');
  t.equal(docs.get('nobody').body, null, 'a missing host is a document too (404)');
});

t.test('thousands of waiters: each woken only by its document, and idle ones cost no CPU', async (t) => {
  const WAITERS = 5_000;
  const woken: string[] = [];
  const cancels: (() => void)[] = [];
  for (let i = 0; i < WAITERS; i++) {
    const key = `h${i % 100}`;
    cancels.push(docs.watch(key, docs.get(key).index, (d: Doc) => woken.push(d.key)));
  }
  t.equal(docs.waiting, WAITERS);
  const cpu = process.cpuUsage();
  const rendersBefore = renders;
  await new Promise((r) => setTimeout(r, 1_000));
  const used = process.cpuUsage(cpu);
  t.equal(renders, rendersBefore, 'nothing is rendered while nothing changes');
  // Generous: the test runner itself uses some; a poller per waiter would use far more.
  t.ok(used.user + used.system < 100_000, `idle second with ${WAITERS} waiters used ${(used.user + used.system) / 1000} ms of CPU`);
  readdress('h7', '10.7.7.7');
  t.equal(woken.length, WAITERS / 100, 'only the waiters of h7 woke');
  t.ok(woken.every((k) => k === 'h7'));
  t.equal(docs.waiting, WAITERS - WAITERS / 100, 'and they left');
  // A change to the snapshot that leaves every waited-on document as it was wakes nobody.
  snap = snap.withInstance(instance('h-new', { interfaces: [iface('eth0', ['10.1.1.1'])] }), snap.updatedAt + 1);
  docs.changed();
  t.equal(woken.length, WAITERS / 100);
  for (const cancel of cancels) cancel();
  t.equal(docs.waiting, 0, 'cancelled waiters are gone');
});

t.test('close wakes every waiter with what it has; later watches answer at once', async (t) => {
  const d = new Documents({ snapshot: () => snap, suffix: () => 'lexa', render: () => 'x' });
  const got: number[] = [];
  const first = d.get('k');
  d.watch('k', first.index, (doc) => got.push(doc.index));
  d.close();
  t.same(got, [first.index], 'woken with the same index');
  d.watch('k', first.index, (doc) => got.push(doc.index));
  t.equal(got.length, 2);
});

t.test('at most MAX_DOCUMENTS are remembered; ones with waiters are kept', async (t) => {
  const d = new Documents({ snapshot: () => snap, suffix: () => 'lexa', render: (k) => k });
  const kept = d.get('waited');
  let woke = false;
  d.watch('waited', kept.index, () => (woke = true));
  for (let i = 0; i < MAX_DOCUMENTS + 50; i++) d.get(`n${i}`);
  t.equal(d.get('waited').index, kept.index, 'the waited-on document kept its index');
  t.notOk(woke);
  const again = d.get('n0');
  t.ok(again.index > kept.index, 'a forgotten document comes back with a new, larger index');
});

t.test('with `depends`, a new snapshot whose parts of a document are the same objects renders nothing; a change to them still wakes', async (t) => {
  let s: Snapshot = snapshotOf(Array.from({ length: 50 }, (_, i) => instance(`d${i}`, { interfaces: [iface('eth0', [`10.1.0.${i + 1}`])] })));
  const rendered: string[] = [];
  const own = new Documents({
    snapshot: () => s,
    suffix: () => 'lexa',
    render: (key, snapshot) => {
      rendered.push(key);
      return JSON.stringify(snapshot.hosts(key).map((i) => i.interfaces));
    },
    // A host's document is made of that host's instances: the snapshot keeps them when others change.
    depends: (key, snapshot) => snapshot.hosts(key),
  });
  const woken: string[] = [];
  for (let i = 0; i < 50; i++) own.watch(`d${i}`, own.get(`d${i}`).index, (d) => woken.push(d.key));
  rendered.length = 0;
  for (let round = 0; round < 20; round++) {
    s = s.withInstance(instance('d7', { interfaces: [iface('eth0', [`10.2.0.${round + 1}`])] }), s.updatedAt + 1);
    own.changed();
  }
  t.same(rendered, ['d7'], 'only d7 was rendered (once: its watcher left after the first wake)');
  t.same(woken, ['d7']);
  own.close();
});
