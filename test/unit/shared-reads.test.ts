import t from 'tap';
import { SharedReads } from '../../src/streams/lxd/shared-reads.js';

// SharedReads (src/streams/lxd/shared-reads.ts): concurrent callers of one key share reads, and no caller gets a
// read that began before it asked.

/** A read the test finishes by hand: its number (in start order) and what it resolves with. */
function reads() {
  const started: { n: number; finish: (v: string) => void; fail: (e: Error) => void }[] = [];
  const start = () =>
    new Promise<string>((resolve, reject) => {
      started.push({ n: started.length + 1, finish: resolve, fail: reject });
    });
  return { started, start };
}
const turn = () => new Promise((r) => setImmediate(r));

t.test('callers during a read in flight share one more read, which starts after it ends', async (t) => {
  const shared = new SharedReads<string>();
  const { started, start } = reads();
  const first = shared.read('k', start);
  t.equal(started.length, 1, 'the first caller starts a read');
  const later = Array.from({ length: 50 }, () => shared.read('k', start));
  t.equal(started.length, 1, '50 callers arriving meanwhile start nothing yet');
  started[0]!.finish('old');
  t.equal(await first, 'old', 'the first caller gets the read it started');
  await turn();
  t.equal(started.length, 2, 'one more read, started once the first ended');
  started[1]!.finish('new');
  t.same(new Set(await Promise.all(later)), new Set(['new']), 'every later caller gets that newer read, none the older one');
  await turn();
  t.equal(shared.inFlight, 0, 'nothing left in flight');
  t.equal(started.length, 2, 'two reads for 51 callers');
});

t.test('keys do not share; a failed read fails its callers and the queued read still runs', async (t) => {
  const shared = new SharedReads<string>();
  const { started, start } = reads();
  const a = shared.read('a', start);
  const b = shared.read('b', start);
  t.equal(started.length, 2, 'one read per key');
  const aLater = shared.read('a', start);
  started[0]!.fail(new Error('LXD said no'));
  await t.rejects(a, /LXD said no/, 'the failure reaches the callers of that read');
  await turn();
  t.equal(started.length, 3, 'the queued read runs anyway');
  started[2]!.finish('a2');
  t.equal(await aLater, 'a2');
  started[1]!.finish('b1');
  t.equal(await b, 'b1');
  const thrower = () => {
    throw new Error('sync');
  };
  await t.rejects(shared.read('c', thrower), /sync/, 'a start that throws is a failed read, not a throw from read()');
  await turn();
  t.equal(shared.inFlight, 0);
});

t.test('after a read ends with nobody queued, the next caller starts a fresh read', async (t) => {
  const shared = new SharedReads<string>();
  const { started, start } = reads();
  const one = shared.read('k', start);
  started[0]!.finish('1');
  await one;
  await turn();
  const two = shared.read('k', start);
  t.equal(started.length, 2, 'a new read, not the finished one');
  started[1]!.finish('2');
  t.equal(await two, '2');
});
