import t from 'tap';
import { dig } from '../helpers/dig.js';
import { curl, startLexa, type TestLexa } from '../helpers/lexa.js';
import { IMAGE, incusCli, standaloneLxc, waitFor } from '../helpers/lxd-cli.js';

// Projects and aliases against the real LXD (site `home`, all projects) beside Incus (site `lab`), with dig
// (docs/sites.md). LXD refuses to start two instances of one name on one bridge even across projects, so the
// project's `fs-web` runs on a bridge of its own (fs-br18), as it would on a real host.

const PREFIX = 'fs-';
const PROJECT = 'fs-proj';
const NETWORK = 'fs-br18';
/** The project bridge's subnet: one no other test bed or test uses (18: the issue). */
const NETWORK_V4 = '10.93.18.1/24';
const PROFILE = 'fs-alias';

const lxc = standaloneLxc;
const incus = incusCli;
const quiet = (p: Promise<unknown>) => p.catch(() => undefined);

async function cleanUp(): Promise<void> {
  for (const project of ['default', PROJECT]) {
    const names = (await quiet(lxc('list', '--project', project, '--format', 'csv', '--columns', 'n')) as string | undefined) ?? '';
    for (const n of names.split('\n').filter((n) => n.startsWith(PREFIX))) await quiet(lxc('delete', '--force', '--project', project, n));
  }
  for (const n of (await incus('list', '--format', 'csv', '--columns', 'n')).split('\n').filter((n) => n.startsWith(PREFIX))) await quiet(incus('delete', '--force', n));
  await quiet(lxc('project', 'delete', PROJECT));
  await quiet(lxc('network', 'delete', NETWORK));
  await quiet(lxc('profile', 'delete', PROFILE));
}

function ipv4Of(lexa: TestLexa, name: string, project: string, site: string): string | undefined {
  return lexa.daemon.store.current.hosts(name).find((i) => i.project === project && i.site === site)?.interfaces[0]?.trustedIpv4[0];
}

t.test('projects with colliding names, and aliases with their conflicts', async (t) => {
  await cleanUp();
  t.teardown(cleanUp);
  await lxc('project', 'create', PROJECT, '-c', 'features.images=false', '-c', 'features.profiles=false');
  await lxc('network', 'create', NETWORK, `ipv4.address=${NETWORK_V4}`, 'ipv6.address=none', 'ipv4.nat=false');
  await lxc('profile', 'create', PROFILE);
  await lxc('profile', 'set', PROFILE, 'user.lexa.alias', 'fs-prof');
  await Promise.all([
    lxc('launch', IMAGE, 'fs-web', '--quiet', '--config', 'user.lexa.alias=fs-www,fs-both'),
    lxc('launch', IMAGE, 'fs-web', '--quiet', '--project', PROJECT, '--network', NETWORK),
    lxc('launch', IMAGE, 'fs-c1', '--quiet', '--config', 'user.lexa.alias=fs-both,fs-web'),
    lxc('launch', IMAGE, 'fs-p2', '--quiet', '--profile', 'default', '--profile', PROFILE),
    incus('launch', IMAGE, 'fs-lweb', '--quiet', '--config', 'user.lexa.alias=fs-www,fs-lab-only'),
  ]);
  const lexa = await startLexa(`    name = "home"\n    socket = "/var/lib/lxd/unix.socket"\n    all_projects = true\n  }\n  lxd {\n    name = "lab"\n    socket = "/var/lib/incus/unix.socket"`);
  t.teardown(() => lexa.close());
  const ask = dig(lexa.dnsPort);
  const a = async (name: string) => [...(await ask(name, 'A')).answer].sort();

  const ip = await waitFor(() => {
    const found = {
      web: ipv4Of(lexa, 'fs-web', 'default', 'home'),
      pweb: ipv4Of(lexa, 'fs-web', PROJECT, 'home'),
      c1: ipv4Of(lexa, 'fs-c1', 'default', 'home'),
      p2: ipv4Of(lexa, 'fs-p2', 'default', 'home'),
      lweb: ipv4Of(lexa, 'fs-lweb', 'default', 'lab'),
    };
    return Object.values(found).every((v) => v !== undefined) ? (found as Record<keyof typeof found, string>) : undefined;
  }, { what: 'every instance with an address', timeoutMs: 30_000 });
  t.match(ip.pweb, /^10\.93\.18\./, "the project's fs-web is on its own bridge");

  // Projects: the unqualified name spans projects, as before; a project label picks one.
  t.same(await a('fs-web.lexa'), [`fs-web.lexa. 0 IN A ${ip.pweb}`, `fs-web.lexa. 0 IN A ${ip.web}`].sort());
  t.same(await a(`fs-web.${PROJECT}.lexa`), [`fs-web.${PROJECT}.lexa. 0 IN A ${ip.pweb}`]);
  t.same(await a('fs-web.default.lexa'), [`fs-web.default.lexa. 0 IN A ${ip.web}`]);
  t.same(await a(`fs-web.${PROJECT}.home.lexa`), [`fs-web.${PROJECT}.home.lexa. 0 IN A ${ip.pweb}`]);
  t.equal((await ask(`fs-web.${PROJECT}.lab.lexa`, 'A')).status, 'NXDOMAIN', 'the project is not in lab');

  // Aliases: a CNAME to the instance's name with its address; from the instance, from a profile; per site.
  t.same(await a('fs-www.lexa'), ['fs-www.lexa. 0 IN CNAME fs-web.home.lexa.', `fs-web.home.lexa. 0 IN A ${ip.web}`].sort());
  t.same(await a('fs-www.lab.lexa'), ['fs-www.lab.lexa. 0 IN CNAME fs-lweb.lab.lexa.', `fs-lweb.lab.lexa. 0 IN A ${ip.lweb}`].sort());
  t.same(await a('fs-lab-only.lexa'), ['fs-lab-only.lexa. 0 IN CNAME fs-lweb.lab.lexa.', `fs-lweb.lab.lexa. 0 IN A ${ip.lweb}`].sort());
  t.same(await a('fs-prof.lexa'), ['fs-prof.lexa. 0 IN CNAME fs-p2.home.lexa.', `fs-p2.home.lexa. 0 IN A ${ip.p2}`].sort(), 'an alias from a profile');
  // Conflicts: two claimants (the smaller key answers), an alias that is an instance's name (the instance answers).
  t.same(await a('fs-both.lexa'), ['fs-both.lexa. 0 IN CNAME fs-c1.home.lexa.', `fs-c1.home.lexa. 0 IN A ${ip.c1}`].sort());
  t.notOk((await a('fs-web.home.lexa')).some((r) => r.includes('CNAME')), "fs-web is fs-web, not fs-c1's alias");
  const conflicts = await waitFor(() => {
    const lines = lexa.log.lines.filter((l) => l['msg'] === 'alias conflict').map((l) => String(l['problem']));
    return lines.length >= 2 ? lines : undefined;
  }, { what: 'the conflicts logged' });
  t.match(conflicts.join('\n'), /alias "fs-both" in site home is claimed by home\/default\/fs-c1, home\/default\/fs-web; home\/default\/fs-c1 answers/);
  t.match(conflicts.join('\n'), /alias "fs-web" in site home is also an instance's name; the instance answers/);
  await new Promise((r) => setTimeout(r, 1_500));
  t.equal(lexa.log.lines.filter((l) => l['msg'] === 'alias conflict').length, conflicts.length, 'each logged once');

  // /containers/ shows the aliases and the site.
  const docs = (await curl(`${lexa.restUrl}/containers/fs-web.home`)).json<{ hosts: { name: string; project: string; aliases?: string[] }[] }>().hosts;
  t.match(docs.find((h) => h.project === 'default'), { name: 'fs-web.home.lexa', aliases: ['fs-www', 'fs-both'] });

  // An alias follows its instance: removed from the config, it stops answering.
  await lxc('config', 'unset', 'fs-web', 'user.lexa.alias');
  await waitFor(async () => (await a('fs-www.lexa'))[0]?.includes('fs-lweb.lab.lexa.'), { what: 'fs-www to fail over to lab' });
  t.pass('fs-www now answers from lab');
});
