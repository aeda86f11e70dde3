import t from 'tap';
import {
  daemonKind,
  fold,
  NO_TRAEFIK_LABELS,
  parseServiceKeys,
  planEvent,
  Snapshot,
  toInstance,
  toMember,
  toStandaloneMember,
  type Action,
  type Instance,
  type LxdEvent,
} from '../../src/streams/index.js';
import { lxdInstance as lxd } from '../helpers/fake-lxd.js';
import { deepFreeze } from '../helpers/model.js';
import { scans } from '../helpers/scan.js';

const inst = (name: string, opts?: Parameters<typeof lxd>[1]): Instance => deepFreeze(toInstance(lxd(name, opts)));

t.test('toInstance keeps small records: what most instances have in common is shared, not copied (docs/performance.md, memory)', async (t) => {
  const a = toInstance(lxd('web-1', { v4: '10.0.0.2', v6: 'fd42::2' }));
  const b = toInstance(lxd('web-2', { v4: '10.0.0.3', v6: 'fd42::3' }));
  t.equal(a.traefik, NO_TRAEFIK_LABELS, 'no user.traefik.* key: the one frozen value');
  t.equal(a.configErrors, b.configErrors, 'no problem: one shared empty list');
  t.equal(a.interfaces[0]!.trustedIpv4, a.interfaces[0]!.ipv4, 'every IPv4 trusted: the same array');
  t.equal(a.interfaces[0]!.trustedIpv6, a.interfaces[0]!.ipv6, 'every IPv6 trusted: the same array');
  const labelled = toInstance(lxd('web-3', { config: { 'user.traefik.enable': 'false' } }));
  t.not(labelled.traefik, NO_TRAEFIK_LABELS);
  t.same(labelled.traefik, { ...NO_TRAEFIK_LABELS, enabled: false }, 'a declared key is still read');
});

t.test('toInstance: primary interface, global addresses only, loopback skipped', async (t) => {
  const i = toInstance(lxd('web-1', { v4: '10.0.0.2', v6: 'fd42::2' }));
  t.equal(i.key, 'default/web-1');
  t.equal(i.running, true);
  t.same(i.interfaces, [{ name: 'eth0', ipv4: ['10.0.0.2'], ipv6: ['fd42::2'], trustedIpv4: ['10.0.0.2'], trustedIpv6: ['fd42::2'] }]);
  const stopped = toInstance(lxd('web-1', { status: 'Stopped' }));
  t.equal(stopped.running, false);
  t.same(stopped.interfaces, [{ name: 'eth0', ipv4: [], ipv6: [], trustedIpv4: [], trustedIpv6: [] }], 'a managed NIC is listed before it has addresses');
  const extra = toInstance({
    ...lxd('multi', { v4: '10.0.0.3' }),
    expanded_devices: { eth1: { type: 'nic', name: 'eth1' }, eth0: { type: 'nic' } },
  });
  t.same(extra.interfaces.map((x) => x.name), ['eth1', 'eth0'], "LXD's device order decides the primary interface");
  t.same(toInstance({}).interfaces, [], 'an empty object does not throw');
  t.same(toInstance({ ...lxd('p'), profiles: ['default', 'web'] }).profiles, ['default', 'web']);
  t.same(toInstance({}).profiles, []);
});

t.test('members take their address from the API URL', async (t) => {
  t.same(toMember({ server_name: 'node1', url: 'https://10.77.0.11:8443', status: 'Online' }), {
    name: 'node1', url: 'https://10.77.0.11:8443', status: 'Online', ipv4: ['10.77.0.11'], ipv6: [],
  });
  t.same(toMember({ server_name: 'n6', url: 'https://[fd00::11]:8443' }).ipv6, ['fd00::11']);
  t.same(toMember({ server_name: 'x', url: 'not a url' }).ipv4, []);
});

t.test('a standalone LXD is the one member of its own cluster', async (t) => {
  t.same(toStandaloneMember({ server_name: 'host1', addresses: ['10.0.0.5:8443', '[fd00::5]:8443', '0.0.0.0:8443', '[::]:8443'] }), {
    name: 'host1', url: 'https://10.0.0.5:8443', status: 'Online', ipv4: ['10.0.0.5'], ipv6: ['fd00::5'],
  });
  t.same(toStandaloneMember({ server_name: 'quiet', addresses: [] }), { name: 'quiet', url: '', status: 'Online', ipv4: [], ipv6: [] });
  t.equal(toStandaloneMember(undefined).name, 'none');
});

t.test('service keys', async (t) => {
  const ok = parseServiceKeys({
    'user.lexa.service.http.port': '80',
    'user.lexa.service.http.tags': 'Blue, canary,blue',
    'user.lexa.service.dns.port': '53',
    'user.lexa.service.dns.proto': 'tcp,udp',
    'user.lexa.service.dns.priority': '5',
    'user.lexa.service.dns.weight': '3',
    'user.lexa.service.dns.interface': 'eth1',
    'user.other': 'ignored',
  });
  t.same(ok.errors, []);
  t.same(ok.services, [
    { name: 'dns', port: 53, proto: 'tcp', tags: [], interface: 'eth1', priority: 5, weight: 3, source: 'config' },
    { name: 'dns', port: 53, proto: 'udp', tags: [], interface: 'eth1', priority: 5, weight: 3, source: 'config' },
    { name: 'http', port: 80, proto: 'tcp', tags: ['blue', 'canary'], interface: null, priority: 1, weight: 1, source: 'config' },
  ]);
  const bad = parseServiceKeys({
    'user.lexa.service.a.port': '0',
    'user.lexa.service.b.tags': 'x',
    'user.lexa.service.c.port': '80',
    'user.lexa.service.c.proto': 'sctp',
    'user.lexa.service.d.port': '80',
    'user.lexa.service.d.weight': '300',
    'user.lexa.service.e_x.port': '80',
    'user.lexa.service.f.colour': 'red',
    'user.lexa.services': 'x',
    'user.lexa.service.g.port': '80',
    'user.lexa.service.g.tags': 'ok,not ok',
    'user.lexa.service.h.port': '80',
    'user.lexa.service.h.tags': Array.from({ length: 33 }, (_, i) => `t${i}`).join(','),
  });
  t.same(bad.services, []);
  t.match(bad.errors.sort(), [
    /user\.lexa\.service\.a\.port: "0" is not a port number/,
    /user\.lexa\.service\.b\.port: missing/,
    /user\.lexa\.service\.c\.proto: "sctp" must be tcp, udp or tcp,udp/,
    /user\.lexa\.service\.d\.weight: "300" must be 1\.\.256/,
    /user\.lexa\.service\.e_x\.port: service name must be a DNS label/,
    /user\.lexa\.service\.f\.colour: unknown field "colour"/,
    /user\.lexa\.service\.g\.tags: tag "not ok" is not a DNS label/,
    /user\.lexa\.service\.h\.tags: 33 tags; at most 32/,
    /user\.lexa\.services: unknown lexa key/,
  ]);
  t.same(parseServiceKeys(null), { services: [], errors: [] });
});

t.test('event plans', async (t) => {
  const ev = (action: string, source: string, context?: Record<string, unknown>, project?: string): LxdEvent => ({
    type: 'lifecycle', project, metadata: { action, source, ...(context ? { context } : {}) },
  });
  t.same(planEvent(ev('instance-started', '/1.0/instances/web-1')), { remove: [], refetch: [{ name: 'web-1', project: 'default' }], settle: true, members: false });
  t.same(planEvent(ev('instance-stopped', '/1.0/instances/web-1?project=p1')).refetch, [{ name: 'web-1', project: 'p1' }]);
  t.equal(planEvent(ev('instance-shutdown', '/1.0/instances/web-1')).settle, false);
  t.same(planEvent(ev('instance-deleted', '/1.0/instances/web-1')), { remove: ['default/web-1'], refetch: [], settle: false, members: false });
  t.same(planEvent(ev('instance-renamed', '/1.0/instances/new', { old_name: 'old' })), {
    remove: ['default/old'], refetch: [{ name: 'new', project: 'default' }], settle: false, members: false,
  });
  t.equal(planEvent(ev('instance-updated', '/1.0/instances/web-1')).settle, true, 'updated carries no context: re-read');
  t.same(planEvent(ev('profile-updated', '/1.0/profiles/default', undefined, 'p2')).profile, { name: 'default', project: 'p2' });
  t.equal(planEvent(ev('cluster-member-added', '/1.0/cluster/members/n2')).members, true);
  t.same(planEvent(ev('instance-snapshot-created', '/1.0/instances/web-1/snapshots/s')).refetch, []);
  t.same(planEvent(ev('image-created', '/1.0/images/abc')).refetch, []);
  t.same(planEvent({ type: 'logging' }).refetch, []);
  t.same(planEvent(null as unknown as LxdEvent).refetch, [], 'garbage passes through');
});

t.test('fold: a scripted sequence of actions', async (t) => {
  let at = 1000;
  type Unstamped = Action extends infer A ? (A extends Action ? Omit<A, 'at'> : never) : never;
  const run = (s: Snapshot, a: Unstamped) => deepFreeze(fold(s, { ...a, at: at++ } as Action));
  let s = Snapshot.empty();
  t.equal(s.synced, false);
  s = run(s, { type: 'listed', instances: [inst('web-1', { v4: '10.0.0.1' }), inst('db-1', { status: 'Stopped' })], members: [], clustered: false });
  t.equal(s.synced, true);
  t.equal(s.instances.size, 2);
  t.same([...s.running()].map((i) => i.name), ['web-1']);
  s = run(s, { type: 'connection', connected: true });
  t.equal(s.connected, true);

  // db-1 starts; its address arrives on a later read
  s = run(s, { type: 'instance', instance: inst('db-1') });
  t.same(s.hosts('db-1')[0]?.interfaces[0]?.ipv4, []);
  s = run(s, { type: 'instance', instance: inst('db-1', { v4: '10.0.0.9' }) });
  t.same(s.hosts('db-1')[0]?.interfaces[0]?.ipv4, ['10.0.0.9']);

  // a read that changed nothing returns the same snapshot object
  const same = fold(s, { type: 'instance', instance: inst('db-1', { v4: '10.0.0.9' }), at: at++ });
  t.equal(same, s);

  // rename web-1 → web-2 (remove old, add new), then delete db-1
  s = run(s, { type: 'instance-gone', key: 'default/web-1' });
  s = run(s, { type: 'instance', instance: inst('web-2', { v4: '10.0.0.1' }) });
  t.equal(s.hasHost('web-1'), false);
  t.equal(s.hasHost('web-2'), true);
  s = run(s, { type: 'instance-gone', key: 'default/db-1' });
  t.same([...s.instances.keys()], ['default/web-2']);
  t.equal(fold(s, { type: 'instance-gone', key: 'default/nope', at }), s, 'removing an unknown key changes nothing');

  // disconnect: the data stays
  s = run(s, { type: 'connection', connected: false });
  t.equal(s.connected, false);
  t.equal(s.hasHost('web-2'), true);

  // a re-list replaces everything, whatever was there
  s = run(s, { type: 'listed', instances: [inst('fresh')], members: [toMember({ server_name: 'n1', url: 'https://10.1.1.1:8443' })], clustered: true });
  t.same([...s.instances.keys()], ['default/fresh']);
  t.equal(s.clustered, true);
  t.equal(s.members.get('n1')?.ipv4[0], '10.1.1.1');
  t.equal(fold(s, { type: 'bogus' } as unknown as Action), s, 'unknown actions pass through');

  // instances read one by one while a list was in flight keep the snapshot's entry (or absence) over the list's
  s = run(s, { type: 'instance', instance: inst('fresh', { v4: '10.0.0.7' }) });
  s = run(s, {
    type: 'listed',
    instances: [inst('fresh'), inst('removed'), inst('other')],
    members: [],
    clustered: false,
    keep: ['default/fresh', 'default/removed'],
  });
  t.same([...s.instances.keys()].sort(), ['default/fresh', 'default/other']);
  t.same(s.hosts('fresh')[0]?.interfaces[0]?.ipv4, ['10.0.0.7'], 'the newer read stays');
});

t.test('snapshot indexes', async (t) => {
  const svc = { 'user.lexa.service.http.port': '80', 'user.lexa.service.http.tags': 'blue' };
  let s = Snapshot.empty().withList(
    [
      inst('web-1', { v4: '10.0.0.1', config: svc }),
      inst('web-2', { v4: '10.0.0.2', config: svc }),
      inst('Web-3', { v4: '10.0.0.3', config: svc, status: 'Stopped' }),
      inst('web-1', { v4: '10.0.1.1', project: 'other' }),
      inst('api', { v4: '10.0.0.4' }),
    ],
    [],
    false,
    1,
  );
  t.equal(s.hosts('web-1').length, 2, 'the same name in two projects');
  t.equal(s.hosts('web-3').length, 0, 'stopped instances are not indexed');
  t.same(s.matchHosts('web-*').map((i) => i.key).sort(), ['default/web-1', 'default/web-2', 'other/web-1']);
  t.same(s.matchHosts('*-2').map((i) => i.key), ['default/web-2']);
  t.same(s.matchHosts('*').length, 4);
  t.same(s.matchHosts('w*b-1').length, 2);
  t.same(s.matchHosts('x*').length, 0);
  t.same(s.serviceEndpoints('http').map((e) => e.instance.name).sort(), ['web-1', 'web-2']);

  // incremental: starting Web-3 adds it to the name and service indexes; stopping web-2 removes it
  s = s.withInstance(inst('Web-3', { v4: '10.0.0.3', config: svc }));
  t.same(s.matchHosts('web-*').length, 4, 'the sorted name list is rebuilt when names change');
  t.equal(s.hosts('web-3')[0]?.name, 'Web-3');
  s = s.withInstance(inst('web-2', { status: 'Stopped', config: svc }));
  t.same(s.serviceEndpoints('http').map((e) => e.instance.name).sort(), ['Web-3', 'web-1']);
  t.equal(s.hasHost('web-2'), false);
  s = s.withoutInstance('default/web-1');
  t.same(s.serviceEndpoints('http').map((e) => e.instance.name), ['Web-3']);
  t.equal(s.hosts('web-1').length, 1);

  // a service on an interface the instance does not have is not offered
  s = s.withInstance(inst('odd', { v4: '10.0.0.5', config: { 'user.lexa.service.x.port': '1', 'user.lexa.service.x.interface': 'eth9' } }));
  t.same(s.serviceEndpoints('x'), []);
});

t.test('snapshot lookups do not scan (synthetic 10,000 instances, not a real LXD)', async (t) => {
  const svc = { 'user.lexa.service.http.port': '80' };
  const many: Instance[] = [];
  for (let i = 0; i < 10_000; i++) {
    many.push(inst(`host-${i}`, { v4: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, config: i % 1000 === 7 ? svc : {} }));
  }
  const s = Snapshot.empty().withList(many, [], false, 1);

  // Exact lookups are hash lookups: they iterate nothing.
  let found: unknown[] = [];
  let seen = scans(() => {
    found = [s.hosts('host-9999'), s.hasHost('host-42'), s.hasHost('nope'), s.hosts('nope'), s.serviceEndpoints('http')];
  });
  t.same(seen, { maps: [], running: 0, prefixChecks: 0, patternTests: 0 }, 'hosts, hasHost, serviceEndpoints iterate no map and call no running()');
  t.equal((found[0] as Instance[])[0]?.interfaces[0]?.ipv4[0], '10.0.39.15');
  t.same(found.slice(1, 4), [true, false, []]);
  t.equal((found[4] as unknown[]).length, 10, 'every 1000th instance offers http');

  // The first wildcard lookup after a name change sorts the names once; later ones compare only the names that
  // share the pattern's literal prefix.
  seen = scans(() => (found = s.matchHosts('host-999*')));
  t.same(seen.maps, [10_000], 'the first wildcard lookup reads the names once, to sort them');
  t.equal(found.length, 11);
  seen = scans(() => (found = s.matchHosts('host-999*')));
  t.same(seen, { maps: [], running: 0, prefixChecks: 11, patternTests: 11 }, 'a later one looks at 11 names of 10,000 and iterates no map');
  t.equal(found.length, 11);
  seen = scans(() => (found = s.matchHosts('host-12*5')));
  t.same(seen, { maps: [], running: 0, prefixChecks: 112, patternTests: 111 }, 'host-12*5 looks at the 111 names starting host-12, and the next');
  t.equal(found.length, 11);
  seen = scans(() => (found = s.matchHosts('zzz*')));
  t.same(seen, { maps: [], running: 0, prefixChecks: 0, patternTests: 0 }, 'no name has the prefix: none looked at');

  // A change that keeps every name should keep the sorted names (snapshot.ts means to: `namesChanged`).
  const s2 = s.withInstance(inst('host-5', { v4: '10.9.9.9' }));
  seen = scans(() => (found = s2.matchHosts('host-5*')));
  t.same(seen, { maps: [], running: 0, prefixChecks: 1112, patternTests: 1111 }, 'an address change does not re-sort the names');
  t.equal(found.length, 1111);
  t.equal(s2.hosts('host-5')[0]?.interfaces[0]?.ipv4[0], '10.9.9.9');
  t.equal(s.hosts('host-5')[0]?.interfaces[0]?.ipv4[0], '10.0.0.5', 'the old snapshot is untouched');
  t.equal(s2.hosts('host-6'), s.hosts('host-6'), 'untouched entries are shared, not copied');
  // A change of the set of names is spliced into the sorted names at fold time: the next wildcard lookup sees
  // the name gone or new, and still sorts nothing.
  const s3 = s2.withoutInstance('default/host-5');
  seen = scans(() => (found = s3.matchHosts('host-5*')));
  t.equal(found.length, 1110, 'a removed name is gone');
  t.same(seen.maps, [], 'without reading every name again');
  const s4 = s2.withInstance(inst('host-5a', { v4: '10.9.9.8' }));
  seen = scans(() => (found = s4.matchHosts('host-5*')));
  t.equal(found.length, 1112, 'a new name is found');
  t.same(seen.maps, [], 'without reading every name again');
  t.same(s4.matchHosts('host-5a*').map((i) => i.name), ['host-5a'], 'in its sorted place');
  t.equal(s2.matchHosts('host-5*').length, 1111, 'the older snapshots are unchanged');
});

t.test('LXD or Incus: environment.server, else the socket path', async (t) => {
  t.same(daemonKind({ server: 'incus', server_version: '6.0.4' }, '/var/lib/lxd/unix.socket'), { kind: 'incus', version: '6.0.4' });
  t.same(daemonKind({ server: 'lxd', server_version: '5.0.2' }, '/var/lib/incus/unix.socket'), { kind: 'lxd', version: '5.0.2' });
  t.same(daemonKind({}, '/var/lib/incus/unix.socket'), { kind: 'incus', version: 'unknown' });
  t.same(daemonKind(undefined, 'https://10.0.0.5:8443'), { kind: 'lxd', version: 'unknown' });
});
