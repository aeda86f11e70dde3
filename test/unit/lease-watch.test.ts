import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { LeaseWatch, MAX_LEASE_FILE_BYTES, MIN_READ_GAP_MS, RETRY_WATCH_MS } from '../../src/streams/lxd/lease-watch.js';
import { Reflector, SnapshotStore } from '../../src/streams/index.js';
import { FIRST_ADDRESS_POLL_MS, WATCHED_POLL_MS } from '../../src/streams/lxd/refetch.js';
import { FakeClock, settle } from '../helpers/fake-clock.js';
import { FakeLxd, lifecycle, lxdInstance } from '../helpers/fake-lxd.js';

// The lease file watch (src/streams/lxd/lease-watch.ts) on a FAKE lease directory (a temporary directory laid out
// as LXD_DIR, written by the test as dnsmasq would) with a fake clock; the inotify events are the kernel's own.
// The last tests drive the reflector against a FAKE LXD (test/helpers/fake-lxd.ts) whose lease API lags behind
// the file. test/integration/lease-watch.test.ts runs it against the real LXD and its dnsmasq.

const FUTURE = 4_000_000_000;
const line = (mac: string, ip: string, host = '*') => `${FUTURE} ${mac} ${ip} ${host} *\n`;

/** A fake LXD_DIR with `networks/<network>/` made; returns the directory and a writer for its lease file. */
function leaseDir(t: Test, network = 'lxdbr0') {
  const dir = mkdtempSync(join(tmpdir(), 'pp-leases-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const netDir = join(dir, 'networks', network);
  mkdirSync(netDir, { recursive: true });
  const file = join(netDir, 'dnsmasq.leases');
  /** Writes the lease file in place (dnsmasq's way), or by rename with `rename`. */
  const write = (text: string, rename = false) => {
    if (!rename) return writeFileSync(file, text);
    writeFileSync(`${file}.tmp`, text);
    renameSync(`${file}.tmp`, file);
  };
  return { dir, netDir, file, write };
}

/** Waits (real time) for the kernel's inotify event to reach the watch; fails instead of hanging. */
async function until(t: Test, what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  t.ok(cond(), what);
}

function watcher(t: Test, directory: string) {
  const clock = new FakeClock();
  const logger = memoryLogger();
  const changes: string[] = [];
  const watch = new LeaseWatch({ directory, clock, logger, onChange: (n) => changes.push(n) });
  t.teardown(() => watch.close());
  return { clock, logger, changes, watch };
}

const addresses = (w: LeaseWatch, network = 'lxdbr0') => w.leases(network)?.map((l) => l.address);

t.test('the first ask reads the file; each change (in place or by rename) is read again and announced', async (t) => {
  const { dir, write } = leaseDir(t);
  write(line('00:16:3e:00:00:01', '10.99.0.1'));
  const { clock, changes, watch } = watcher(t, dir);
  t.same(addresses(watch), ['10.99.0.1'], 'read at once on the first ask');
  await clock.advance(MIN_READ_GAP_MS);
  write(line('00:16:3e:00:00:01', '10.99.0.1') + line('00:16:3e:00:00:02', '10.99.0.2'));
  await until(t, 'an in-place rewrite is seen', () => changes.length >= 1);
  t.same(addresses(watch), ['10.99.0.1', '10.99.0.2']);
  await clock.advance(MIN_READ_GAP_MS);
  const seen = changes.length;
  write(line('00:16:3e:00:00:03', '10.99.0.3'), true);
  await until(t, 'a replacement by rename is seen', () => changes.length > seen);
  t.same(addresses(watch), ['10.99.0.3']);
  t.same([...new Set(changes)], ['lxdbr0']);
});

t.test('reads of one file are at least MIN_READ_GAP_MS apart: a burst of rewrites costs one more read', async (t) => {
  const { dir, write } = leaseDir(t);
  write(line('00:16:3e:00:00:01', '10.99.0.1'));
  const { clock, changes, watch } = watcher(t, dir);
  watch.leases('lxdbr0');
  for (let i = 2; i < 50; i++) write(line('00:16:3e:00:00:01', `10.99.0.${i}`));
  await new Promise((r) => setTimeout(r, 100)); // the kernel's events for the burst arrive meanwhile
  t.equal(changes.length, 0, 'nothing read before the gap has passed on the clock');
  t.same(addresses(watch), ['10.99.0.1']);
  await clock.advance(MIN_READ_GAP_MS);
  t.equal(changes.length, 1, 'one read for the whole burst');
  t.same(addresses(watch), ['10.99.0.49'], 'and it has the last write');
});

t.test('no directory: no leases (polling), said at debug level; tried again after RETRY_WATCH_MS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pp-leases-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { clock, logger, watch } = watcher(t, dir);
  t.equal(watch.leases('lxdbr0'), undefined);
  const logged = logger.lines.filter((l) => l['msg'] === 'lxd lease file not watched; polling leases');
  t.equal(logged.length, 1);
  t.equal(logged[0]?.['level'], 'debug');
  mkdirSync(join(dir, 'networks', 'lxdbr0'), { recursive: true });
  writeFileSync(join(dir, 'networks', 'lxdbr0', 'dnsmasq.leases'), line('00:16:3e:00:00:01', '10.99.0.1'));
  t.equal(watch.leases('lxdbr0'), undefined, 'not retried at once');
  await clock.advance(RETRY_WATCH_MS);
  t.same(addresses(watch), ['10.99.0.1'], 'the bridge made later is watched');
});

t.test('attacks on the path and the file: odd network names, a symlink, a FIFO, a file beyond the cap, a cut line', async (t) => {
  const { dir, file } = leaseDir(t);
  const { watch } = watcher(t, dir);
  for (const name of ['..', '.', '../lxdbr0', 'a/b', '', 'x'.repeat(65), 'br\u0000']) t.equal(watch.leases(name), undefined, `network ${JSON.stringify(name)}`);

  const secret = join(dir, 'secret');
  writeFileSync(secret, line('00:16:3e:00:00:01', '10.99.0.1'));
  symlinkSync(secret, file);
  t.equal(watch.leases('lxdbr0'), undefined, 'a symlinked lease file is not followed');
  rmSync(file);

  mkdirSync(join(dir, 'networks', 'fifo'));
  execFileSync('mkfifo', [join(dir, 'networks', 'fifo', 'dnsmasq.leases')]);
  t.equal(watch.leases('fifo'), undefined, 'a FIFO in its place neither hangs nor counts');

  mkdirSync(join(dir, 'networks', 'big'));
  const head = line('00:16:3e:00:00:01', '10.99.0.1');
  const pad = '#'.repeat(MAX_LEASE_FILE_BYTES - head.length - 1) + '\n';
  writeFileSync(join(dir, 'networks', 'big', 'dnsmasq.leases'), head + pad + line('00:16:3e:00:00:02', '10.99.0.2'));
  t.same(addresses(watch, 'big'), ['10.99.0.1'], 'only the first MAX_LEASE_FILE_BYTES are read');

  mkdirSync(join(dir, 'networks', 'cut'));
  writeFileSync(join(dir, 'networks', 'cut', 'dnsmasq.leases'), `${line('00:16:3e:00:00:01', '10.99.0.1')}${FUTURE} 00:16:3e:00:00:02 10.99.0.2`);
  t.same(addresses(watch, 'cut'), ['10.99.0.1'], 'a line not yet ended (dnsmasq mid-write) is not read short');
});

// The reflector with the watch: a starting instance on lxdbr0 whose state has no IPv4 yet, and whose lease LXD's
// API does not list yet either (the fake's lease list stays empty): only the file can give it its address.
function rig(t: Test, directory: string) {
  const clock = new FakeClock();
  const lxd = new FakeLxd(clock);
  const store = new SnapshotStore();
  const logger = memoryLogger();
  const reflector = new Reflector(lxd, store, { project: 'default', allProjects: false, resyncIntervalMs: 0, watchdogMs: 25_000, logger, clock, leaseDirectory: directory });
  t.teardown(() => reflector.stop());
  const connect = async () => {
    reflector.start();
    await settle();
    lxd.socket.open();
    await settle();
  };
  const ipv4 = (name: string) => store.current.instances.get(`default/${name}`)?.interfaces[0]?.ipv4;
  return { clock, lxd, store, logger, connect, ipv4 };
}

const MAC1 = '00:16:3e:aa:bb:01';
const MAC2 = '00:16:3e:aa:bb:02';

t.test('a lease dnsmasq writes for a starting instance\'s MAC answers at once; another MAC or a hostname gives nothing', async (t) => {
  const { dir, write } = leaseDir(t);
  write(line('00:16:3e:00:00:99', '10.99.0.99', 'old'));
  const { clock, lxd, connect, ipv4, store } = rig(t, dir);
  lxd.put(lxdInstance('web-1', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': MAC1 } }));
  lxd.put(lxdInstance('web-2', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': MAC2 } }));
  await connect();
  lxd.put(lxdInstance('web-1', { config: { 'volatile.eth0.hwaddr': MAC1 } }));
  lxd.put(lxdInstance('web-2', { config: { 'volatile.eth0.hwaddr': MAC2 } }));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/web-1'));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/web-2'));
  await settle();
  t.same(ipv4('web-1'), [], 'no address yet');
  await clock.advance(MIN_READ_GAP_MS);

  // dnsmasq leases web-1 its address; a lease for a MAC no instance has carries web-2's name as its hostname.
  write(line(MAC1.toUpperCase(), '10.99.0.7', 'web-1') + line('00:16:3e:66:66:66', '10.99.0.66', 'web-2'));
  const before = lxd.reads('web-1');
  await until(t, 'web-1 answers from the lease file', () => ipv4('web-1')?.[0] === '10.99.0.7');
  t.equal(lxd.reads('web-1'), before, 'without another read of LXD');
  const iface = store.current.instances.get('default/web-1')?.interfaces[0];
  t.same(iface?.trustedIpv4, ['10.99.0.7'], 'trusted, as a lease LXD lists is');
  t.same(ipv4('web-2'), [], 'a hostname claims nothing: web-2 has no address');

  // Later reads whose state still shows no IPv4 keep the leased one.
  await clock.advance(50);
  t.same(ipv4('web-1'), ['10.99.0.7'], 'kept while the state catches up');
  t.same(ipv4('web-2'), [], 'still nothing for web-2');
});

t.test('without a lease file (remote-like, or another layout), the polled lease list still gives the address', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pp-leases-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { clock, lxd, connect, ipv4 } = rig(t, dir);
  lxd.put(lxdInstance('web-1', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': MAC1 } }));
  await connect();
  lxd.put(lxdInstance('web-1', { config: { 'volatile.eth0.hwaddr': MAC1 } }));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/web-1'));
  await settle();
  lxd.leases.set('lxdbr0', [{ hostname: 'web-1', hwaddr: MAC1, address: '10.99.0.8', type: 'dynamic' }]);
  await clock.advance(50);
  t.same(ipv4('web-1'), ['10.99.0.8']);
});

t.test('with its lease file watched, a standalone instance is polled every WATCHED_POLL_MS; a cluster member\'s densely', async (t) => {
  const { dir, write } = leaseDir(t);
  write(line('00:16:3e:00:00:99', '10.99.0.99'));
  const { clock, lxd, connect } = rig(t, dir);
  const clustered = (raw: ReturnType<typeof lxdInstance>) => ({ ...raw, location: 'node2' });
  lxd.put(lxdInstance('solo', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': MAC1 } }));
  lxd.put(clustered(lxdInstance('member', { status: 'Stopped', config: { 'volatile.eth0.hwaddr': MAC2 } })));
  await connect();
  lxd.put(lxdInstance('solo', { config: { 'volatile.eth0.hwaddr': MAC1 } }));
  lxd.put(clustered(lxdInstance('member', { config: { 'volatile.eth0.hwaddr': MAC2 } })));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/solo'));
  lxd.socket.send(lifecycle('instance-started', '/1.0/instances/member'));
  await settle();
  const [solo, member] = [lxd.reads('solo'), lxd.reads('member')];
  await clock.advance(WATCHED_POLL_MS - 1);
  t.equal(lxd.reads('solo'), solo, 'no poll of the standalone instance before WATCHED_POLL_MS');
  t.ok(lxd.reads('member') - member >= (WATCHED_POLL_MS - 1) / (2 * FIRST_ADDRESS_POLL_MS) - 1, 'the cluster member\'s instance is polled densely');
  await clock.advance(1);
  t.equal(lxd.reads('solo'), solo + 1, 'then one poll');
});
