import { Subject } from 'rxjs';
import t from 'tap';
import { restApp } from '../../src/servers/rest/index.js';
import type { Snapshot } from '../../src/streams/index.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// GET /services/<name>: one service's endpoints as a document of its own, with an X-Lexa-Index that moves only
// when that service's endpoints do (the per-service index of blocking queries). In-process app, hand-built
// snapshots; no LXD.

const web = (name: string, v4: string, extra: Partial<Parameters<typeof service>[1]> = {}) =>
  instance(name, { interfaces: [iface('eth0', [v4])], services: [service('web', { port: 8080, ...extra })] });

t.test('a service document: its endpoints, sorted; 404 for none; its index moves only with it', async (t) => {
  let snap: Snapshot = snapshotOf([web('b-2', '10.0.0.2'), web('a-1', '10.0.0.1', { tags: ['blue'] }), instance('db', { interfaces: [iface('eth0', ['10.0.0.9'])] })]);
  const updates = new Subject<void>();
  const app = restApp({ suffix: 'lexa', snapshot: () => snap, updates });
  const server = app.listen(0, '127.0.0.1');
  t.teardown(() => void server.close());
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const r1 = await fetch(`${base}/services/WEB`);
  t.equal(r1.status, 200);
  const i1 = Number(r1.headers.get('x-lexa-index'));
  t.ok(i1 > 0, 'carries an index');
  const doc = (await r1.json()) as { service: string; endpoints: { host: string; ipv4: string[]; port: number; tags: string[] }[] };
  t.equal(doc.service, 'web');
  t.same(doc.endpoints.map((e) => [e.host, e.ipv4, e.port, e.tags]), [
    ['a-1.lexa', ['10.0.0.1'], 8080, ['blue']],
    ['b-2.lexa', ['10.0.0.2'], 8080, []],
  ], 'sorted by host');
  const nope = await fetch(`${base}/services/nope`);
  t.equal(nope.status, 404);
  t.match(await nope.json(), { error: /no running instance offers a service named "nope"/ });

  // A change that does not touch web: a blocking query on web keeps waiting, its index does not move.
  const waiting = fetch(`${base}/services/web?index=${i1}&wait=3s`).then(async (r) => ({ at: Date.now(), index: Number(r.headers.get('x-lexa-index')), body: await r.text() }));
  await new Promise((r) => setTimeout(r, 200));
  snap = snap.withInstance(instance('db', { interfaces: [iface('eth0', ['10.0.0.10'])] }));
  updates.next();
  await new Promise((r) => setTimeout(r, 300));
  // Now web changes: the waiter wakes at once with the new document and a larger index.
  const changedAt = Date.now();
  snap = snap.withInstance(web('b-2', '10.0.0.22'));
  updates.next();
  const woke = await waiting;
  t.ok(woke.at - changedAt < 1000, `woke ${woke.at - changedAt} ms after web changed, not at the 3 s timeout`);
  t.ok(woke.index > i1, 'a larger index');
  t.match(woke.body, /10\.0\.0\.22/);
  const same = await fetch(`${base}/services/web`);
  t.equal(Number(same.headers.get('x-lexa-index')), woke.index, 'stable while nothing changes');
  await same.text();
});
