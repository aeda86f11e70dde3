import t from 'tap';
import { CLUSTER_CERT, deleteClusterPrefix, launchOn, MEMBERS } from '../helpers/cluster.js';
import { dig } from '../helpers/dig.js';
import { curl, startLexa, type TestLexa } from '../helpers/lexa.js';
import { CLIENT_CERT, CLIENT_KEY, IMAGE, incusCli, runCli, standaloneLxc, waitFor } from '../helpers/lxd-cli.js';

// The real daemons of the test bed as three sites of one lexa (docs/sites.md): the standalone LXD
// (scripts/testbed.sh) first, the 2-member LXD cluster (scripts/cluster-bed.sh) second, Incus (scripts/incus.sh)
// third. Each runs an `fs-web` offering service `fsweb`; Incus alone runs `fs-solo`. Checked with dig: names per
// site, unqualified failover when the first site loses its instance, per-site SRV, a frozen Incus (SIGSTOP)
// leaving the others answering and REST responsive, and its recovery.

const PREFIX = 'fs-';
const LXD_SOCKET = '/var/lib/lxd/unix.socket';
const INCUS_SOCKET = '/var/lib/incus/unix.socket';
const INCUSD = '^/usr/libexec/incus/incusd --group root';
const SERVICE = { 'user.lexa.service.fsweb.port': '80' };
/** Incus's watchdog in this test: short, so the frozen daemon is noticed (and logged) within the test. */
const INCUS_WATCHDOG = '3s';

const lxc = standaloneLxc;
const incus = incusCli;
const withConfig = (args: string[], config: Record<string, string>) => [...args, ...Object.entries(config).flatMap(([k, v]) => ['--config', `${k}=${v}`])];

async function deleteAll(): Promise<void> {
  for (const cli of [lxc, incus]) {
    const names = (await cli('list', '--format', 'csv', '--columns', 'n')).split('\n').filter((n) => n.startsWith(PREFIX));
    for (const n of names) await cli('delete', '--force', n).catch(() => undefined);
  }
  await deleteClusterPrefix(PREFIX);
}

/** The `lxd` blocks of the three sites, in failover order. */
function siteBlocks(): string {
  const blocks = [
    `    name = "home"\n    socket = "${LXD_SOCKET}"`,
    `    name = "rack"\n    bind {\n      host = "${MEMBERS[1].address}"\n      port = 8443\n    }\n    certificate = "${CLIENT_CERT}"\n    key = "${CLIENT_KEY}"\n    server_certificate = "${CLUSTER_CERT}"`,
    `    name = "lab"\n    socket = "${INCUS_SOCKET}"\n    watchdog_timeout = "${INCUS_WATCHDOG}"`,
  ];
  // startLexa writes `lxd { <block> }`: closing and reopening the block between them makes three blocks.
  return blocks.join('\n  }\n  lxd {\n');
}

/** The IPv4 lexa knows for `name` in `site` (undefined until it has one). */
function ipv4Of(lexa: TestLexa, name: string, site: string): string | undefined {
  return lexa.daemon.store.current.hosts(name).find((i) => i.site === site)?.interfaces[0]?.trustedIpv4[0];
}

t.test('three sites of one lexa: LXD, an LXD cluster and Incus', async (t) => {
  await deleteAll();
  t.teardown(deleteAll);
  await Promise.all([
    lxc(...withConfig(['launch', IMAGE, 'fs-web', '--quiet'], SERVICE)),
    launchOn(2, 'fs-web', SERVICE),
    incus(...withConfig(['launch', IMAGE, 'fs-web', '--quiet'], SERVICE)),
    incus('launch', IMAGE, 'fs-solo', '--quiet'),
  ]);
  const lexa = await startLexa(siteBlocks());
  t.teardown(() => lexa.close());
  const ask = dig(lexa.dnsPort);
  const a = async (name: string) => (await ask(name, 'A')).answer;

  const ip = await waitFor(() => {
    const [home, rack, lab, solo] = [ipv4Of(lexa, 'fs-web', 'home'), ipv4Of(lexa, 'fs-web', 'rack'), ipv4Of(lexa, 'fs-web', 'lab'), ipv4Of(lexa, 'fs-solo', 'lab')];
    return home && rack && lab && solo ? { home, rack, lab, solo } : undefined;
  }, { what: 'every site listed with its addresses', timeoutMs: 30_000 });
  t.not(ip.home, ip.lab, 'the sites are different daemons');

  // Names per site, and the unqualified name from the first site.
  t.same(await a('fs-web.home.lexa'), [`fs-web.home.lexa. 0 IN A ${ip.home}`]);
  t.same(await a('fs-web.rack.lexa'), [`fs-web.rack.lexa. 0 IN A ${ip.rack}`]);
  t.same(await a('fs-web.lab.lexa'), [`fs-web.lab.lexa. 0 IN A ${ip.lab}`]);
  t.same(await a('fs-web.lexa'), [`fs-web.lexa. 0 IN A ${ip.home}`], 'unqualified: the first site');
  t.same(await a('fs-solo.lexa'), [`fs-solo.lexa. 0 IN A ${ip.solo}`], 'unqualified: the only site that has it');
  t.equal((await ask('fs-solo.home.lexa', 'A')).status, 'NXDOMAIN', 'qualified: only that site');
  const rackMember = await a('cluster.fs-web.rack.lexa');
  t.same(rackMember, [`cluster.fs-web.rack.lexa. 0 IN A ${MEMBERS[2].address}`], 'cluster names within a site');

  // SRV per site, targets naming the site.
  const srv = await ask('_fsweb._tcp.service.rack.lexa', 'SRV');
  t.same(srv.answer, ['_fsweb._tcp.service.rack.lexa. 0 IN SRV 1 255 80 eth0.if.fs-web.rack.lexa.']);
  t.match(srv.additional, [`eth0.if.fs-web.rack.lexa. 0 IN A ${ip.rack}`]);
  t.same((await ask('_fsweb._tcp.service.lexa', 'SRV')).answer, ['_fsweb._tcp.service.lexa. 0 IN SRV 1 255 80 eth0.if.fs-web.home.lexa.'], 'unqualified SRV: the first site');

  // /readyz lists each site; /containers/ names each instance's site.
  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 200);
  t.match(ready.json(), { ready: true, sites: [{ site: 'home', ready: true }, { site: 'rack', ready: true }, { site: 'lab', ready: true }] });
  const docs = (await curl(`${lexa.restUrl}/containers/`)).json<{ hosts: { name: string; site: string }[] }>().hosts.filter((h) => h.name.startsWith(PREFIX));
  t.same(docs.map((h) => h.name).sort(), ['fs-solo.lab.lexa', 'fs-web.home.lexa', 'fs-web.lab.lexa', 'fs-web.rack.lexa']);

  // Failover: the first site's only fs-web stops; the unqualified name moves to the next site.
  await lxc('stop', '--force', 'fs-web');
  await waitFor(async () => (await a('fs-web.lexa'))[0] === `fs-web.lexa. 0 IN A ${ip.rack}`, { what: 'fs-web.lexa to fail over to rack' });
  t.equal((await ask('fs-web.home.lexa', 'A')).status, 'NXDOMAIN', 'the stopped one is gone from its site');
  t.same((await ask('_fsweb._tcp.service.lexa', 'SRV')).answer, ['_fsweb._tcp.service.lexa. 0 IN SRV 1 255 80 eth0.if.fs-web.rack.lexa.'], 'and the SRV set');

  // A frozen site: Incus hangs (SIGSTOP); the others answer, REST answers, Incus's last picture stays.
  const pids = (await runCli('pgrep', ['-f', INCUSD])).trim().split('\n').filter(Boolean).map(Number);
  t.ok(pids.length > 0, 'found incusd');
  const thaw = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Already gone: nothing to thaw.
      }
    }
  };
  t.teardown(thaw);
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  try {
    await waitFor(() => lexa.daemon.store.current.sites.find((s) => s.name === 'lab')?.connected === false, { what: 'lexa to notice Incus hung', timeoutMs: 15_000 });
    t.same(await a('fs-web.rack.lexa'), [`fs-web.rack.lexa. 0 IN A ${ip.rack}`], 'rack answers while lab is frozen');
    t.same(await a('fs-solo.lexa'), [`fs-solo.lexa. 0 IN A ${ip.solo}`], "the frozen site's last picture answers");
    const started = Date.now();
    const during = await curl(`${lexa.restUrl}/readyz`);
    t.equal(during.status, 200, 'every site has listed once: still ready');
    t.match(during.json(), { sites: [{ site: 'home', lxdConnected: true }, { site: 'rack', lxdConnected: true }, { site: 'lab', lxdConnected: false }] });
    t.equal((await curl(`${lexa.restUrl}/containers/fs-web.rack`)).status, 200, 'REST answers');
    t.ok(Date.now() - started < 5_000, 'REST did not wait for the frozen site');
  } finally {
    thaw();
  }

  // Recovery: lab reconnects, re-lists, and follows new instances again.
  await waitFor(() => lexa.daemon.store.current.sites.find((s) => s.name === 'lab')?.connected === true, { what: 'lab to reconnect', timeoutMs: 30_000 });
  await incus('launch', IMAGE, 'fs-late', '--quiet');
  const late = await waitFor(() => ipv4Of(lexa, 'fs-late', 'lab'), { what: 'fs-late in lab', timeoutMs: 15_000 });
  t.same(await a('fs-late.lexa'), [`fs-late.lexa. 0 IN A ${late}`], 'events flow again');
  t.same(await a('fs-web.lexa'), [`fs-web.lexa. 0 IN A ${ip.rack}`], 'the failover still holds');
});
