import t, { type Test } from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { RECONNECT_BASE_MS, RECONNECT_MAX_MS } from '../../src/time/backoff.js';
import { WATCHDOG_MIN_TICK_MS } from '../../src/streams/lxd/connection.js';
import { Reflector, SnapshotStore, type ReflectorOptions } from '../../src/streams/index.js';
import { FIRST_ADDRESS_POLL_MS, FIRST_ADDRESS_WINDOW_MS, LEASE_BESIDE_MS, SETTLE_DELAYS_MS } from '../../src/streams/lxd/refetch.js';
import type { Snapshot } from '../../src/streams/state/snapshot.js';
import { FakeClock, settle } from '../helpers/fake-clock.js';
import { FakeLxd, lifecycle, lxdInstance } from '../helpers/fake-lxd.js';
import { instance, seeded } from '../helpers/model.js';

// Unit tests of the reflector against a FAKE LXD (test/helpers/fake-lxd.ts) and a fake clock: no LXD, no waiting.
// test/integration/lxd-watch.test.ts runs the same reflector against the real LXD.

const WATCHDOG_MS = 25_000;
const RESYNC_MS = 300_000;

function rig(t: Test, opts: Partial<ReflectorOptions> = {}) {
  const clock = new FakeClock();
  const lxd = new FakeLxd(clock);
  const store = new SnapshotStore();
  const logger = memoryLogger();
  const reflector = new Reflector(lxd, store, {
    project: 'default',
    allProjects: false,
    resyncIntervalMs: 0,
    watchdogMs: WATCHDOG_MS,
    logger,
    clock,
    random: () => 0.5,
    ...opts,
  });
  t.teardown(() => reflector.stop());
  /** Starts the reflector and lets "LXD" accept the socket and answer the list. */
  const connect = async () => {
    reflector.start();
    await settle();
    lxd.socket.open();
    await settle();
  };
  const addrs = (name: string, project = 'default') => store.current.instances.get(`${project}/${name}`)?.interfaces[0];
  const logged = (msg: string) => logger.lines.filter((l) => l['msg'] === msg);
  return { clock, lxd, store, logger, reflector, connect, addrs, logged };
}

const started = (name: string) => lifecycle('instance-started', `/1.0/instances/${name}`);

t.test('list, then watch: events that arrive during the list are applied after it', async (t) => {
  const { lxd, store, reflector, addrs } = rig(t);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.put(lxdInstance('web-2', { status: 'Stopped' }));
  const list = lxd.hold(/^\/1\.0\/instances\?/);
  reflector.start();
  await settle();
  t.equal(lxd.socket.query, 'type=lifecycle&project=default', 'the events socket is opened first');
  t.same(lxd.requests, [], 'nothing is listed before the socket is open');
  lxd.socket.open();
  await settle();
  t.ok(list.arrived, 'then the list is asked for');

  // web-2 starts while the (older) list is on its way
  lxd.put(lxdInstance('web-2', { v4: '10.0.0.2', v6: 'fd42::2' }));
  lxd.socket.send(started('web-2'));
  await settle();
  t.equal(lxd.reads('web-2'), 0, 'the event waits for the list');
  t.equal(store.current.synced, false);

  list.release();
  await settle();
  t.equal(store.current.synced, true);
  t.equal(store.current.connected, true);
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.1'], ipv6: ['fd42::1'], trustedIpv4: ['10.0.0.1'], trustedIpv6: ['fd42::1'] });
  t.equal(lxd.reads('web-2'), 1, 'the buffered event is applied after the list');
  t.equal(store.current.instances.get('default/web-2')?.running, true, 'and wins over the older list');
  t.same(store.current.members.get('fakehost')?.ipv4, ['10.0.0.1'], 'a standalone LXD is its own member');
});

t.test('reconnect: full-jitter backoff on the fake clock, reset after a healthy connection', async (t) => {
  const draws: number[] = [];
  const rng = seeded(7);
  const { clock, lxd, store, reflector, connect, logged } = rig(t, { random: () => (draws.push(rng()), draws.at(-1)!) });
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  await connect();
  t.equal(store.current.connected, true);

  // LXD goes away: every attempt fails before the socket opens; the delay bound doubles up to the cap.
  const bounds = [1_000, 2_000, 4_000, 5_000, 5_000];
  for (const [i, bound] of bounds.entries()) {
    lxd.socket.drop();
    const droppedAt = clock.now();
    const before = lxd.sockets.length;
    await clock.advance(RECONNECT_MAX_MS);
    t.equal(lxd.sockets.length, before + 1, `attempt ${i + 1} made`);
    const delay = lxd.socket.createdAt - droppedAt;
    t.ok(delay >= 0 && delay < bound, `attempt ${i + 1} waited ${delay} ms, within [0, ${bound})`);
    t.ok(Math.abs(delay - draws.at(-1)! * bound) < 1e-3, 'the jitter is the injected random times the bound');
    t.equal(store.current.connected, false);
    t.equal(store.current.synced, true, 'the last snapshot keeps answering');
    t.ok(store.current.hasHost('web-1'));
  }
  t.equal(bounds.at(-1), RECONNECT_MAX_MS);

  // LXD is back; the connection stays up longer than the watchdog timeout, so it counts as healthy.
  lxd.socket.open();
  await settle();
  t.equal(store.current.connected, true);
  t.equal(logged('lxd reconnected').length, 1);
  for (let i = 0; i < 4; i++) {
    lxd.socket.keepalive();
    await clock.advance(10_000);
  }
  lxd.socket.drop();
  const droppedAt = clock.now();
  await clock.advance(RECONNECT_MAX_MS);
  const delay = lxd.socket.createdAt - droppedAt;
  t.ok(delay < RECONNECT_BASE_MS, `after a healthy connection the backoff starts over (${delay} ms)`);
  t.ok(Math.abs(delay - draws.at(-1)! * RECONNECT_BASE_MS) < 1e-3);
  await reflector.stop();
});

t.test('a refused events upgrade is logged with LXD reason and retried', async (t) => {
  const { clock, lxd, reflector, logged } = rig(t);
  reflector.start();
  await settle();
  lxd.socket.refuse(500, 'Project not found');
  await settle();
  t.match(logged('lxd connection failed')[0]?.['error'], /HTTP 500 from LXD: Project not found/);
  await clock.advance(RECONNECT_MAX_MS);
  t.equal(lxd.sockets.length, 2);
});

t.test('an events upgrade nobody answers (a frozen member: TCP accepted, then silence) is given up after the watchdog', async (t) => {
  const { clock, lxd, store, reflector, logged } = rig(t);
  reflector.start();
  await settle();
  await clock.advance(WATCHDOG_MS);
  t.equal(lxd.sockets[0]!.readyState, lxd.sockets[0]!.CLOSED, 'the unanswered socket is terminated');
  t.equal(lxd.sockets[0]!.closedAt! - lxd.sockets[0]!.createdAt, WATCHDOG_MS, 'at the watchdog timeout');
  t.match(logged('lxd connection failed')[0]?.['error'], `events: no answer to the upgrade within ${WATCHDOG_MS} ms`);
  t.equal(store.current.connected, false);
  await clock.advance(RECONNECT_MAX_MS);
  t.equal(lxd.sockets.length, 2, 'and a new connection is attempted (through the next member, in a cluster)');
  lxd.socket.open();
  await settle();
  t.equal(store.current.connected, true, 'one that answers connects');
  await clock.advance(WATCHDOG_MS);
  t.equal(lxd.sockets.length, 2, 'no upgrade timer outlives the opening');
});

t.test('watchdog: a silent socket is dropped and reconnected; LXD pings keep a quiet one alive', async (t) => {
  const { clock, lxd, store, connect, logged } = rig(t);
  await connect();
  const tick = Math.max(WATCHDOG_MIN_TICK_MS, WATCHDOG_MS / 4);

  // Quiet but alive: no events for a minute, LXD answers our pings.
  await clock.advance(60_000);
  t.equal(lxd.sockets.length, 1, 'a quiet LXD that answers pings is kept');
  t.ok(lxd.socket.pings >= 60_000 / tick - 1, `lexa pinged (${lxd.socket.pings})`);

  // Hung (SIGSTOP): nothing comes back.
  lxd.socket.hung = true;
  const hungAt = clock.now();
  await clock.advance(WATCHDOG_MS + tick);
  t.equal(lxd.sockets[0]!.readyState, lxd.sockets[0]!.CLOSED, 'the silent socket is terminated');
  t.ok(lxd.sockets[0]!.closedAt! - hungAt <= WATCHDOG_MS + tick, 'within the watchdog timeout and one tick');
  t.equal(logged('lxd went silent; reconnecting').length, 1);
  t.equal(store.current.connected, false);
  await clock.advance(RECONNECT_BASE_MS);
  t.equal(lxd.sockets.length, 2, 'and a new connection is attempted (the old one was healthy: short backoff)');
});

t.test('settle: re-reads on the schedule until addresses are complete', async (t) => {
  const { clock, lxd, connect, addrs } = rig(t);
  lxd.put(lxdInstance('web-1', { status: 'Stopped' }));
  await connect();
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1' }));
  lxd.socket.send(started('web-1'));
  await settle();
  t.equal(lxd.reads('web-1'), 1);
  t.same(addrs('web-1')?.ipv4, ['10.0.0.1']);

  const [d0, d1, d2] = SETTLE_DELAYS_MS as [number, number, number];
  await clock.advance(d0 - 1);
  t.equal(lxd.reads('web-1'), 1, 'not before the first delay');
  await clock.advance(1);
  t.equal(lxd.reads('web-1'), 2, 'first settle read');
  await clock.advance(d1);
  t.equal(lxd.reads('web-1'), 3, 'second settle read');
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' })); // SLAAC, no event
  await clock.advance(d2);
  t.equal(lxd.reads('web-1'), 4);
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.1'], ipv6: ['fd42::1'], trustedIpv4: ['10.0.0.1'], trustedIpv6: ['fd42::1'] });
  await clock.advance(60_000);
  t.equal(lxd.reads('web-1'), 4, 'complete: no more reads');
});

t.test('settle gives up after its schedule, and stops on a newer event or when the instance stops', async (t) => {
  const { clock, lxd, connect } = rig(t);
  lxd.put(lxdInstance('v4only', { v4: '10.0.0.1' }));
  lxd.put(lxdInstance('gone', { v4: '10.0.0.2' }));
  lxd.put(lxdInstance('stops', { v4: '10.0.0.3' }));
  await connect();
  for (const n of ['v4only', 'gone', 'stops']) lxd.socket.send(started(n));
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  t.same(['v4only', 'gone', 'stops'].map((n) => lxd.reads(n)), [2, 2, 2]);

  lxd.delete('gone');
  lxd.socket.send(lifecycle('instance-deleted', '/1.0/instances/gone'));
  lxd.put(lxdInstance('stops', { status: 'Stopped' }));
  await clock.advance(60_000);
  t.equal(lxd.reads('v4only'), 1 + SETTLE_DELAYS_MS.length, 'an IPv4-only instance is read on the whole schedule, then left alone');
  t.equal(lxd.reads('gone'), 2, 'a deletion ends the settle loop');
  t.equal(lxd.reads('stops'), 3, 'a read that finds it stopped ends the loop');
  t.equal(clock.pending, 1, 'only the watchdog is left');
});

t.test('a newer settle loop supersedes an older one', async (t) => {
  const { clock, lxd, connect } = rig(t);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1' }));
  await connect();
  lxd.socket.send(started('web-1'));
  await clock.advance(SETTLE_DELAYS_MS[0]! + SETTLE_DELAYS_MS[1]! + 10);
  t.equal(lxd.reads('web-1'), 3);
  lxd.socket.send(lifecycle('instance-restarted', '/1.0/instances/web-1'));
  await clock.advance(60_000);
  t.equal(lxd.reads('web-1'), 3 + 1 + SETTLE_DELAYS_MS.length, 'one schedule after the newer event, not two interleaved');
});

t.test('stop() during a settle loop ends it and leaves no timer', async (t) => {
  const { clock, lxd, reflector, connect, store } = rig(t, { resyncIntervalMs: RESYNC_MS });
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1' }));
  await connect();
  lxd.socket.send(started('web-1'));
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  const held = lxd.hold(/web-1/);
  await clock.advance(SETTLE_DELAYS_MS[1]!);
  t.ok(held.arrived, 'a settle read is in flight');
  t.ok(clock.pending > 0);
  await reflector.stop();
  t.equal(clock.pending, 0, 'no watchdog, resync or settle timer is left');
  t.equal(lxd.socket.readyState, lxd.socket.CLOSED, 'the socket is closed');
  const reads = lxd.reads('web-1');
  const version = store.current.version;
  held.release();
  await clock.advance(60_000);
  t.equal(lxd.reads('web-1'), reads, 'no read after stop');
  t.equal(lxd.sockets.length, 1, 'no reconnect after stop');
  t.equal(store.current.version, version, 'nothing changes the snapshot after stop');
  t.equal(store.current.hasHost('web-1'), true, 'the store keeps its last snapshot');
});

t.test('stop() while waiting to reconnect returns at once', async (t) => {
  const { clock, lxd, reflector } = rig(t);
  reflector.start();
  await settle();
  lxd.socket.drop();
  await settle();
  t.equal(clock.pending, 1, 'the backoff timer');
  await reflector.stop();
  t.equal(clock.pending, 0);
});

t.test('profile-updated re-reads exactly the instances using that profile, in its project', async (t) => {
  const { lxd, connect, store } = rig(t, { allProjects: true });
  lxd.put(lxdInstance('a', { v4: '10.0.0.1', v6: 'fd42::1', profiles: ['default', 'web'] }));
  lxd.put(lxdInstance('b', { v4: '10.0.0.2', v6: 'fd42::2', profiles: ['default'] }));
  lxd.put(lxdInstance('c', { status: 'Stopped', profiles: ['web'] }));
  lxd.put(lxdInstance('d', { v4: '10.0.1.1', v6: 'fd42::11', profiles: ['web'], project: 'other' }));
  await connect();
  t.equal(lxd.socket.query, 'type=lifecycle&all-projects=true');
  t.same(store.current.instances.get('default/a')?.profiles, ['default', 'web'], 'membership is in the snapshot');

  lxd.put(lxdInstance('b', { v4: '10.0.0.2', v6: 'fd42::2', profiles: ['default', 'web'] }));
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/b'));
  await settle();
  t.same(store.current.instances.get('default/b')?.profiles, ['default', 'web'], 'a profile attachment is a change');

  const before = lxd.requests.length;
  lxd.socket.send(lifecycle('profile-updated', '/1.0/profiles/web'));
  await settle();
  t.same(lxd.requests.slice(before).map((p) => p.replace(/\?.*/, '')).sort(), ['/1.0/instances/a', '/1.0/instances/b', '/1.0/instances/c']);
});

t.test('instance-deleted drops at once; instance-renamed drops the old name and reads the new', async (t) => {
  const { lxd, connect, store } = rig(t);
  lxd.put(lxdInstance('old', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.put(lxdInstance('doomed', { v4: '10.0.0.2', v6: 'fd42::2' }));
  await connect();
  const before = lxd.requests.length;
  lxd.socket.send(lifecycle('instance-deleted', '/1.0/instances/doomed'));
  await settle();
  t.equal(store.current.instances.has('default/doomed'), false);
  t.equal(lxd.requests.length, before, 'a deletion needs no read');

  lxd.delete('old');
  lxd.put(lxdInstance('new', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.socket.send(lifecycle('instance-renamed', '/1.0/instances/new', { old_name: 'old' }));
  await settle();
  t.same([...store.current.instances.keys()], ['default/new']);
  t.equal(store.current.hasHost('old'), false);
  t.equal(store.current.hosts('new')[0]?.interfaces[0]?.ipv4[0], '10.0.0.1');
});

t.test('a 404 on re-read removes the instance; other errors leave it as it was', async (t) => {
  const { lxd, connect, store, logged } = rig(t);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.put(lxdInstance('web-2', { v4: '10.0.0.2', v6: 'fd42::2' }));
  await connect();
  lxd.delete('web-1');
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-1'));
  lxd.script(/web-2/, { status: 500, error: 'database is locked' });
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-2'));
  await settle();
  t.equal(store.current.instances.has('default/web-1'), false);
  t.equal(store.current.hasHost('web-2'), true);
  t.match(logged('lxd instance read failed')[0], { instance: 'default/web-2', error: /database is locked/ });
});

t.test('events during a re-read coalesce into one more read', async (t) => {
  const { lxd, connect, addrs } = rig(t);
  lxd.put(lxdInstance('web-1', { status: 'Stopped' }));
  await connect();
  const held = lxd.hold(/web-1/);
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-1'));
  await settle();
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  for (let i = 0; i < 5; i++) lxd.socket.send(started('web-1'));
  await settle();
  t.equal(lxd.reads('web-1'), 1, 'one read in flight at a time');
  held.release();
  await settle();
  t.equal(lxd.reads('web-1'), 2, 'five events, one more read');
  t.same(addrs('web-1')?.ipv6, ['fd42::1']);
});

t.test('a list catches an instance that just started: it is settled, an old one is not', async (t) => {
  const { clock, lxd, connect, addrs } = rig(t);
  lxd.put(lxdInstance('fresh', { v4: '10.0.0.1', lastUsedAt: clock.now() - 1_000 }));
  lxd.put(lxdInstance('old', { v4: '10.0.0.2', lastUsedAt: clock.now() - 3_600_000 }));
  await connect();
  lxd.put(lxdInstance('fresh', { v4: '10.0.0.1', v6: 'fd42::1', lastUsedAt: clock.now() - 1_000 }));
  await clock.advance(10_000);
  t.same(addrs('fresh')?.ipv6, ['fd42::1']);
  t.equal(lxd.reads('fresh'), 1);
  t.equal(lxd.reads('old'), 0);
});

t.test('periodic resync replaces the snapshot', async (t) => {
  const { clock, lxd, connect, store, logged } = rig(t, { resyncIntervalMs: RESYNC_MS });
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  await connect();
  // an event LXD never sent
  lxd.put(lxdInstance('web-2', { v4: '10.0.0.2', v6: 'fd42::2' }));
  lxd.delete('web-1');
  await clock.advance(RESYNC_MS);
  t.same([...store.current.instances.keys()], ['default/web-2']);
  t.equal(logged('lxd resynced').length, 1);
  t.equal(store.current.listedAt, clock.now());
});

t.test('SnapshotStore: snapshot$ replays the latest, emits each change once, current reads it', async (t) => {
  const store = new SnapshotStore();
  const seen: Snapshot[] = [];
  const sub = store.snapshot$.subscribe((s) => seen.push(s));
  t.equal(seen.length, 1, 'the current snapshot on subscribe');
  t.equal(seen[0], store.current);
  t.equal(store.current.synced, false);

  store.dispatch({ type: 'listed', instances: [instance('web-1')], members: [], clustered: false, at: 1 });
  t.equal(seen.length, 2);
  t.equal(store.current.synced, true);
  t.equal(store.current, seen[1]);
  store.dispatch({ type: 'instance', instance: instance('web-1'), at: 2 });
  store.dispatch({ type: 'instance-gone', key: 'default/nope', at: 3 });
  store.dispatch({ type: 'connection', connected: false, at: 4 });
  t.equal(seen.length, 2, 'actions that change nothing emit nothing');
  store.dispatch({ type: 'connection', connected: true, at: 5 });
  t.equal(seen.length, 3);
  t.equal(store.current.connected, true);

  const late: Snapshot[] = [];
  store.snapshot$.subscribe((s) => late.push(s)).unsubscribe();
  t.same(late, [store.current], 'a late subscriber gets the latest only');
  sub.unsubscribe();
});

t.test('resync during events: a re-read newer than the list is not overwritten by it', async (t) => {
  const { clock, lxd, connect, store, addrs } = rig(t, { resyncIntervalMs: RESYNC_MS });
  lxd.put(lxdInstance('web-1', { status: 'Stopped' }));
  await connect();

  // The periodic list is sent, and LXD answers it with what it has now: web-1 stopped. The answer takes a while
  // (~1–2 s for 200 instances).
  const list = lxd.hold(/^\/1\.0\/instances\?/);
  await clock.advance(RESYNC_MS);
  t.ok(list.arrived, 'the resync list is in flight');

  // Meanwhile web-1 starts: the event arrives and a read would find it running with its addresses.
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.socket.send(started('web-1'));
  await settle();

  // The older list lands.
  list.release();
  await settle();
  t.equal(store.current.instances.get('default/web-1')?.running, true, 'web-1 is running, as LXD says');
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.1'], ipv6: ['fd42::1'], trustedIpv4: ['10.0.0.1'], trustedIpv6: ['fd42::1'] });
  await clock.advance(RESYNC_MS - 1);
  t.equal(store.current.instances.get('default/web-1')?.running, true, 'and stays so until the next resync');
});

t.test('resync during a settle loop: a complete read that lands during the list survives it', async (t) => {
  const { clock, lxd, connect, addrs } = rig(t, { resyncIntervalMs: RESYNC_MS });
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  await connect();

  // Just before the resync, web-1's NIC is reconfigured: new addresses arrive one by one, with no event.
  await clock.advance(RESYNC_MS - 200);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.9' }));
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-1'));
  await clock.advance(50);
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.9'], ipv6: [], trustedIpv4: ['10.0.0.9'], trustedIpv6: [] });

  // The resync list is answered with that half-way state and takes its time.
  const list = lxd.hold(/^\/1\.0\/instances\?/);
  await clock.advance(150);
  t.ok(list.arrived);
  // The IPv6 arrives; the settle read finds the addresses complete and ends its loop.
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.9', v6: 'fd42::9' }));
  await clock.advance(SETTLE_DELAYS_MS[1]!);
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.9'], ipv6: ['fd42::9'], trustedIpv4: ['10.0.0.9'], trustedIpv6: ['fd42::9'] });

  list.release();
  await clock.advance(60_000);
  t.same(addrs('web-1'), { name: 'eth0', ipv4: ['10.0.0.9'], ipv6: ['fd42::9'], trustedIpv4: ['10.0.0.9'], trustedIpv6: ['fd42::9'] }, 'the older list did not take the IPv6 away');
});

t.test('a resync that fails still applies the events it held back', async (t) => {
  const { clock, lxd, connect, store, logged } = rig(t, { resyncIntervalMs: RESYNC_MS });
  lxd.put(lxdInstance('web-1', { status: 'Stopped' }));
  await connect();
  lxd.script(/^\/1\.0\/instances\?/, { delayMs: 1_500, status: 500, error: 'database is locked' });
  await clock.advance(RESYNC_MS);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.1', v6: 'fd42::1' }));
  lxd.socket.send(started('web-1'));
  await settle();
  t.equal(lxd.reads('web-1'), 0, 'held back during the list');
  await clock.advance(2_000);
  t.match(logged('lxd resync failed')[0]?.['error'], /database is locked/);
  t.equal(store.current.hosts('web-1')[0]?.interfaces[0]?.ipv4[0], '10.0.0.1');
});

t.test('a starting instance is read densely until its IPv4, which its DHCP lease gives before its state does', async (t) => {
  const { clock, lxd, store, connect, addrs } = rig(t);
  const mac = { 'volatile.eth0.hwaddr': '00:16:3E:AA:BB:CC' };
  lxd.put(lxdInstance('web-1', { status: 'Stopped', config: mac }));
  lxd.put(lxdInstance('web-2', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': '00:16:3e:00:00:02' } }));
  await connect();
  // Started, no address in its state yet; dnsmasq already has a lease for web-1's MAC (and one for another MAC).
  lxd.put(lxdInstance('web-1', { config: mac }));
  lxd.put(lxdInstance('web-2', { config: { 'volatile.eth0.hwaddr': '00:16:3e:00:00:02' } }));
  lxd.socket.send(started('web-1'));
  lxd.socket.send(started('web-2'));
  await settle();
  t.same(addrs('web-1')?.ipv4, [], 'no address yet');
  lxd.leases.set('lxdbr0', [
    { hostname: 'web-1', hwaddr: '00:16:3e:aa:bb:cc', address: '10.0.0.7', type: 'dynamic' },
    { hostname: 'x', hwaddr: '00:16:3e:99:99:99', address: '10.0.0.99', type: 'dynamic' },
    { hostname: 'web-1', hwaddr: '00:16:3e:aa:bb:cc', address: 'fd42::7', type: 'dynamic' },
  ]);
  const reads = lxd.reads('web-1');
  await clock.advance(2 * FIRST_ADDRESS_POLL_MS * 2);
  t.ok(lxd.reads('web-1') > reads, 'read again within a few ms, not on the slower schedule');
  t.same(addrs('web-1')?.ipv4, ['10.0.0.7'], 'the leased IPv4 (matched by MAC, case-insensitively) answers at once');
  t.same(addrs('web-2')?.ipv4, [], 'a lease for another MAC gives web-2 nothing');
  // Later reads whose state still shows no IPv4 keep the leased one: no flapping in between.
  await clock.advance(FIRST_ADDRESS_WINDOW_MS);
  t.same(addrs('web-1')?.ipv4, ['10.0.0.7'], 'kept while the state catches up');
  // The state shows the address (and the lease is gone): the state's word from now on.
  lxd.leases.set('lxdbr0', []);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.7', config: mac }));
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  t.same(addrs('web-1')?.ipv4, ['10.0.0.7']);
  lxd.put(lxdInstance('web-1', { v4: '10.0.0.8', config: mac }));
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-1'));
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  t.same(addrs('web-1')?.ipv4, ['10.0.0.8'], 'the lease no longer overrides anything');
  // A stop ends it: nothing leased outlives the instance running.
  lxd.put(lxdInstance('web-1', { status: 'Stopped', config: mac }));
  lxd.socket.send(lifecycle('instance-stopped', '/1.0/instances/web-1'));
  await clock.advance(10);
  t.equal(store.current.instances.get('default/web-1')?.running, false, 'stopped');
});

/**
 * An instance on lxdbr0 whose IPv4s come by DHCP (no static device address: only a lease vouches for them), with
 * MAC `mac` (00:16:3e:00:00:0N), these IPv4s in its state, in that order, and its SLAAC address (EUI-64 of the MAC).
 */
function dhcpInstance(name: string, mac: string, v4s: string[]) {
  const raw = lxdInstance(name, { config: { 'volatile.eth0.hwaddr': mac } });
  raw.expanded_devices = { eth0: { type: 'nic', network: 'lxdbr0', name: 'eth0' } };
  raw.state!.network!['eth0']!.addresses = [
    ...v4s.map((address) => ({ family: 'inet', address, scope: 'global' })),
    { family: 'inet6', address: `fd42::216:3eff:fe00:${mac.slice(-2)}`, scope: 'global' },
  ];
  return raw;
}
const BRIDGE = [{ name: 'lxdbr0', type: 'bridge', managed: true, config: { 'ipv4.address': '10.0.0.1/24', 'ipv6.address': 'fd42::1/64' } }];
const leaseOf = (hostname: string, hwaddr: string, address: string) => ({ hostname, hwaddr, address, type: 'dynamic' });
const leaseReads = (lxd: FakeLxd) => lxd.requests.filter((p) => p.startsWith('/1.0/networks/lxdbr0/leases'));

t.test("a list reads each bridge's leases once, and an address only a container's own say backs is held by nobody", async (t) => {
  const { lxd, store, connect } = rig(t);
  lxd.networks = BRIDGE;
  lxd.put(dhcpInstance('victim', '00:16:3e:00:00:05', ['10.0.0.5']));
  // The thief copied the victim's address onto its own eth0.
  lxd.put(dhcpInstance('thief', '00:16:3e:00:00:06', ['10.0.0.6', '10.0.0.5']));
  lxd.put(dhcpInstance('other', '00:16:3e:00:00:07', ['10.0.0.7']));
  lxd.leases.set('lxdbr0', [
    leaseOf('victim', '00:16:3e:00:00:05', '10.0.0.5'),
    leaseOf('thief', '00:16:3e:00:00:06', '10.0.0.6'),
    leaseOf('other', '00:16:3e:00:00:07', '10.0.0.7'),
  ]);
  await connect();
  t.same(leaseReads(lxd), ['/1.0/networks/lxdbr0/leases?project=default'], 'one lease list for three instances on one bridge');
  t.same(store.current.holders('10.0.0.5').map((i) => i.name), ['victim'], 'the copied address binds only its owner');
  t.same(store.current.holders('10.0.0.6').map((i) => i.name), ['thief']);
  t.same(store.current.instances.get('default/thief')?.interfaces[0]?.ipv4, ['10.0.0.6', '10.0.0.5'], 'every address is still listed');
  t.same(store.current.holders('fd42::216:3eff:fe00:6').map((i) => i.name), ['thief'], 'its SLAAC address: the EUI-64 of its MAC in the /64');
});

t.test('a burst of re-reads on one bridge shares its lease list reads (at most two at a time, not one each)', async (t) => {
  const { clock, lxd, store, connect } = rig(t);
  lxd.networks = BRIDGE;
  const macs = Array.from({ length: 50 }, (_, i) => `00:16:3e:00:01:${i.toString(16).padStart(2, '0')}`);
  macs.forEach((mac, i) => lxd.put(dhcpInstance(`web-${i}`, mac, [`10.0.1.${i + 1}`])));
  lxd.leases.set('lxdbr0', macs.map((mac, i) => leaseOf(`web-${i}`, mac, `10.0.1.${i + 1}`)));
  await connect();
  // All 50 renew to new addresses at once (a host's containers restarting); an update event for each.
  macs.forEach((mac, i) => lxd.put(dhcpInstance(`web-${i}`, mac, [`10.0.2.${i + 1}`])));
  lxd.leases.set('lxdbr0', macs.map((mac, i) => leaseOf(`web-${i}`, mac, `10.0.2.${i + 1}`)));
  for (let i = 0; i < macs.length; i++) lxd.socket.send(lifecycle('instance-updated', `/1.0/instances/web-${i}`));
  await settle();
  const before = leaseReads(lxd).length;
  // Their settle reads come due together, each wanting the bridge's lease list beside the instance; LXD takes a
  // while with the first list (held), as it does under such a burst, so the others ask while it is in flight.
  const slow = lxd.hold(/^\/1\.0\/networks\/lxdbr0\/leases/);
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  await settle();
  t.ok(slow.arrived, 'the first lease list read is in flight');
  slow.release();
  await settle();
  const during = leaseReads(lxd).length - before;
  t.equal(during, 2, `2 lease list reads for 50 instance reads: the one in flight and one after it for the rest (each read its own before: ${during})`);
  const trusted = macs.filter((_, i) => store.current.holders(`10.0.2.${i + 1}`).length === 1).length;
  t.equal(trusted, 50, 'every new address is vouched for by the shared read');
});

t.test('an address whose lease lexa has not seen yet is trusted at the next read, its lease list read beside it', async (t) => {
  const { clock, lxd, store, connect } = rig(t);
  lxd.networks = BRIDGE;
  lxd.put(dhcpInstance('web-1', '00:16:3e:00:00:05', ['10.0.0.5']));
  lxd.leases.set('lxdbr0', [leaseOf('web-1', '00:16:3e:00:00:05', '10.0.0.5')]);
  await connect();
  // web-1 renews to a new address (no event for that); an update event makes lexa read it before any lease list.
  lxd.put(dhcpInstance('web-1', '00:16:3e:00:00:05', ['10.0.0.8']));
  lxd.leases.set('lxdbr0', [leaseOf('web-1', '00:16:3e:00:00:05', '10.0.0.8')]);
  const before = leaseReads(lxd).length;
  lxd.socket.send(lifecycle('instance-updated', '/1.0/instances/web-1'));
  await settle();
  t.equal(leaseReads(lxd).length, before, 'the event-driven read asks for no lease list (its last read was all vouched)');
  t.same(store.current.holders('10.0.0.8'), [], 'not trusted on the state\'s word alone');
  await clock.advance(SETTLE_DELAYS_MS[0]!);
  const last = lxd.requests.slice(-2).sort();
  t.match(last[0], /^\/1\.0\/instances\/web-1\?/, 'the settle read');
  t.match(last[1], /^\/1\.0\/networks\/lxdbr0\/leases/, 'and the lease list, sent with it: no added round trip');
  t.same(store.current.holders('10.0.0.8').map((i) => i.name), ['web-1'], 'trusted once LXD lists the lease');
  const reads = lxd.reads('web-1');
  await clock.advance(60_000);
  t.equal(lxd.reads('web-1'), reads, 'complete and vouched: no more reads');
});

t.test('a lease list that does not answer (a frozen cluster member holds it) never stores a late, older state', async (t) => {
  const { clock, lxd, store, connect, addrs } = rig(t, { resyncIntervalMs: 10_000 });
  lxd.networks = BRIDGE;
  await connect();
  const leases = lxd.hold(/^\/1\.0\/networks\/lxdbr0\/leases\?/);
  // Started, no IPv4 in its state yet: the first-address reads ask for the bridge's leases beside the instance.
  lxd.put(dhcpInstance('web-1', '00:16:3e:00:00:05', []));
  lxd.socket.send(started('web-1'));
  await settle();
  await clock.advance(FIRST_ADDRESS_POLL_MS);
  t.ok(leases.arrived, 'a lease list was asked for beside the instance');
  // The address arrives; the periodic re-list (its own lease list answers) stores it.
  lxd.put(dhcpInstance('web-1', '00:16:3e:00:00:05', ['10.0.0.5']));
  lxd.leases.set('lxdbr0', [leaseOf('web-1', '00:16:3e:00:00:05', '10.0.0.5')]);
  await clock.advance(10_000);
  t.same(addrs('web-1')?.ipv4, ['10.0.0.5'], 'the re-list stored the address');
  t.same(store.current.holders('10.0.0.5').map((i) => i.name), ['web-1']);
  // The held lease list answers at last: the instance state read beside it (no IPv4) is older than the list.
  leases.release();
  await settle();
  t.same(addrs('web-1')?.ipv4, ['10.0.0.5'], `the late read is not stored (its lease list was given up after ${LEASE_BESIDE_MS} ms)`);
});
