import t, { type Test } from 'tap';
import { parseName, parseProjectName } from '../../src/dns/name.js';
import { resolve, type ResolveOptions } from '../../src/dns/resolve.js';
import { zoneContent } from '../../src/dns/zone.js';
import { Federation } from '../../src/streams/state/federation.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import type { Instance } from '../../src/streams/model/model.js';
import { iface, instance, member, seeded, service, snapshotOf } from '../helpers/model.js';
import { sortedText, zone } from '../helpers/zone.js';
import { question } from '../helpers/dns-fixture.js';

// Sites hermetically: the name grammar with site labels, and the resolver over a Federation of hand-built site
// snapshots (no LXD): qualified names, unqualified failover in block order, SRV per site, not-ready sites.

const SITES = new Set(['home', 'rack']);

t.test('the grammar: a site label just before the suffix scopes every form', async (t) => {
  const rows: [string, object][] = [
    ['web.home.lexa', { kind: 'host', pattern: 'web', site: 'home' }],
    ['eth0.if.web.rack.lexa', { kind: 'iface', iface: 'eth0', host: 'web', site: 'rack' }],
    ['blue.http.service.home.lexa', { kind: 'service', svc: 'http', tag: 'blue', site: 'home' }],
    ['http.service.home.lexa', { kind: 'service', svc: 'http', site: 'home' }],
    ['_http._tcp.service.rack.lexa', { kind: 'srv', svc: 'http', protoOrTag: 'tcp', site: 'rack' }],
    ['cluster.web.rack.lexa', { kind: 'cluster', host: 'web', site: 'rack' }],
    ['n1.cluster.web.rack.lexa', { kind: 'member', member: 'n1', host: 'web', site: 'rack' }],
    ['web-*.home.lexa', { kind: 'host', pattern: 'web-*', site: 'home' }],
    ['home.lexa', { kind: 'siteApex', site: 'home' }],
    ['HOME.LEXA.', { kind: 'siteApex', site: 'home' }],
    ['a.b.c.d.home.lexa', { kind: 'none' }],
    // Unqualified: as before sites.
    ['web.lexa', { kind: 'host', pattern: 'web' }],
    ['_http._tcp.service.lexa', { kind: 'srv', svc: 'http', protoOrTag: 'tcp' }],
    // Only the last label before the suffix is a site: `home` further left is a host label.
    ['home.rack.lexa', { kind: 'host', pattern: 'home', site: 'rack' }],
    ['if.web.home.lexa', { kind: 'ifaceParent', host: 'web', site: 'home' }],
    ['other.lexa', { kind: 'host', pattern: 'other' }],
  ];
  for (const [qname, form] of rows) t.strictSame(parseName(qname, 'lexa', SITES), form, qname);
  t.strictSame(parseName('home.lexa', 'lexa'), { kind: 'host', pattern: 'home' }, 'without sites a label is a host');
});

const opts: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 0 }, random: seeded(1), sites: ['home', 'rack'] };
const at = (site: string, name: string, ip: string, over: Partial<Instance> = {}): Instance =>
  instance(name, { key: `${site}/default/${name}`, site, interfaces: [iface('eth0', [ip])], ...over });
const http = service('http', { port: 80 });

const home = () => snapshotOf([at('home', 'web', '10.99.0.10', { services: [http] }), at('home', 'only-home', '10.99.0.11')], [member('h', ['10.0.0.1'])], false);
const rack = () =>
  snapshotOf(
    [at('rack', 'web', '10.77.0.20', { services: [http], location: 'n1' }), at('rack', 'db', '10.77.0.21', { location: 'n2' })],
    [member('n1', ['10.77.0.11']), member('n2', ['10.77.0.12'])],
    true,
  );
const fed = (h: Snapshot = home(), r: Snapshot = rack()) => new Federation([{ name: 'home', snapshot: h }, { name: 'rack', snapshot: r }], 1);

function answers(t: Test, view: Federation, q: string, want: string[] | string): void {
  const out = resolve(view, question(q), opts);
  if (typeof want === 'string') t.equal(out.kind, want, q);
  else if (out.kind !== 'answer') t.fail(`${q}: ${out.kind}`);
  else t.same(sortedText([...out.answers, ...out.additionals]), zone(...want), q);
}

t.test('qualified names answer from their site; unqualified from the first site that has the name', async (t) => {
  const v = fed();
  answers(t, v, 'web.home.lexa A', ['web.home.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'web.rack.lexa A', ['web.rack.lexa. 0 IN A 10.77.0.20']);
  answers(t, v, 'web.lexa A', ['web.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'db.lexa A', ['db.lexa. 0 IN A 10.77.0.21']);
  answers(t, v, 'db.home.lexa A', 'nxdomain');
  answers(t, v, 'home.lexa A', 'nodata');
  answers(t, v, '*.lexa A', ['*.lexa. 0 IN A 10.99.0.10', '*.lexa. 0 IN A 10.99.0.11']);
  answers(t, v, '*.rack.lexa A', ['*.rack.lexa. 0 IN A 10.77.0.20', '*.rack.lexa. 0 IN A 10.77.0.21']);
  answers(t, v, 'http.service.lexa A', ['http.service.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, '_http._tcp.service.rack.lexa SRV', [
    '_http._tcp.service.rack.lexa. 0 IN SRV 1 255 80 eth0.if.web.rack.lexa.',
    'eth0.if.web.rack.lexa. 0 IN A 10.77.0.20',
  ]);
  answers(t, v, '_http._tcp.service.lexa SRV', [
    '_http._tcp.service.lexa. 0 IN SRV 1 255 80 eth0.if.web.home.lexa.',
    'eth0.if.web.home.lexa. 0 IN A 10.99.0.10',
  ]);
  answers(t, v, 'cluster.web.rack.lexa A', ['cluster.web.rack.lexa. 0 IN A 10.77.0.11']);
  answers(t, v, 'cluster.db.lexa A', ['cluster.db.lexa. 0 IN A 10.77.0.12']);
  answers(t, v, 'cluster.web.home.lexa A', ['cluster.web.home.lexa. 0 IN A 10.0.0.1']);
  answers(t, v, '10.0.99.10.in-addr.arpa PTR', 'refused');
});

t.test('failover: when the first site loses the name, the next site answers', async (t) => {
  const stopped = snapshotOf([at('home', 'web', '10.99.0.10', { running: false, services: [http] })], [], false);
  const v = fed(stopped);
  answers(t, v, 'web.lexa A', ['web.lexa. 0 IN A 10.77.0.20']);
  answers(t, v, 'web.home.lexa A', 'nxdomain');
  answers(t, v, '_http._tcp.service.lexa SRV', [
    '_http._tcp.service.lexa. 0 IN SRV 1 255 80 eth0.if.web.rack.lexa.',
    'eth0.if.web.rack.lexa. 0 IN A 10.77.0.20',
  ]);
});

t.test('a site that has not listed: its names SERVFAIL, the others answer, misses are not NXDOMAIN', async (t) => {
  const v = fed(home(), Snapshot.empty());
  answers(t, v, 'web.lexa A', ['web.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'web.rack.lexa A', 'notready');
  answers(t, v, 'db.lexa A', 'notready');
  answers(t, v, 'db.home.lexa A', 'nxdomain');
  answers(t, fed(Snapshot.empty(), Snapshot.empty()), 'web.lexa A', 'notready');
});

t.test('the one zone holds every site under its label; PTR names the site', async (t) => {
  const v = fed();
  const z = zoneContent(v, 'lexa', { suffix: 'lexa', ttl: 0, mname: 'ns.lexa', soa: { mname: 'ns.lexa', rname: 'h.lexa', refresh: 1, retry: 1, expire: 1, minimum: 0 }, nameServerRecords: [] });
  const names = new Set(z.map((r) => r.name));
  for (const n of ['web.home.lexa', 'web.rack.lexa', 'db.rack.lexa', 'http.service.home.lexa', '_http._tcp.service.rack.lexa', 'eth0.if.db.rack.lexa'])
    t.ok(names.has(n), n);
  t.notOk(names.has('web.lexa'), 'unqualified names are a per-question choice, not zone content');
  const ptr = resolve(v, question('20.0.77.10.in-addr.arpa PTR'), { ...opts, reverseZones: ['0.77.10.in-addr.arpa'] });
  t.match(ptr, { kind: 'answer', answers: [{ data: 'web.rack.lexa' }] });
});

t.test('one unnamed site: the lookups are the snapshot itself, unchanged', async (t) => {
  const s = snapshotOf([instance('web', { interfaces: [iface('eth0', ['10.99.0.10'])] })]);
  const out = resolve(s, question('web.lexa A'), { suffix: 'lexa', ttl: 0, soa: { minimum: 0 } });
  t.match(out, { kind: 'answer', answers: [{ name: 'web.lexa', data: '10.99.0.10' }] });
});

t.test('projects: <host>.<project>[.<site>].<suffix> where the name has no other form', async (t) => {
  const web = (project: string, ip: string) => at('rack', 'web', ip, { project, key: `rack/${project}/web` });
  const v = fed(home(), snapshotOf([web('default', '10.77.0.20'), web('p1', '10.77.0.30')], [], false));
  answers(t, v, 'web.rack.lexa A', ['web.rack.lexa. 0 IN A 10.77.0.20', 'web.rack.lexa. 0 IN A 10.77.0.30']);
  answers(t, v, 'web.p1.rack.lexa A', ['web.p1.rack.lexa. 0 IN A 10.77.0.30']);
  answers(t, v, 'web.default.rack.lexa A', ['web.default.rack.lexa. 0 IN A 10.77.0.20']);
  answers(t, v, 'web.p1.lexa A', ['web.p1.lexa. 0 IN A 10.77.0.30']);
  answers(t, v, 'web.default.lexa A', ['web.default.lexa. 0 IN A 10.99.0.10']); // unqualified by site: the first site that has it
  answers(t, v, 'eth0.if.web.p1.rack.lexa A', ['eth0.if.web.p1.rack.lexa. 0 IN A 10.77.0.30']);
  answers(t, v, 'web.p2.lexa A', 'nxdomain');
  answers(t, v, 'db.p1.home.lexa A', 'nxdomain');
  // Every form of the grammar wins over a project reading: `cluster.web` is the cluster form, not project `web`.
  t.same(parseName('cluster.web.lexa', 'lexa'), { kind: 'cluster', host: 'web' });
  t.same(parseProjectName('web.p1.rack.lexa', 'lexa', SITES), { kind: 'host', pattern: 'web', project: 'p1', site: 'rack' });
  t.same(parseProjectName('a.b.c.d.lexa', 'lexa', SITES), { kind: 'none' });
  // With a test for running hosts, a host nobody runs ends the reading (a random-subdomain flood's cheap NXDOMAIN);
  // every form still reads where its host runs, and a pattern is never ruled out by it.
  const runs = (host: string) => host === 'web';
  t.same(parseProjectName('nope.p1.lexa', 'lexa', SITES, runs), { kind: 'none' });
  t.same(parseProjectName('web.p1.rack.lexa', 'lexa', SITES, runs), { kind: 'host', pattern: 'web', project: 'p1', site: 'rack' });
  t.same(parseProjectName('eth0.if.web.p1.lexa', 'lexa', SITES, runs), { kind: 'iface', iface: 'eth0', host: 'web', project: 'p1' });
  t.same(parseProjectName('cluster.web.p1.lexa', 'lexa', SITES, runs), { kind: 'cluster', host: 'web', project: 'p1' });
  t.same(parseProjectName('c1.cluster.web.p1.lexa', 'lexa', SITES, runs), { kind: 'member', member: 'c1', host: 'web', project: 'p1' });
  t.same(parseProjectName('eth0.if.db.p1.lexa', 'lexa', SITES, runs), { kind: 'none' });
  t.same(parseProjectName('we*.p1.lexa', 'lexa', SITES, runs), { kind: 'host', pattern: 'we*', project: 'p1' });
  answers(t, v, 'w*.p1.rack.lexa A', ['w*.p1.rack.lexa. 0 IN A 10.77.0.30']);
  answers(t, v, 'nope.p1.lexa A', 'nxdomain');
});

t.test('aliases: a CNAME to the instance, with its addresses; conflicts resolved one way', async (t) => {
  const h = snapshotOf([
    at('home', 'web', '10.99.0.10', { aliases: ['www', 'shop.www', 'store.lexa.'] }),
    at('home', 'db', '10.99.0.12', { aliases: ['web', 'data'] }),
    at('home', 'b-claims', '10.99.0.13', { aliases: ['both'] }),
    at('home', 'a-claims', '10.99.0.14', { aliases: ['both'] }),
  ], [], false);
  const r = snapshotOf([at('rack', 'api', '10.77.0.40', { aliases: ['www', 'rackonly'] })], [], false);
  const v = fed(h, r);
  answers(t, v, 'www.lexa A', ['www.lexa. 0 IN CNAME web.home.lexa.', 'web.home.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'www.rack.lexa A', ['www.rack.lexa. 0 IN CNAME api.rack.lexa.', 'api.rack.lexa. 0 IN A 10.77.0.40']);
  answers(t, v, 'rackonly.lexa A', ['rackonly.lexa. 0 IN CNAME api.rack.lexa.', 'api.rack.lexa. 0 IN A 10.77.0.40']);
  answers(t, v, 'shop.www.lexa A', ['shop.www.lexa. 0 IN CNAME web.home.lexa.', 'web.home.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'store.lexa A', ['store.lexa. 0 IN CNAME web.home.lexa.', 'web.home.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'store.home.lexa A', 'nxdomain');
  answers(t, v, 'www.lexa CNAME', ['www.lexa. 0 IN CNAME web.home.lexa.']);
  answers(t, v, 'www.lexa MX', ['www.lexa. 0 IN CNAME web.home.lexa.']);
  // An alias that is another instance's name: the instance's own name wins.
  answers(t, v, 'web.lexa A', ['web.lexa. 0 IN A 10.99.0.10']);
  answers(t, v, 'data.lexa A', ['data.lexa. 0 IN CNAME db.home.lexa.', 'db.home.lexa. 0 IN A 10.99.0.12']);
  // Two instances claim one alias: the smaller key wins, every time.
  for (let i = 0; i < 3; i++) answers(t, v, 'both.lexa A', ['both.lexa. 0 IN CNAME a-claims.home.lexa.', 'a-claims.home.lexa. 0 IN A 10.99.0.14']);
  // A stopped instance's aliases leave with it.
  const stopped = snapshotOf([at('home', 'web', '10.99.0.10', { running: false, aliases: ['www'] })], [], false);
  answers(t, fed(stopped, r), 'www.lexa A', ['www.lexa. 0 IN CNAME api.rack.lexa.', 'api.rack.lexa. 0 IN A 10.77.0.40']);
});

t.test('aliases: what the key accepts', async (t) => {
  const { parseAliases, MAX_ALIASES } = await import('../../src/streams/model/aliases.js');
  t.same(parseAliases({ 'user.lexa.alias': ' WWW, shop.www ,,store.lexa., www' }), { aliases: ['www', 'shop.www', 'store.lexa.'], errors: [] });
  t.match(parseAliases({ 'user.lexa.alias': 'ok,*,a..b,bad name,' + 'x'.repeat(64) }), { aliases: ['ok'], errors: [/"\*"/, /"a\.\.b"/, /"bad name"/, /is not a DNS name/] });
  const many = Array.from({ length: MAX_ALIASES + 5 }, (_, i) => `a${i}`).join(',');
  const out = parseAliases({ 'user.lexa.alias': many });
  t.equal(out.aliases.length, MAX_ALIASES, 'bounded');
  t.match(out.errors, [/more than 16 names/]);
  t.same(parseAliases({}), { aliases: [], errors: [] });
  const { parseServiceKeys } = await import('../../src/streams/model/services.js');
  t.same(parseServiceKeys({ 'user.lexa.alias': 'www' }).errors, [], 'not an unknown key to the service parser');
});

t.test('aliases: the snapshot index follows changes', async (t) => {
  let s = snapshotOf([instance('web', { aliases: ['www'], interfaces: [iface('eth0', ['10.0.0.1'])] })]);
  t.equal(s.aliased('www').length, 1);
  s = s.withInstance(instance('web', { aliases: ['w2'], interfaces: [iface('eth0', ['10.0.0.1'])] }));
  t.equal(s.aliased('www').length, 0, 'a dropped alias leaves the index');
  t.equal(s.aliased('w2').length, 1);
  s = s.withoutInstance('default/web');
  t.equal(s.aliased('w2').length, 0, 'and a deleted instance');
});

t.test('alias conflicts: each said once, in words that name the winner', async (t) => {
  const { aliasConflicts } = await import('../../src/streams/state/alias-conflicts.js');
  const v = fed(
    snapshotOf([at('home', 'web', '10.99.0.10'), at('home', 'db', '10.99.0.12', { aliases: ['web'] }), at('home', 'b', '10.99.0.13', { aliases: ['x'] }), at('home', 'a', '10.99.0.14', { aliases: ['x'] })], [], false),
    snapshotOf([at('rack', 'c', '10.77.0.10', { aliases: ['x'] })], [], false),
  );
  t.same(aliasConflicts(v), [
    'alias "web" in site home is also an instance\'s name; the instance answers (claimed by home/default/db)',
    'alias "x" in site home is claimed by home/default/a, home/default/b; home/default/a answers',
  ]);
  t.same(aliasConflicts(fed()), [], 'none without aliases');
});
