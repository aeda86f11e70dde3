import t, { type Test } from 'tap';
import { addressed, compare, compareAfterSettle, describeComparison, truthOf, type Source } from '../helpers/exact-view.js';
import {
  FAULT_HOST,
  FAULT_PORT,
  faultDeletePrefix,
  faultLaunch,
  faultLxdBlock,
  faultQuery,
  flxc,
  freezeFaultDaemon,
  killFaultDaemon,
  startFaultDaemon,
  thawFaultDaemon,
  trustClient,
  untrustClient,
} from '../helpers/fault-bed.js';
import { CuttableProxy, curl, startLexa, type TestLexa } from '../helpers/lexa.js';
import { parseExposition, sample } from '../helpers/cli-process.js';
import { waitFor } from '../helpers/lxd-cli.js';

// Faults of the LXD side, each against the fault bed's own daemon (scripts/fault-bed.sh: nobody else's tests use it)
// with lexa in this process, and each ending in one exact comparison (test/helpers/exact-view.ts): at the settle
// bound after the fault ends, REST /containers/ and DNS (dig) equal a fresh /1.0/instances?recursion=2. While the
// fault lasts, lexa answers its last picture exactly and says it is disconnected in /readyz and the metrics.

const PREFIX = 'flt-l';
/** The watchdog lexa runs with here: short, so a hung LXD is noticed within the test's time. */
const WATCHDOG = '2s';
/**
 * The stated settle bound: from the moment LXD is reachable again to the deciding comparison. It covers the
 * reconnect backoff's ceiling (RECONNECT_MAX_MS, 5 s), one re-list, and the address re-reads of instances started
 * meanwhile (SLAAC IPv6 arrives 1–2 s after start), with room for a busy machine.
 */
const SETTLE_MS = 12_000;
const bed: Source = { query: faultQuery, zone: 'lexa' };
const names = { a: `${PREFIX}-a`, b: `${PREFIX}-b`, c: `${PREFIX}-c` };
/** Every name the tests create: asked of DNS at each comparison, so one that should be gone must answer NXDOMAIN. */
const everyName = Object.values(names).map((n) => `${n}.lexa`);
const everyService = ['lexa http tcp', 'lexa db tcp'];

t.before(async () => {
  await startFaultDaemon();
  await trustClient().catch(() => undefined); // an interrupted run may have left it out
  await faultDeletePrefix(PREFIX);
  await faultLaunch(names.a, { 'user.lexa.service.http.port': '80', 'user.lexa.service.http.tags': 'blue' });
  await faultLaunch(names.b, { 'user.lexa.service.db.port': '5432' });
});
t.teardown(async () => {
  await startFaultDaemon().catch(() => undefined);
  await trustClient().catch(() => undefined);
  await faultDeletePrefix(PREFIX);
});

/** A fresh lexa watching the fault bed (through `proxy` when given), torn down with the test. */
async function lexaOnBed(t: Test, proxy?: CuttableProxy): Promise<TestLexa> {
  const target = proxy ? { host: '127.0.0.1', port: proxy.port } : { host: FAULT_HOST, port: FAULT_PORT };
  const lexa = await startLexa(faultLxdBlock(target, `    watchdog_timeout = "${WATCHDOG}"`));
  t.teardown(() => lexa.close());
  return lexa;
}

async function cuttableProxy(t: Test): Promise<CuttableProxy> {
  const proxy = new CuttableProxy({ host: FAULT_HOST, port: FAULT_PORT });
  await proxy.listen();
  t.teardown(() => proxy.close());
  return proxy;
}

/** The deciding comparison after the fault ends at `from`; the measured settle time goes into the message. */
async function settlesExactly(t: Test, lexa: TestLexa, from: number, what: string): Promise<void> {
  const { comparison, firstEqualMs } = await compareAfterSettle(lexa, [bed], { from, boundMs: SETTLE_MS, alsoAsk: everyName, alsoServices: everyService });
  const equal = comparison.rest.length === 0 && comparison.dns.length === 0;
  t.ok(equal, `${what}: lexa equals LXD at ${SETTLE_MS} ms (first equal after ${firstEqualMs ?? '-'} ms; ${comparison.truth.size} running)`, {
    diff: describeComparison(comparison),
  });
}

/** The precondition: lexa agrees with LXD before the fault (polled: no verdict on settle time here). */
async function equalBefore(t: Test, lexa: TestLexa): Promise<void> {
  const start = Date.now();
  await waitFor(async () => {
    const truth = await truthOf([bed]);
    if (!addressed(truth)) return false;
    const c = await compare(lexa, [bed], everyName, everyService);
    if (c.rest.length === 0 && c.dns.length === 0) return c;
    throw new Error(describeComparison(c)); // waitFor reports the last diff if it never agrees
  }, { what: 'lexa to equal LXD before the fault', timeoutMs: SETTLE_MS });
  t.pass(`before the fault: lexa equals LXD (after ${Date.now() - start} ms)`);
}

/** lexa's picture before the fault, to hold it to while disconnected: LXD's recursion=2 answer read now. */
async function pictureNow(): Promise<Source> {
  const json = await faultQuery('/1.0/instances?recursion=2');
  return { query: async () => json, zone: 'lexa' };
}

/** While disconnected: still ready, says so in /readyz and the metrics, and answers `picture` exactly. */
async function servesLastPicture(t: Test, lexa: TestLexa, picture: Source): Promise<void> {
  await waitFor(() => !lexa.daemon.store.current.connected, { what: 'lexa to notice it is cut off', timeoutMs: 15_000 });
  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 200, 'still ready while disconnected: it answers from its last picture');
  t.match(ready.json(), { ready: true, lxdConnected: false }, '/readyz says LXD is disconnected');
  const metrics = parseExposition((await curl(`${lexa.restUrl}/metrics`)).body);
  t.equal(sample(metrics, 'lexa_lxd_connected'), 0, 'lexa_lxd_connected is 0');
  const c = await compare(lexa, [picture], everyName, everyService);
  t.ok(c.rest.length === 0 && c.dns.length === 0, 'while disconnected, REST and DNS equal the last picture exactly', { diff: describeComparison(c) });
}

/** The changes an LXD makes while lexa cannot see it: one launched, one stopped, one deleted, a service key changed. */
async function changeWhileAway(): Promise<void> {
  await faultLaunch(names.c, { 'user.lexa.service.http.port': '8080' });
  await flxc('config', 'set', names.a, 'user.lexa.service.http.port', '81');
  await flxc('config', 'set', names.a, 'user.lexa.service.http.tags', 'green,blue');
  await flxc('stop', '--force', names.b);
}

/** Puts the base set back (b running, c absent, a's service as at the start) for the next fault. */
async function restoreBase(): Promise<void> {
  await flxc('delete', '--force', names.c).catch(() => undefined);
  await flxc('start', names.b).catch(() => undefined);
  await flxc('config', 'set', names.a, 'user.lexa.service.http.port', '80');
  await flxc('config', 'set', names.a, 'user.lexa.service.http.tags', 'blue');
}

t.test('LXD hung past the watchdog (SIGSTOP), then SIGCONT', async (t) => {
  const lexa = await lexaOnBed(t);
  await equalBefore(t, lexa);
  const picture = await pictureNow();
  freezeFaultDaemon();
  try {
    await servesLastPicture(t, lexa, picture);
  } finally {
    thawFaultDaemon();
  }
  const from = Date.now();
  await flxc('config', 'set', names.a, 'user.lexa.service.http.tags', 'blue,thawed');
  await settlesExactly(t, lexa, from, 'after SIGCONT');
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd went silent; reconnecting'), 'the watchdog logged the silent LXD');
  await restoreBase();
});

t.test('LXD killed and restarted, with changes made while lexa was away', async (t) => {
  const proxy = await cuttableProxy(t);
  const lexa = await lexaOnBed(t, proxy);
  await equalBefore(t, lexa);
  const picture = await pictureNow();
  // lexa's link stays refused while the daemon is down and while it changes, so lexa learns the changes only
  // by the re-list when the link comes back.
  proxy.cut();
  killFaultDaemon();
  await servesLastPicture(t, lexa, picture);
  await startFaultDaemon();
  await changeWhileAway();
  const from = Date.now();
  proxy.restore();
  await settlesExactly(t, lexa, from, 'after the restart and the link restored');
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd reconnected'), 'the reconnection is logged');
  await restoreBase();
});

t.test('LXD absent when lexa starts, then appears', async (t) => {
  killFaultDaemon();
  let lexa: TestLexa;
  try {
    lexa = await lexaOnBed(t);
    await waitFor(() => lexa.log.lines.some((l) => l['msg'] === 'lxd connection failed'), { what: 'a logged connection failure', timeoutMs: 15_000 });
    const ready = await curl(`${lexa.restUrl}/readyz`);
    t.equal(ready.status, 503, 'not ready before the first list');
    t.match(ready.json(), { ready: false, lxdConnected: false });
    t.equal((await curl(`${lexa.restUrl}/containers/`)).status, 503, 'no false empty list');
    t.equal((await curl(`${lexa.restUrl}/healthz`)).status, 200, 'alive');
  } finally {
    await startFaultDaemon();
  }
  await settlesExactly(t, lexa, Date.now(), 'after LXD appeared');
});

t.test("lexa's client certificate removed from the trust store, later re-added", async (t) => {
  const proxy = await cuttableProxy(t);
  const lexa = await lexaOnBed(t, proxy);
  await equalBefore(t, lexa);
  const picture = await pictureNow();
  await untrustClient();
  let from = 0;
  try {
    // An open events connection outlives the trust entry; what lexa meets is the next connection: cut it.
    proxy.cut();
    proxy.restore();
    await servesLastPicture(t, lexa, picture);
    const refused = await waitFor(() => lexa.log.lines.find((l) => l['msg'] === 'lxd connection failed'), { what: 'a logged refusal', timeoutMs: 15_000 });
    t.match(String(refused['error']), /403|forbidden|not authorized|trust/i, `the log says why: ${String(refused['error'])}`);
    await changeWhileAway();
  } finally {
    await trustClient();
    from = Date.now();
  }
  await settlesExactly(t, lexa, from, 'after the certificate was trusted again');
  await restoreBase();
});

t.test('the events connection cut mid-stream (both ways), refused, then restored', async (t) => {
  const proxy = await cuttableProxy(t);
  const lexa = await lexaOnBed(t, proxy);
  await equalBefore(t, lexa);
  // A burst of changes with the cut in its middle: events before it arrive, those after it are only re-listed.
  await flxc('config', 'set', names.a, 'user.lexa.service.http.tags', 'blue,burst');
  const picture = await pictureNow();
  proxy.cut();
  await changeWhileAway();
  await servesLastPicture(t, lexa, picture);
  const from = Date.now();
  proxy.restore();
  await settlesExactly(t, lexa, from, 'after the link was restored');
  await restoreBase();
});
