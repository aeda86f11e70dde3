import t, { type Test } from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { Reflector, SnapshotStore } from '../../src/streams/index.js';
import type { LxdInstance } from '../../src/streams/lxd/lxd-model.js';
import { FakeClock, settle } from '../helpers/fake-clock.js';
import { FakeLxd, lifecycle, lxdInstance } from '../helpers/fake-lxd.js';

// LXD answers and events of the wrong shape, against a FAKE LXD (no LXD involved): found by `npm run fuzz` (lxd
// target). Each must cost at most the odd record, never the reflector or the store.

function rig(t: Test) {
  const clock = new FakeClock();
  const lxd = new FakeLxd(clock);
  const store = new SnapshotStore();
  const reflector = new Reflector(lxd, store, {
    project: 'default', allProjects: false, resyncIntervalMs: 0, watchdogMs: 25_000, logger: memoryLogger(), clock, random: () => 0.5,
  });
  t.teardown(() => reflector.stop());
  const connect = async () => {
    reflector.start();
    await settle();
    lxd.socket.open();
    await settle();
  };
  return { lxd, store, connect };
}

t.test('an instance whose fields have the wrong types is read as if they were absent; the store keeps folding', async (t) => {
  const { lxd, store, connect } = rig(t);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1' }));
  // Before: the name (a number) reached the snapshot's index and threw inside the store's fold, which ends the
  // store's stream: no list or event was applied after it.
  const odd = { ...lxdInstance('odd', { v4: '10.0.0.9' }), name: 42, profiles: 'default', expanded_config: { 'user.lexa.service.x.port': 80 } };
  lxd.instances.set('default/odd', odd as unknown as LxdInstance);
  await connect();
  t.equal(store.current.synced, true, 'the list landed');
  t.equal(store.current.instances.get('default/web-1')?.running, true, 'with the good instance');
  lxd.put(lxdInstance('web-2', { v4: '10.0.0.2' }));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/web-2'));
  await settle();
  t.equal(store.current.instances.get('default/web-2')?.running, true, 'and the store still applies events after it');
});

t.test('events whose fields have the wrong types, or a source that is not percent-encoding, are ignored', async (t) => {
  const { lxd, store, connect } = rig(t);
  await connect();
  // Before: `action.startsWith is not a function` and decodeURIComponent's URIError, thrown in the socket's
  // message handler: in the daemon, an uncaught exception.
  const bad = [
    { type: 'lifecycle', metadata: { action: 7, source: '/1.0/instances/web-1' } },
    { type: 'lifecycle', metadata: { action: 'instance-started', source: '/1.0/instances/%E0%A4%A' } },
    { type: 'lifecycle', metadata: { action: 'profile-updated', source: '/1.0/profiles/%' } },
    { type: 'lifecycle', project: ['x'], metadata: { action: 'instance-started', source: { toString: 1 } } },
    { type: 'lifecycle', metadata: 'instance-started' },
  ];
  for (const ev of bad) t.doesNotThrow(() => lxd.socket.emit('message', Buffer.from(JSON.stringify(ev)), false), JSON.stringify(ev));
  await settle();
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1' }));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/web-1'));
  await settle();
  t.equal(store.current.instances.get('default/web-1')?.running, true, 'a good event after them is applied');
});
