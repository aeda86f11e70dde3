import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runtime, slots } from '../helpers/haproxy.js';
import { startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, instanceState, launch, lxc, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// The original README's four HAProxy backends (examples/haproxy/haproxy.cfg, run as is) in the real HAProxy 2.6
// from Debian, resolving through lexa watching the real LXD. HAProxy's runtime API shows which container address
// each server slot holds.
const CONFIG = join(import.meta.dirname, '..', '..', 'examples', 'haproxy', 'haproxy.cfg');
const PREFIX = 'example-';
const BACKENDS = ['ha_lxd_rfc2782', 'ha_lxd_service', 'ha_lxd_service_tagged', 'ha_lxd'] as const;

const dir = mkdtempSync(join(tmpdir(), 'lexa-haproxy-'));
const admin = join(dir, 'admin.sock');

/** Every global address (v4 and v6) of each running container whose name starts with PREFIX. */
async function addressesOf(names: string[]): Promise<Map<string, string>> {
  const owner = new Map<string, string>();
  for (const name of names) {
    for (const a of (await instanceState(name)).network?.['eth0']?.addresses ?? []) {
      if (a.scope === 'global') owner.set(a.address, name);
    }
  }
  return owner;
}

/** Container names the slots point at (each slot's address mapped back to its container), sorted. */
async function slotOwners(backend: string, owner: Map<string, string>): Promise<string[]> {
  return (await slots(admin, backend)).map((s) => owner.get(s.slice(0, s.lastIndexOf(':'))) ?? `unknown:${s}`).sort();
}

t.test('HAProxy fills all four example backends from lexa, and empties a stopped container\'s slot', async (t) => {
  await deleteByPrefix(PREFIX);
  // https is declared by other tests' or the demo's containers too; these two are the only "app" and "example-" ones
  await launch('example-a1', { config: { 'user.lexa.service.https.port': '443', 'user.lexa.service.https.tags': 'app' } });
  await launch('example-a2', { config: { 'user.lexa.service.https.port': '443' } });
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));

  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });
  const names = ['example-a1', 'example-a2'];
  await waitFor(async () => (await addressesOf(names)).size === 4, { what: 'both containers to have IPv4 and IPv6', timeoutMs: 15_000 });
  const owner = await addressesOf(names);

  const haproxy = spawn('haproxy', ['-f', CONFIG, '-db'], {
    env: { ...process.env, LEXA_DNS: `127.0.0.1:${lexa.dnsPort}`, HAPROXY_ADMIN: admin, HAPROXY_BIND: '127.0.0.1:18081' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let haLog = '';
  haproxy.stdout.on('data', (d) => (haLog += d));
  haproxy.stderr.on('data', (d) => (haLog += d));
  t.teardown(() => void haproxy.kill('SIGKILL'));
  await waitFor(() => runtime(admin, 'show info').then((s) => s.includes('Name: HAProxy')), { what: `HAProxy to start (${haLog})` });

  // Every backend holds the expected containers; with other tests' https containers possibly running, the
  // service backends must contain ours (and only addresses of real containers).
  const expectations: Record<(typeof BACKENDS)[number], string[]> = {
    ha_lxd_rfc2782: names,
    ha_lxd_service: names,
    ha_lxd_service_tagged: ['example-a1'],
    ha_lxd: names,
  };
  for (const backend of BACKENDS) {
    const want = expectations[backend];
    const got = await waitFor(async () => {
      const owners = await slotOwners(backend, owner);
      return want.every((n) => owners.includes(n)) ? owners : false;
    }, { what: `${backend} to hold ${want.join(', ')}`, timeoutMs: 15_000 });
    if (backend === 'ha_lxd' || backend === 'ha_lxd_service_tagged') t.same(got, want, `${backend} holds exactly ${want.join(', ')}`);
    else t.ok(want.every((n) => got.includes(n)), `${backend} holds ${want.join(', ')}`);
    const ports = (await slots(admin, backend)).map((s) => s.slice(s.lastIndexOf(':') + 1));
    t.ok(ports.every((p) => p === '443'), `${backend} slots use port 443 (${ports.join(',')})`);
  }

  const stopped = Date.now();
  await lxc('stop', '--force', 'example-a2');
  for (const backend of ['ha_lxd', 'ha_lxd_rfc2782', 'ha_lxd_service'] as const) {
    await waitFor(async () => {
      const owners = await slotOwners(backend, owner);
      return !owners.includes('example-a2') && owners.includes('example-a1');
    }, { what: `${backend} to drop example-a2 and keep example-a1`, timeoutMs: 20_000 });
    t.pass(`${backend}: stopped container's slot emptied ${Date.now() - stopped} ms after the stop`);
  }
  t.same(await slotOwners('ha_lxd_service_tagged', owner), ['example-a1'], 'the tagged backend is untouched');
});
