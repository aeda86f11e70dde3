import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import { Subject } from 'rxjs';
import t, { type Test } from 'tap';
import { answerBlocking, blockingParams, JITTER_FRACTION } from '../../src/servers/rest/blocking.js';
import { Documents, type Doc } from '../../src/servers/rest/documents.js';
import { restApp } from '../../src/servers/rest/index.js';
import type { Snapshot } from '../../src/streams/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// The Consul API over real HTTP on loopback, in-process, from hand-built snapshots (no LXD): Consul's headers,
// per-result indexes (a change to web wakes no watcher of db), index resets, the read-only answer, ?dc, bad
// filters; and the blocking wait with its jitter, driven by a fake clock.

const inst = (name: string, v4: string, svc: string, port = 80) =>
  instance(name, { interfaces: [iface('eth0', [v4])], services: [service(svc, { port })] });

async function serve(t: Test, snap: () => Snapshot, updates: Subject<void>, clock = new FakeClock()) {
  const app = restApp({ suffix: 'lexa', snapshot: snap, updates, clock, datacenter: 'dc1', nodeName: 'host-1' });
  const server = app.listen(0, '127.0.0.1');
  t.teardown(() => void server.close());
  await new Promise((r) => server.once('listening', r));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
}

t.test('Consul headers, agent/self, status, and the catalog reads', async (t) => {
  const snap = snapshotOf([inst('web-1', '10.0.0.1', 'web'), inst('db-1', '10.0.0.2', 'db', 5432)]);
  const base = await serve(t, () => snap, new Subject());
  const self = await fetch(`${base}/agent/self`);
  t.equal(self.status, 200);
  t.equal(self.headers.get('x-consul-knownleader'), 'true');
  t.equal(self.headers.get('x-consul-lastcontact'), '0');
  t.match(self.headers.get('x-consul-index'), /^\d+$/);
  t.match(self.headers.get('content-type'), /^application\/json/);
  t.match(await self.json(), { Config: { Datacenter: 'dc1', NodeName: 'host-1', Version: /^1\./ } });
  t.match(await (await fetch(`${base}/status/leader`)).json(), /^127\.0\.0\.1:\d+$/);
  t.same(await (await fetch(`${base}/catalog/datacenters`)).json(), ['dc1']);
  t.same(await (await fetch(`${base}/catalog/services?dc=dc1`)).json(), { db: [], web: [] });
  t.match(await (await fetch(`${base}/health/service/web?passing`)).json(), [{ Node: { Node: 'web-1' }, Service: { Port: 80 } }]);
  t.match(await (await fetch(`${base}/catalog/service/db?filter=${encodeURIComponent('ServiceMeta.source == config')}`)).json(), [{ ServicePort: 5432 }]);
  t.same(await (await fetch(`${base}/catalog/node/nope`)).json(), null);
  const head = await fetch(`${base}/catalog/nodes`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD reads');
});

t.test('writes are 403, another datacenter 500, bad parameters 400, unknown paths 404', async (t) => {
  const snap = snapshotOf([inst('web-1', '10.0.0.1', 'web')]);
  const base = await serve(t, () => snap, new Subject());
  for (const [method, path] of [['PUT', '/agent/service/register'], ['PUT', '/catalog/register'], ['DELETE', '/kv/x'], ['POST', '/txn']]) {
    const r = await fetch(`${base}${path}`, { method, body: '{}' });
    t.equal(r.status, 403, `${method} ${path}`);
    t.match(await r.text(), /read-only; it is LXD's/);
  }
  const dc = await fetch(`${base}/catalog/services?dc=elsewhere`);
  t.equal(dc.status, 500);
  t.equal(await dc.text(), 'No path to datacenter', "Consul's words");
  const bad: [string, RegExp][] = [
    ['/health/service/web?filter=Nope%20%3D%3D%201', /selector "Nope" is not valid/],
    [`/health/service/web?filter=${'('.repeat(40)}`, /nested deeper/],
    [`/health/service/web?filter=${'a'.repeat(5000)}`, /longer than 2048/],
    ['/health/service/web?passing=maybe', /passing must be/],
    ['/health/service/web?node-meta=novalue', /key:value/],
    [`/health/service/web?${Array.from({ length: 33 }, (_, i) => `tag=t${i}`).join('&')}`, /at most 32 tag/],
    ['/health/service/web?filter=a&filter=b', /filter must be given once/],
    ['/health/service/web?index=abc', /index must be a whole number/],
  ];
  for (const [path, re] of bad) {
    const r = await fetch(`${base}${path}`);
    t.equal(r.status, 400, path.slice(0, 60));
    t.match(await r.text(), re);
  }
  const none = await fetch(`${base}/acl/tokens`);
  t.equal(none.status, 404);
});

t.test('blocking queries: each result has its own index; a change to web wakes no watcher of db', async (t) => {
  let snap = snapshotOf([inst('web-1', '10.0.0.1', 'web'), inst('db-1', '10.0.0.2', 'db', 5432)]);
  const updates = new Subject<void>();
  const base = await serve(t, () => snap, updates);
  const first = await fetch(`${base}/health/service/db`);
  const index = Number(first.headers.get('x-consul-index'));
  await first.text();
  t.equal(Number((await fetch(`${base}/health/service/db?index=0`)).headers.get('x-consul-index')), index, 'index=0 answers at once');
  t.equal(Number((await fetch(`${base}/health/service/db?index=${index + 1000}&wait=5s`)).headers.get('x-consul-index')), index, 'an index from the future answers at once (Consul resets)');
  t.equal((await fetch(`${base}/health/service/db?wait=5s`)).status, 200, 'wait without index is ignored, as Consul does');

  const waiting = fetch(`${base}/health/service/db?index=${index}&wait=5m`).then(async (r) => ({ index: Number(r.headers.get('x-consul-index')), body: await r.text() }));
  // Let the request reach the server and start waiting before anything changes.
  await fetch(`${base}/catalog/datacenters`);
  // web changes: the db watcher must not wake. Had it woken, it would answer with db's unchanged body below.
  snap = snap.withInstance(inst('web-1', '10.0.0.11', 'web'));
  updates.next();
  // Now db changes: the watcher answers with db's new address and a larger index.
  snap = snap.withInstance(inst('db-1', '10.0.0.22', 'db', 5432));
  updates.next();
  const woke = await waiting;
  t.match(woke.body, /10\.0\.0\.22/, 'woken by the db change, not the web one');
  t.ok(woke.index > index, 'a larger index');
  const web = await fetch(`${base}/health/service/web`);
  t.not(Number(web.headers.get('x-consul-index')), woke.index, 'web has an index of its own');
  await web.text();
});

t.test('the wait: Consul default and cap, stretched by at most wait/16 of jitter, on a fake clock', async (t) => {
  const clock = new FakeClock();
  const docs = new Documents({ render: () => '[]', snapshot: () => snapshotOf([]), suffix: () => '' });
  const index = docs.get('q').index;
  const sent: Doc[] = [];
  const res = Object.assign(new EventEmitter(), { writableEnded: false, destroyed: false }) as unknown as Response;
  const req = { query: { index: String(index), wait: '16s' } } as unknown as Request;
  // random() = 0.999: the jitter is 0.999 × 16 s / 16 = 999 ms.
  answerBlocking(req, res, docs, 'q', (_res, doc) => void sent.push(doc), () => 0.999, clock, 'ignore');
  await clock.advance(16_998);
  t.equal(sent.length, 0, 'still waiting within the jitter');
  await clock.advance(1);
  t.equal(sent.length, 1, 'answered at wait + jitter');
  t.equal(blockingParams({ wait: '5s' }, () => 0, 'ignore'), undefined, 'wait alone: not blocking (Consul)');
  t.same(blockingParams({ wait: '5s' }, () => 0), { error: 'wait needs index' }, "wait alone: lexa's own API says so");
  const jittered = blockingParams({ index: '1' }, () => 0.5, 'ignore');
  t.same(jittered, { index: 1, waitMs: 5 * 60_000 * (1 + 0.5 * JITTER_FRACTION) }, 'no wait: 5 minutes, plus jitter');
});
