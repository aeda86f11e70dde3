import t from 'tap';
import { parseExposition, sample } from '../helpers/cli-process.js';
import { compare, compareAfterSettle, describeComparison, type Source } from '../helpers/exact-view.js';
import { faultDeletePrefix, faultLaunch, faultLxdBlock, faultQuery, flxc, killFaultDaemon, startFaultDaemon } from '../helpers/fault-bed.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { IMAGE, standaloneLxc, waitFor } from '../helpers/lxd-cli.js';

// One federation site lost while the other serves: site "home" is the shared test LXD (over its unix socket; the
// comparison covers only this test's instance there, since other tests' instances come and go all afternoon),
// site "bed" the fault bed, whose daemon is SIGKILLed. While it is gone, home keeps following LXD exactly, bed
// keeps its last picture exactly, and /readyz and the metrics say per site which is disconnected. After the bed
// daemon is back (with a change made on it), the whole view equals LXD's at the settle bound.

const PREFIX = 'flt-f';
const HOME = `${PREFIX}-home`;
const BED = `${PREFIX}-bed`;
/** As in lxd-faults.test.ts: backoff ceiling (5 s) + one re-list + address re-reads, with room for a busy machine. */
const SETTLE_MS = 12_000;
const WATCHDOG = '2s';

const home: Source = { query: (p) => standaloneLxc('query', p), zone: 'home.lexa', covers: (n) => n.startsWith(PREFIX) };
const bed: Source = { query: faultQuery, zone: 'bed.lexa' };
const alsoAsk = [`${HOME}.home.lexa`, `${BED}.bed.lexa`];
const alsoServices = ['home.lexa http tcp', 'bed.lexa http tcp'];

t.before(async () => {
  await startFaultDaemon();
  await standaloneLxc('delete', '--force', HOME).catch(() => undefined);
  await faultDeletePrefix(PREFIX);
  await standaloneLxc('launch', IMAGE, HOME, '--quiet', '--config', 'user.lexa.service.http.port=80');
  await faultLaunch(BED, { 'user.lexa.service.http.port': '80' });
});
t.teardown(async () => {
  await startFaultDaemon().catch(() => undefined);
  await standaloneLxc('delete', '--force', HOME).catch(() => undefined);
  await faultDeletePrefix(PREFIX);
});

t.test('the fault bed site lost while the shared site serves, then back', async (t) => {
  const lexa = await startLexa(`    name = "home"
    socket = "/var/lib/lxd/unix.socket"
  }
  lxd {
    name = "bed"
${faultLxdBlock(undefined, `    watchdog_timeout = "${WATCHDOG}"`)}`);
  t.teardown(() => lexa.close());
  const equal = async (sources: Source[]) => {
    const c = await compare(lexa, sources, alsoAsk, alsoServices);
    if (c.rest.length === 0 && c.dns.length === 0 && c.truth.size === 2) return c;
    throw new Error(describeComparison(c));
  };
  // The picture bed keeps is the one lexa equals just before the kill: taken, then compared, in one round, once the
  // instance has both its addresses (its SLAAC IPv6 comes a moment after the DHCP lease, with no LXD event: a picture
  // taken after lexa's last read could hold an address lexa has not read yet).
  await waitFor(async () => {
    const [inst] = (JSON.parse(await faultQuery('/1.0/instances?recursion=2')) as { name: string; state?: { network?: Record<string, { addresses: { family: string; scope: string }[] }> } }[])
      .filter((i) => i.name === BED);
    const families = new Set(inst?.state?.network?.['eth0']?.addresses.filter((a) => a.scope === 'global').map((a) => a.family));
    if (!families.has('inet') || !families.has('inet6')) throw new Error(`${BED} has not both its addresses yet`);
    return true;
  }, { what: `${BED} to have its IPv4 and IPv6`, timeoutMs: SETTLE_MS });
  let bedPicture: Source = bed;
  await waitFor(async () => {
    const json = await faultQuery('/1.0/instances?recursion=2');
    const picture: Source = { ...bed, query: async () => json };
    await equal([home, picture]);
    bedPicture = picture;
    return true;
  }, { what: 'lexa to equal both sites before the fault', timeoutMs: SETTLE_MS });
  killFaultDaemon();
  await waitFor(() => lexa.daemon.store.current.sites.find((s) => s.name === 'bed')?.connected === false, { what: 'lexa to notice the lost site', timeoutMs: 15_000 });

  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 200, 'still ready: every site has listed once');
  t.match(ready.json(), { sites: [{ site: 'home', lxdConnected: true, staleSeconds: 0 }, { site: 'bed', ready: true, lxdConnected: false }] }, '/readyz names the lost site');
  const metrics = parseExposition((await curl(`${lexa.restUrl}/metrics`)).body);
  t.same([sample(metrics, 'lexa_lxd_connected', { site: 'home' }), sample(metrics, 'lexa_lxd_connected', { site: 'bed' })], [1, 0], 'lexa_lxd_connected per site');

  // The live site keeps following its LXD while the other is gone.
  await standaloneLxc('config', 'set', HOME, 'user.lexa.service.http.tags', 'while-bed-lost');
  const c = await waitFor(() => equal([home, bedPicture]), { what: 'home live and bed as last seen', timeoutMs: SETTLE_MS }).catch((err: Error) => err);
  t.ok(!(c instanceof Error), 'while bed is lost: home equals its LXD, bed its last picture, exactly', { diff: c instanceof Error ? c.message : '' });

  await startFaultDaemon();
  await flxc('config', 'set', BED, 'user.lexa.service.http.tags', 'back');
  const from = Date.now();
  const { comparison, firstEqualMs } = await compareAfterSettle(lexa, [home, bed], { from, boundMs: SETTLE_MS, alsoAsk, alsoServices });
  t.ok(comparison.rest.length === 0 && comparison.dns.length === 0 && comparison.truth.size === 2,
    `after the site returned: lexa equals both LXDs at ${SETTLE_MS} ms (first equal after ${firstEqualMs ?? '-'} ms)`, { diff: describeComparison(comparison) });
  t.match((await curl(`${lexa.restUrl}/readyz`)).json(), { sites: [{ site: 'home', lxdConnected: true }, { site: 'bed', lxdConnected: true }] });
});
