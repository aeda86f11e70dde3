import t from 'tap';
import { resolve, zoneOptions, type ResolveOptions } from '../../src/dns/resolve.js';
import { zoneContent } from '../../src/dns/zone.js';
import { restApp, traefikDocument } from '../../src/servers/rest/index.js';
import { toInstance, type Instance, type LxdInstance } from '../../src/streams/index.js';
import type { LxdLease } from '../../src/streams/lxd/lxd-model.js';
import { eui64, inSubnet, networkFacts, NO_EVIDENCE, withLeases, type Evidence } from '../../src/streams/lxd/trust.js';
import { deepFreeze, snapshotOf } from '../helpers/model.js';
import { question } from '../helpers/dns-fixture.js';
import { sortedText, zone } from '../helpers/zone.js';

// Trusted addresses (src/streams/lxd/trust.ts): an address counts for agent binding, service records, SRV additionals,
// PTR, /traefik and /services only when LXD vouches for it. Instances are LXD-shaped as LXD 5.0.2 reports them
// (fields copied from a real `recursion=2` list, `/state` and `/1.0/networks/lxdbr0/leases` on the test bed);
// no LXD is involved. test/integration/trusted-addresses.test.ts does the same against the real LXD.

const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 }, reverseZones: ['10.in-addr.arpa'] };
const VICTIM_MAC = '00:16:3e:80:3f:37';
const THIEF_MAC = '00:16:3e:34:d7:ef';

/** LXD's managed bridge of the test bed, as `/1.0/networks?recursion=1` lists it (plus an unmanaged one). */
const NETWORKS = [
  { name: 'lxdbr0', type: 'bridge', managed: true, config: { 'ipv4.address': '10.99.0.1/24', 'ipv6.address': 'fd42:99::1/64' } },
  { name: 'eth0', type: 'physical', managed: false, config: {} },
  { name: 'macv', type: 'macvlan', managed: true, config: { parent: 'eth0' } },
];
/** The bridge's leases: dynamic IPv4s, the EUI-64 entries LXD adds, a static entry, and the gateway (no MAC). */
const LEASES: LxdLease[] = [
  { address: '10.99.0.1', hostname: 'lxdbr0.gw', hwaddr: '', type: 'gateway' },
  { address: '10.99.0.244', hostname: 'victim', hwaddr: VICTIM_MAC, type: 'dynamic' },
  { address: 'fd42:99::216:3eff:fe80:3f37', hostname: 'victim', hwaddr: VICTIM_MAC, type: 'dynamic' },
  { address: '10.99.0.12', hostname: 'thief', hwaddr: THIEF_MAC.toUpperCase(), type: 'dynamic' },
];
const EVIDENCE: Evidence = withLeases({ networks: networkFacts(NETWORKS), leases: new Map() }, 'default', 'lxdbr0', LEASES);

type Addr = { family: string; address: string; scope: string };
const v4 = (address: string): Addr => ({ family: 'inet', address, scope: 'global' });
const v6 = (address: string): Addr => ({ family: 'inet6', address, scope: 'global' });

/** A running instance with NIC `eth0` on lxdbr0 (MAC `mac`), extra devices, and what its `/state` shows. */
function lxd(
  name: string,
  mac: string,
  network: Record<string, Addr[]>,
  opts: { devices?: Record<string, Record<string, string>>; config?: Record<string, string>; project?: string } = {},
): LxdInstance {
  return {
    name,
    project: opts.project ?? 'default',
    type: 'container',
    status: 'Running',
    location: 'none',
    profiles: ['default'],
    expanded_config: { 'volatile.eth0.hwaddr': mac, ...opts.config },
    expanded_devices: { eth0: { name: 'eth0', network: 'lxdbr0', type: 'nic' }, root: { path: '/', pool: 'default', type: 'disk' }, ...opts.devices },
    state: {
      status: 'Running',
      network: Object.fromEntries([
        ['lo', { type: 'loopback', addresses: [{ family: 'inet', address: '127.0.0.1', scope: 'local' }] }],
        ...Object.entries(network).map(([ifname, addresses]) => [ifname, { type: 'broadcast', addresses }]),
      ]),
    },
  };
}

const HTTP = { 'user.lexa.service.http.port': '80', 'user.traefik.enable': 'true' };
const VICTIM = lxd('victim', VICTIM_MAC, { eth0: [v4('10.99.0.244'), v6('fd42:99::216:3eff:fe80:3f37')] }, { config: HTTP });
/** The thief copied the victim's IPv4 onto its eth0 and made a dummy interface x0 with an address of its own. */
const THIEF = lxd(
  'thief',
  THIEF_MAC,
  { eth0: [v4('10.99.0.12'), v4('10.99.0.244'), v6('fd42:99::216:3eff:fe34:d7ef')], x0: [v4('10.123.0.7')] },
  { config: { ...HTTP, 'user.lexa.service.dummy.port': '81', 'user.lexa.service.dummy.interface': 'x0' } },
);
const model = (raw: LxdInstance, evidence = EVIDENCE): Instance => deepFreeze(toInstance(raw, evidence));

t.test('EUI-64 interface identifiers (RFC 4291 appendix A)', async (t) => {
  t.equal(eui64(VICTIM_MAC), '02163efffe803f37', "the universal/local bit flipped, ff:fe in the middle");
  t.equal(eui64('02:00:00:00:00:01'), '000000fffe000001');
  t.equal(eui64('not a mac'), undefined);
});

t.test('an interface trusts what LXD vouches for: its lease, its EUI-64 address; not an address it copied', async (t) => {
  const thief = model(THIEF);
  t.same(thief.interfaces.map((i) => [i.name, i.ipv4, i.trustedIpv4, i.ipv6, i.trustedIpv6]), [
    ['eth0', ['10.99.0.12', '10.99.0.244'], ['10.99.0.12'], ['fd42:99::216:3eff:fe34:d7ef'], ['fd42:99::216:3eff:fe34:d7ef']],
    ['x0', ['10.123.0.7'], [], [], []],
  ], "every address stays listed; only the leased IPv4 and the EUI-64 IPv6 are trusted; the dummy's none");
  const victim = model(VICTIM);
  t.same(victim.interfaces[0]?.trustedIpv4, ['10.99.0.244'], "the victim's own lease");

  const noLeases = model(THIEF, { networks: EVIDENCE.networks, leases: new Map() });
  t.same(noLeases.interfaces[0]?.trustedIpv4, [], 'before its lease is known, a dynamic IPv4 is not trusted');
  t.same(noLeases.interfaces[0]?.trustedIpv6, ['fd42:99::216:3eff:fe34:d7ef'], 'the EUI-64 address needs only the MAC and the /64');
  t.same(model(THIEF, NO_EVIDENCE).interfaces[0]?.trustedIpv6, [], 'an unknown network gives no /64: nothing is assumed');

  const other = model({ ...VICTIM, project: 'other' });
  t.same(other.interfaces[0]?.trustedIpv4, [], "another project's instance is not vouched for by this project's leases");
});

t.test("a device's own address is trusted without a lease; other NICs by being LXD's; interfaces it made never", async (t) => {
  const raw = lxd(
    'static',
    THIEF_MAC,
    { eth0: [v4('10.99.0.222')], eth1: [v4('192.0.2.10')], eth2: [v4('198.51.100.3')], eth3: [v4('203.0.113.9')], veth9: [v4('10.99.0.50')] },
    {
      devices: {
        eth0: { name: 'eth0', network: 'lxdbr0', type: 'nic', 'ipv4.address': '10.99.0.222' },
        eth1: { name: 'eth1', nictype: 'macvlan', parent: 'eth0', type: 'nic' },
        eth2: { name: 'eth2', network: 'macv', type: 'nic' },
        eth3: { name: 'eth3', nictype: 'bridged', parent: 'lxdbr0', type: 'nic', hwaddr: '00:16:3e:00:00:03' },
      },
    },
  );
  const inst = model(raw);
  t.same(inst.interfaces.map((i) => [i.name, i.trustedIpv4]), [
    ['eth0', ['10.99.0.222']],
    ['eth1', ['192.0.2.10']],
    ['eth2', ['198.51.100.3']],
    ['eth3', []],
    ['veth9', []],
  ], 'static device address; macvlan and a managed macvlan network (no leases: the NIC is the evidence); a bridged NIC on the managed bridge needs a lease; a veth it made, none');
  t.same(
    model(raw, NO_EVIDENCE).interfaces.map((i) => [i.name, i.trustedIpv4]),
    [['eth0', ['10.99.0.222']], ['eth1', []], ['eth2', []], ['eth3', []], ['veth9', []]],
    "networks not read yet: a NIC naming a network or parent waits for evidence rather than being trusted blindly; the device's own address needs none",
  );
});

t.test('a NIC without leases cannot claim an address of a subnet LXD hands out', async (t) => {
  t.ok(inSubnet('10.99.0.244', '10.99.0.1/24'));
  t.notOk(inSubnet('10.99.1.244', '10.99.0.1/24'));
  t.ok(inSubnet('fd42:99::216:3eff:fe80:3f37', 'fd42:99::1/64'));
  t.notOk(inSubnet('fd42:98::1', 'fd42:99::1/64'));
  t.notOk(inSubnet('10.99.0.244', 'fd42:99::1/64'), 'families never mix');
  t.notOk(inSubnet('nope', '10.99.0.1/24'));
  const raw = lxd('mv', THIEF_MAC, { eth0: [v4('10.99.0.12')], eth1: [v4('192.0.2.10'), v4('10.99.0.244'), v6('fd42:99::5')] }, {
    devices: { eth1: { name: 'eth1', nictype: 'macvlan', parent: 'eth0', type: 'nic' } },
  });
  const inst = model(raw);
  t.same(inst.interfaces[1]?.trustedIpv4, ['192.0.2.10'], "the macvlan NIC's own address, not the bridge's");
  t.same(inst.interfaces[1]?.trustedIpv6, [], 'nor an address of the bridge\'s /64');
  const snap = snapshotOf([model(VICTIM), inst]);
  t.same(snap.holders('10.99.0.244').map((i) => i.name), ['victim']);
  const routed = model(lxd('rt', THIEF_MAC, { eth0: [v4('10.99.0.77')] }, { devices: { eth0: { name: 'eth0', nictype: 'routed', type: 'nic', 'ipv4.address': '10.99.0.77' } } }));
  t.same(routed.interfaces[0]?.trustedIpv4, ['10.99.0.77'], "a device's own configured address stays trusted on any NIC");
});

t.test('a copied address binds no agent, answers no PTR and names no service; x0.if.<host> still answers', async (t) => {
  const snap = snapshotOf([model(VICTIM), model(THIEF)]);
  t.same(snap.holders('10.99.0.244').map((i) => i.name), ['victim'], 'the victim alone holds its address');
  t.same(snap.holders('10.123.0.7'), [], "an address on the thief's own dummy interface is held by nobody");
  t.same(snap.holders('10.99.0.12').map((i) => i.name), ['thief'], "the thief holds its own leased address");

  const answers = (q: string) => {
    const out = resolve(snap, question(q), OPTS);
    return out.kind === 'answer' ? { answers: sortedText(out.answers), additionals: sortedText(out.additionals) } : out.kind;
  };
  t.same(answers('244.0.99.10.in-addr.arpa PTR'), { answers: zone('244.0.99.10.in-addr.arpa. 0 IN PTR victim.lexa.'), additionals: [] });
  t.equal(answers('7.0.123.10.in-addr.arpa PTR'), 'nxdomain', 'no PTR for an address LXD knows nothing of');
  t.same(answers('http.service.lexa A'), {
    answers: zone('http.service.lexa. 0 IN A 10.99.0.12', 'http.service.lexa. 0 IN A 10.99.0.244'),
    additionals: [],
  }, "10.99.0.244 is there once, as the victim's");
  const thiefOnly = snapshotOf([model(THIEF)]);
  const a = resolve(thiefOnly, question('http.service.lexa A'), OPTS);
  t.same(a.kind === 'answer' ? sortedText(a.answers) : a.kind, zone('http.service.lexa. 0 IN A 10.99.0.12'), "the thief's service: its own address only");
  const srv = resolve(thiefOnly, question('_http._tcp.service.lexa SRV'), OPTS);
  t.same(srv.kind === 'answer' ? sortedText(srv.additionals) : srv.kind, zone(
    'eth0.if.thief.lexa. 0 IN A 10.99.0.12',
    'eth0.if.thief.lexa. 0 IN AAAA fd42:99::216:3eff:fe34:d7ef',
  ), 'SRV additionals: trusted addresses only');
  t.equal(resolve(thiefOnly, question('_dummy._tcp.service.lexa SRV'), OPTS).kind, 'nodata', 'a service on the dummy interface gets no SRV');
  t.equal(resolve(thiefOnly, question('dummy.service.lexa A'), OPTS).kind, 'nodata', 'nor an address');
  t.same(answers('x0.if.thief.lexa A'), { answers: zone('x0.if.thief.lexa. 0 IN A 10.123.0.7'), additionals: [] }, "the dummy's address under its own name");
  t.same(answers('eth0.if.thief.lexa A'), {
    answers: zone('eth0.if.thief.lexa. 0 IN A 10.99.0.12', 'eth0.if.thief.lexa. 0 IN A 10.99.0.244'),
    additionals: [],
  }, 'the interface name answers every address the thief gave it (its own say about its own name)');

  const content = (z: string) => sortedText(zoneContent(thiefOnly, z, zoneOptions(OPTS)));
  t.notOk(content('lexa').some((r) => /service\.lexa\..*10\.99\.0\.244|dummy/.test(r)), 'the zone transfer agrees: no copied address under a service name');
  t.same(content('0.99.10.in-addr.arpa'), zone(
    '0.99.10.in-addr.arpa. 0 IN NS ns.lexa.',
    '12.0.99.10.in-addr.arpa. 0 IN PTR thief.lexa.',
  ), 'and no PTR for the copied address in the reverse zone');
});

t.test('/traefik and /services name trusted addresses only', async (t) => {
  const snap = snapshotOf([model(THIEF)]);
  const doc = JSON.parse(traefikDocument(snap, 'lexa').body) as { http: { services: Record<string, { loadBalancer: { servers: { url: string }[] } }> } };
  t.same(doc.http.services['http']?.loadBalancer.servers, [{ url: 'http://10.99.0.12:80' }]);
  t.notOk(JSON.stringify(doc).includes('10.123.0.7'), 'the dummy interface serves nothing');

  const copiedFirst = lxd('thief', THIEF_MAC, { eth0: [v4('10.99.0.244'), v4('10.99.0.12')] }, { config: HTTP });
  const first = JSON.parse(traefikDocument(snapshotOf([model(copiedFirst)]), 'lexa').body) as typeof doc;
  t.same(first.http.services['http']?.loadBalancer.servers, [{ url: 'http://10.99.0.12:80' }], 'even when the copied address comes first');

  const app = restApp({ suffix: 'lexa', snapshot: () => snapshotOf([model(copiedFirst)]) });
  const server = app.listen(0, '127.0.0.1');
  t.teardown(() => void server.close());
  await new Promise((r) => server.once('listening', r));
  const res = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/services/http`);
  const body = (await res.json()) as { endpoints: { ipv4: string[] }[] };
  t.same(body.endpoints.map((e) => e.ipv4), [['10.99.0.12']]);
});
