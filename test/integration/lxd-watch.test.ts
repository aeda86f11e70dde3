import t, { type Test } from 'tap';
import { CLIENT_CERT, CLIENT_KEY, DAEMON, deleteByPrefix, launch, LXD_HTTPS, LXD_SERVER_CERT, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';
import { CuttableProxy, curl, hosts, since, startLexa, type HostDoc, type TestLexa } from '../helpers/lexa.js';

// Real LXD (scripts/testbed.sh), or real Incus with LEXA_TEST_DAEMON=incus (scripts/incus.sh); real containers,
// lexa in this process, REST read with the real curl.
// Every change must show in /containers/ within BOUND_MS: generous for a loaded CI machine; the measured times
// are printed as comments.
const BOUND_MS = 10_000;
const PREFIX = 'itw-';
const [lxdHost, lxdPort] = LXD_HTTPS.split(':') as [string, string];

t.before(async () => {
  await deleteByPrefix(PREFIX);
});
t.teardown(async () => {
  await deleteByPrefix(PREFIX);
});

const hasAddresses = (h: HostDoc | undefined) => h !== undefined && h.interfaces.ipv4.length > 0 && h.interfaces.ipv6.length > 0;

async function lifecycle(t: Test, lexa: TestLexa, tag: string): Promise<void> {
  const name = `${PREFIX}${tag}`;
  const fqdn = `${name}.lexa`;
  const step = async (what: string, action: () => Promise<unknown>, check: (h: Map<string, HostDoc>) => boolean) => {
    const start = Date.now();
    await action();
    await waitFor(async () => check(await hosts(lexa.restUrl)), { what, timeoutMs: BOUND_MS });
    t.pass(`${what} (${since(start)} ms)`);
  };

  await step(`launch ${name} shows with IPv4 and IPv6`, () => launch(name, { config: { 'user.lexa.service.http.port': '80' } }), (h) => hasAddresses(h.get(fqdn)));
  const doc = (await hosts(lexa.restUrl)).get(fqdn)!;
  t.match(doc.interfaces.ipv4[0]?.['eth0'], new RegExp(`^${DAEMON.v4Prefix.replaceAll('.', '\\.')}\\d+$`));
  t.ok(doc.interfaces.ipv6[0]?.['eth0']?.startsWith(DAEMON.v6Prefix), `IPv6 in ${DAEMON.bridge}'s subnet`);
  t.same(doc.services, [{ name: 'http', port: 80, proto: 'tcp', tags: [], interface: 'eth0', priority: 1, weight: 1, source: 'config', health: 'unchecked' }]);

  await step('config change shows', () => lxc('config', 'set', name, 'user.lexa.service.http.tags', 'blue,canary'), (h) =>
    JSON.stringify(h.get(fqdn)?.services?.[0]?.tags) === '["blue","canary"]');
  await step('stop removes it', () => lxc('stop', name), (h) => !h.has(fqdn));
  await step('start brings it back with addresses', () => lxc('start', name), (h) => hasAddresses(h.get(fqdn)));
  await step('restart keeps it with addresses', () => lxc('restart', name), (h) => hasAddresses(h.get(fqdn)));
  const renamed = `${name}-r`;
  await lxc('stop', name);
  await step('rename (while stopped) then start shows only the new name', async () => {
    await lxc('rename', name, renamed);
    await lxc('start', renamed);
  }, (h) => hasAddresses(h.get(`${renamed}.lexa`)) && !h.has(fqdn));
  await step('delete removes it', () => lxc('delete', '--force', renamed), (h) => !h.has(`${renamed}.lexa`));
}

t.test('lifecycle over the unix socket', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'first list' });
  const connected = lexa.log.lines.find((l) => l['msg'] === 'lxd connected');
  t.equal(connected?.['server'], DAEMON.kind, `lexa says which daemon it talks to: ${connected?.['server']} ${connected?.['version']}`);
  await lifecycle(t, lexa, 'unix');
});

t.test('lifecycle over HTTPS with a client certificate, LXD certificate pinned', async (t) => {
  const lexa = await startLexa(`    bind {
      host = "${lxdHost}"
      port = ${lxdPort}
    }
    certificate = "${CLIENT_CERT}"
    key = "${CLIENT_KEY}"
    server_certificate = "${LXD_SERVER_CERT}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'first list' });
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd connected' && l['target'] === `https://${LXD_HTTPS}`), 'connected over HTTPS');
  await lifecycle(t, lexa, 'https');
});

t.test('a profile declaring a service reaches its instances', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(async () => {
    await lexa.close();
    await lxc('profile', 'delete', `${PREFIX}svc`).catch(() => undefined);
  });
  await lxc('profile', 'delete', `${PREFIX}svc`).catch(() => undefined);
  await lxc('profile', 'create', `${PREFIX}svc`);
  await lxc('profile', 'set', `${PREFIX}svc`, 'user.lexa.service.metrics.port', '9100');
  const name = `${PREFIX}prof`;
  await launch(name, { profiles: ['default', `${PREFIX}svc`] });
  t.teardown(() => lxc('delete', '--force', name).catch(() => undefined));
  await waitFor(async () => (await hosts(lexa.restUrl)).get(`${name}.lexa`)?.services?.[0]?.port === 9100, { what: 'service from profile', timeoutMs: BOUND_MS });
  const start = Date.now();
  await lxc('profile', 'set', `${PREFIX}svc`, 'user.lexa.service.metrics.port', '9101');
  await waitFor(async () => (await hosts(lexa.restUrl)).get(`${name}.lexa`)?.services?.[0]?.port === 9101, { what: 'profile edit visible', timeoutMs: BOUND_MS });
  t.pass(`profile edit visible after ${since(start)} ms`);
});

/** lexa talking to LXD over HTTPS through a proxy the test can cut or freeze. */
async function viaProxy(t: Test, watchdog: string): Promise<{ proxy: CuttableProxy; lexa: TestLexa }> {
  const proxy = new CuttableProxy({ host: lxdHost, port: Number(lxdPort) });
  await proxy.listen();
  const lexa = await startLexa(`    bind {
      host = "127.0.0.1"
      port = ${proxy.port}
    }
    certificate = "${CLIENT_CERT}"
    key = "${CLIENT_KEY}"
    watchdog_timeout = "${watchdog}"`);
  t.teardown(async () => {
    await lexa.close();
    await proxy.close();
  });
  return { proxy, lexa };
}

t.test('a cut events connection: the snapshot recovers what happened meanwhile', async (t) => {
  const { proxy, lexa } = await viaProxy(t, '3s');
  const before = `${PREFIX}cut-a`;
  const during = `${PREFIX}cut-b`;
  await launch(before);
  await waitFor(async () => hasAddresses((await hosts(lexa.restUrl)).get(`${before}.lexa`)), { what: `${before} visible`, timeoutMs: BOUND_MS });

  proxy.cut();
  await waitFor(() => !lexa.daemon.store.current.connected, { what: 'lexa to notice the cut' });
  await lxc('delete', '--force', before);
  await launch(during);
  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 200, 'still ready: it answers from the last snapshot');
  t.match(ready.json(), { ready: true, lxdConnected: false });
  t.ok((await hosts(lexa.restUrl)).has(`${before}.lexa`), 'while cut off, the last known state is served');

  const restored = Date.now();
  proxy.restore();
  await waitFor(async () => {
    const h = await hosts(lexa.restUrl);
    return !h.has(`${before}.lexa`) && hasAddresses(h.get(`${during}.lexa`));
  }, { what: 'the re-list after reconnecting to show the delete and the launch', timeoutMs: 20_000 });
  t.pass(`recovered ${since(restored)} ms after the connection was restored`);
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd reconnected'), 'one log line per reconnection');
  t.match((await curl(`${lexa.restUrl}/readyz`)).json(), { lxdConnected: true });
});

t.test('a hung LXD (connection open, nothing flows) is detected by the watchdog', async (t) => {
  const { proxy, lexa } = await viaProxy(t, '2s');
  await waitFor(() => lexa.daemon.store.current.connected, { what: 'connected' });
  const start = Date.now();
  proxy.freeze();
  await waitFor(() => !lexa.daemon.store.current.connected, { what: 'the watchdog to give up on a silent LXD', timeoutMs: 10_000 });
  t.pass(`silent LXD noticed after ${since(start)} ms`);
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd went silent; reconnecting'));
  proxy.thaw();
  await waitFor(() => lexa.daemon.store.current.connected, { what: 'reconnect after LXD wakes up', timeoutMs: 20_000 });
});

t.test('no LXD at all: not ready, clear log, no crash', async (t) => {
  const lexa = await startLexa('    socket = "/dev/null"');
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.log.lines.some((l) => l['msg'] === 'lxd connection failed'), { what: 'a logged connection failure' });
  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 503);
  t.match(ready.json(), { ready: false, lxdConnected: false });
  const list = await curl(`${lexa.restUrl}/containers/`);
  t.equal(list.status, 503, 'no false empty list before the first sync');
  t.equal((await curl(`${lexa.restUrl}/healthz`)).status, 200);
});

// A killed and restarted daemon is tested against the fault bed's own LXD (test/reliability/lxd-faults.test.ts):
// killing this shared daemon would fail every other test running against it.
