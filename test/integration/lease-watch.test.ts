import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t, { type Test } from 'tap';
import { dig } from '../helpers/dig.js';
import { startLexa, type TestLexa } from '../helpers/lexa.js';
import { DAEMON, deleteByPrefix, launch, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';

// Real LXD (scripts/testbed.sh), or real Incus with LEXA_TEST_DAEMON=incus; real containers; lexa in this process,
// asked with the real dig. A new container's A must answer with the address its bridge's dnsmasq leased it, both
// with the lease file watched (src/streams/lxd/lease-watch.ts: the default with the local socket) and without it
// (watch_leases = false, or a socket whose directory has no lease files): the polled lease API remains.
const PREFIX = 'pp-lw-';
const BOUND_MS = 10_000;
const LEASES = join(dirname(LXD_SOCKET), 'networks', DAEMON.bridge, 'dnsmasq.leases');

t.before(() => deleteByPrefix(PREFIX));
t.teardown(() => deleteByPrefix(PREFIX));

const logged = (lexa: TestLexa, msg: string) => lexa.log.lines.filter((l) => l['msg'] === msg);

/** Launches `name` and waits for lexa's A; checks it is the IPv4 the dnsmasq lease file gives the instance's MAC. */
async function launchAnswers(t: Test, lexa: TestLexa, name: string): Promise<void> {
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'first list' });
  const start = Date.now();
  await launch(name);
  const ask = dig(lexa.dnsPort);
  let a: string | undefined;
  await waitFor(async () => (a = (await ask(`${name}.lexa`, 'A')).answer[0]?.split(/\s+/).at(-1)) !== undefined, { what: `${name} A`, timeoutMs: BOUND_MS });
  t.pass(`${name}.lexa A answered ${Date.now() - start} ms after launch began`);
  const mac = (await lxc('config', 'get', name, 'volatile.eth0.hwaddr')).trim().toLowerCase();
  const leased = readFileSync(LEASES, 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[1]?.toLowerCase() === mac)?.[2];
  t.equal(a, leased, `the address dnsmasq leased to ${mac}`);
}

t.test('with the lease file watched (the default on the local socket)', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`, '  log {\n    level = "debug"\n  }\n');
  t.teardown(() => lexa.close());
  await launchAnswers(t, lexa, `${PREFIX}1`);
  t.same(logged(lexa, 'lxd lease file watched').map((l) => l['network']), [DAEMON.bridge], `${DAEMON.bridge}'s lease file was found beside the socket and watched`);
  t.same(logged(lexa, 'lxd lease file not watched; polling leases'), [], 'no fallback');
});

t.test('with watch_leases = false: polling only, and the name still answers', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"\n    watch_leases = false`);
  t.teardown(() => lexa.close());
  await launchAnswers(t, lexa, `${PREFIX}2`);
  t.same(logged(lexa, 'lxd lease file watched'), [], 'no lease file is watched');
});

t.test('a socket whose directory has no lease files: said at debug level, and the name still answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pp-sock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'unix.socket');
  symlinkSync(LXD_SOCKET, socket);
  const lexa = await startLexa(`    socket = "${socket}"`, '  log {\n    level = "debug"\n  }\n');
  t.teardown(() => lexa.close());
  await launchAnswers(t, lexa, `${PREFIX}3`);
  const missed = logged(lexa, 'lxd lease file not watched; polling leases');
  t.equal(missed[0]?.['network'], DAEMON.bridge, 'the missing lease file is named');
  t.equal(missed[0]?.['level'], 'debug', 'at debug level only');
});
