import t, { type Test } from 'tap';
import { silentLogger } from '../../src/log/index.js';
import { createHandler } from '../../src/dns/handler.js';
import { checkResolveOptions, resolve, type Outcome, type ResolveOptions } from '../../src/dns/resolve.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import { iface, instance, seeded, SERIAL, snapshotOf } from '../helpers/model.js';
import { rdata, rr, sortedText, text, zone } from '../helpers/zone.js';
import { clustered, OPTS, question, SOA, standalone, standaloneUnknown, type Case } from '../helpers/dns-fixture.js';

// Unit tests of the resolver on hand-built snapshots (no LXD). Expected records are zone-file lines; answer
// order is shuffled, so sections are compared as sorted sets (order has its own tests below).

function check(t: Test, snap: Snapshot, c: Case, opts: ResolveOptions = OPTS, soa = SOA): void {
  const out = resolve(snap, question(c.q), opts);
  t.equal(out.kind, c.kind, 'outcome');
  if (out.kind === 'answer') {
    t.same(sortedText(out.answers), zone(...(c.answers ?? [])), 'answers');
    t.same(sortedText(out.additionals), zone(...(c.additionals ?? [])), 'additionals');
  } else if (out.kind === 'nodata' || out.kind === 'nxdomain') {
    t.equal(text(out.soa), text(rr(soa)), 'SOA in authority');
  }
}

function table(t: Test, name: string, snap: () => Snapshot, cases: Case[], opts?: ResolveOptions, soa?: string) {
  t.test(name, (t) => {
    const s = snap();
    for (const c of cases) t.test(`${c.q} → ${c.kind}`, (t) => (check(t, s, c, opts, soa), t.end()));
    t.end();
  });
}

table(t, 'hosts', clustered, [
  { q: 'web-1.lexa A', kind: 'answer', answers: ['web-1.lexa. 0 IN A 10.99.0.11'] },
  { q: 'web-1.lexa AAAA', kind: 'answer', answers: ['web-1.lexa. 0 IN AAAA fd42:99::11'] },
  { q: 'WEB-1.LeXa A', kind: 'answer', answers: ['WEB-1.LeXa. 0 IN A 10.99.0.11'] },
  { q: 'web-1.lexa. A', kind: 'answer', answers: ['web-1.lexa. 0 IN A 10.99.0.11'] },
  { q: 'api.lexa A', kind: 'answer', answers: ['api.lexa. 0 IN A 10.99.0.31', 'api.lexa. 0 IN A 10.98.0.31'] },
  { q: 'web-2.lexa AAAA', kind: 'nodata' },
  { q: 'web-2.lexa MX', kind: 'nodata' },
  { q: 'web-2.lexa CNAME', kind: 'nodata' },
  { q: 'web-2.lexa SRV', kind: 'nodata' },
  { q: 'web-2.lexa SOA', kind: 'nodata' },
  { q: 'new-1.lexa A', kind: 'nodata' },
  { q: 'web-3.lexa A', kind: 'nxdomain' },
  { q: 'nope.lexa A', kind: 'nxdomain' },
  { q: 'foo.web-1.lexa A', kind: 'nxdomain' },
  { q: 'a.b.web-1.lexa A', kind: 'nxdomain' },
  { q: 'a.b.c.web-1.lexa A', kind: 'nxdomain' },
]);

table(t, 'wildcards: every record owned by the question name', clustered, [
  { q: 'web-*.lexa A', kind: 'answer', answers: ['web-*.lexa. 0 IN A 10.99.0.11', 'web-*.lexa. 0 IN A 10.99.0.12'] },
  { q: 'WEB-*.lexa A', kind: 'answer', answers: ['WEB-*.lexa. 0 IN A 10.99.0.11', 'WEB-*.lexa. 0 IN A 10.99.0.12'] },
  { q: 'web-*.lexa AAAA', kind: 'answer', answers: ['web-*.lexa. 0 IN AAAA fd42:99::11'] },
  {
    q: '*-1.lexa A',
    kind: 'answer',
    answers: ['*-1.lexa. 0 IN A 10.99.0.11', '*-1.lexa. 0 IN A 10.99.0.21', '*-1.lexa. 0 IN A 10.99.0.41'],
  },
  { q: 'w*b-2.lexa A', kind: 'answer', answers: ['w*b-2.lexa. 0 IN A 10.99.0.12'] },
  {
    q: '*.lexa A',
    kind: 'answer',
    answers: [
      '*.lexa. 0 IN A 10.99.0.11',
      '*.lexa. 0 IN A 10.99.0.12',
      '*.lexa. 0 IN A 10.99.0.21',
      '*.lexa. 0 IN A 10.99.0.31',
      '*.lexa. 0 IN A 10.98.0.31',
      '*.lexa. 0 IN A 10.99.0.41',
    ],
  },
  {
    q: '*.lexa AAAA',
    kind: 'answer',
    answers: ['*.lexa. 0 IN AAAA fd42:99::11', '*.lexa. 0 IN AAAA fd42:99::21', '*.lexa. 0 IN AAAA fd42:99::22'],
  },
  { q: 'new-*.lexa A', kind: 'nodata' },
  { q: 'zzz*.lexa A', kind: 'nxdomain' },
  { q: 'web-3*.lexa A', kind: 'nxdomain' },
]);

table(t, 'interfaces', clustered, [
  { q: 'eth1.if.web-1.lexa A', kind: 'answer', answers: ['eth1.if.web-1.lexa. 0 IN A 10.100.0.11'] },
  { q: 'eth1.interface.web-1.lexa A', kind: 'answer', answers: ['eth1.interface.web-1.lexa. 0 IN A 10.100.0.11'] },
  { q: 'ETH1.IF.Web-1.lexa A', kind: 'answer', answers: ['ETH1.IF.Web-1.lexa. 0 IN A 10.100.0.11'] },
  { q: 'eth0.if.web-1.lexa AAAA', kind: 'answer', answers: ['eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'] },
  { q: 'eth1.if.web-*.lexa A', kind: 'answer', answers: ['eth1.if.web-*.lexa. 0 IN A 10.100.0.11'] },
  { q: 'eth1.if.*.lexa A', kind: 'answer', answers: ['eth1.if.*.lexa. 0 IN A 10.100.0.11', 'eth1.if.*.lexa. 0 IN A 10.100.0.21'] },
  { q: 'eth1.if.web-1.lexa AAAA', kind: 'nodata' },
  { q: 'if.web-1.lexa A', kind: 'nodata' },
  { q: 'interface.web-1.lexa A', kind: 'nodata' },
  { q: 'if.web-*.lexa A', kind: 'nodata' },
  { q: 'if.nope.lexa A', kind: 'nxdomain' },
  { q: 'eth9.if.web-1.lexa A', kind: 'nxdomain' },
  { q: 'eth*.if.web-1.lexa A', kind: 'nxdomain' },
  { q: 'eth0.if.web-3.lexa A', kind: 'nxdomain' },
  { q: 'eth0.if.nope.lexa A', kind: 'nxdomain' },
]);

table(t, 'services: A/AAAA', clustered, [
  { q: 'https.service.lexa A', kind: 'answer', answers: ['https.service.lexa. 0 IN A 10.99.0.11', 'https.service.lexa. 0 IN A 10.99.0.12'] },
  { q: 'https.service.lexa AAAA', kind: 'answer', answers: ['https.service.lexa. 0 IN AAAA fd42:99::11'] },
  { q: 'blue.https.service.lexa A', kind: 'answer', answers: ['blue.https.service.lexa. 0 IN A 10.99.0.11'] },
  {
    q: 'APP.Https.service.lexa A',
    kind: 'answer',
    answers: ['APP.Https.service.lexa. 0 IN A 10.99.0.11', 'APP.Https.service.lexa. 0 IN A 10.99.0.12'],
  },
  // the endpoint's interface: db-1 offers mysql on eth1; db-2 (IPv6 only) on its primary one
  { q: 'mysql.service.lexa A', kind: 'answer', answers: ['mysql.service.lexa. 0 IN A 10.100.0.21'] },
  { q: 'mysql.service.lexa AAAA', kind: 'answer', answers: ['mysql.service.lexa. 0 IN AAAA fd42:99::22'] },
  { q: 'replica.mysql.service.lexa AAAA', kind: 'answer', answers: ['replica.mysql.service.lexa. 0 IN AAAA fd42:99::22'] },
  { q: 'primary.mysql.service.lexa AAAA', kind: 'nodata' },
  // one address even though web-1 offers "dns" twice (udp and tcp)
  { q: 'dns.service.lexa A', kind: 'answer', answers: ['dns.service.lexa. 0 IN A 10.99.0.11'] },
  { q: 'green.https.service.lexa A', kind: 'nxdomain' },
  { q: 'pg.service.lexa A', kind: 'nxdomain' }, // declared on an interface db-2 does not have
  { q: 'nope.service.lexa A', kind: 'nxdomain' },
  { q: 'a.b.c.service.lexa A', kind: 'nxdomain' },
  { q: 'service.lexa A', kind: 'nodata' },
  { q: '_tcp.service.lexa A', kind: 'nodata' },
  { q: '_app.service.lexa SRV', kind: 'nodata' },
]);

table(t, 'services: SRV (RFC 2782), weight 256*w-1, targets in additionals', clustered, [
  {
    q: '_https._tcp.service.lexa SRV',
    kind: 'answer',
    answers: [
      '_https._tcp.service.lexa. 0 IN SRV 1 255 443 eth0.if.web-1.lexa.',
      '_https._tcp.service.lexa. 0 IN SRV 2 65535 443 eth0.if.web-2.lexa.',
    ],
    additionals: [
      'eth0.if.web-1.lexa. 0 IN A 10.99.0.11',
      'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11',
      'eth0.if.web-2.lexa. 0 IN A 10.99.0.12',
    ],
  },
  {
    q: '_HTTPS._Tcp.service.lexa SRV',
    kind: 'answer',
    answers: [
      '_HTTPS._Tcp.service.lexa. 0 IN SRV 1 255 443 eth0.if.web-1.lexa.',
      '_HTTPS._Tcp.service.lexa. 0 IN SRV 2 65535 443 eth0.if.web-2.lexa.',
    ],
    additionals: [
      'eth0.if.web-1.lexa. 0 IN A 10.99.0.11',
      'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11',
      'eth0.if.web-2.lexa. 0 IN A 10.99.0.12',
    ],
  },
  {
    q: '_https._blue.service.lexa SRV',
    kind: 'answer',
    answers: ['_https._blue.service.lexa. 0 IN SRV 1 255 443 eth0.if.web-1.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'],
  },
  {
    q: '_mysql._primary.service.lexa SRV',
    kind: 'answer',
    answers: ['_mysql._primary.service.lexa. 0 IN SRV 1 255 3306 eth1.if.db-1.lexa.'],
    additionals: ['eth1.if.db-1.lexa. 0 IN A 10.100.0.21'],
  },
  {
    q: '_mysql._tcp.service.lexa ANY',
    kind: 'answer',
    answers: [
      '_mysql._tcp.service.lexa. 0 IN SRV 1 255 3306 eth1.if.db-1.lexa.',
      '_mysql._tcp.service.lexa. 0 IN SRV 1 255 3306 eth0.if.db-2.lexa.',
    ],
    additionals: ['eth1.if.db-1.lexa. 0 IN A 10.100.0.21', 'eth0.if.db-2.lexa. 0 IN AAAA fd42:99::22'],
  },
  {
    q: '_dns._udp.service.lexa SRV',
    kind: 'answer',
    answers: ['_dns._udp.service.lexa. 0 IN SRV 1 255 53 eth0.if.web-1.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'],
  },
  // tcp and udp "dns" both carry tag app: identical records are sent once
  {
    q: '_dns._app.service.lexa SRV',
    kind: 'answer',
    answers: ['_dns._app.service.lexa. 0 IN SRV 1 255 53 eth0.if.web-1.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'],
  },
  // Consul's names answer SRV too: <svc>.service as _<svc>._tcp, <tag>.<svc>.service as _<svc>._<tag>
  {
    q: 'https.service.lexa SRV',
    kind: 'answer',
    answers: ['https.service.lexa. 0 IN SRV 1 255 443 eth0.if.web-1.lexa.', 'https.service.lexa. 0 IN SRV 2 65535 443 eth0.if.web-2.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11', 'eth0.if.web-2.lexa. 0 IN A 10.99.0.12'],
  },
  {
    q: 'blue.https.service.lexa SRV',
    kind: 'answer',
    answers: ['blue.https.service.lexa. 0 IN SRV 1 255 443 eth0.if.web-1.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'],
  },
  {
    q: 'mysql.service.lexa ANY',
    kind: 'answer',
    answers: ['mysql.service.lexa. 0 IN SRV 1 255 3306 eth1.if.db-1.lexa.', 'mysql.service.lexa. 0 IN SRV 1 255 3306 eth0.if.db-2.lexa.'],
    additionals: ['eth1.if.db-1.lexa. 0 IN A 10.100.0.21', 'eth0.if.db-2.lexa. 0 IN AAAA fd42:99::22'],
  },
  // every protocol: "dns" is offered on udp and tcp, one port, so one record
  {
    q: 'dns.service.lexa SRV',
    kind: 'answer',
    answers: ['dns.service.lexa. 0 IN SRV 1 255 53 eth0.if.web-1.lexa.'],
    additionals: ['eth0.if.web-1.lexa. 0 IN A 10.99.0.11', 'eth0.if.web-1.lexa. 0 IN AAAA fd42:99::11'],
  },
  { q: 'green.https.service.lexa SRV', kind: 'nxdomain' },
  { q: 'nope.service.lexa SRV', kind: 'nxdomain' },
  { q: 'pg.service.lexa SRV', kind: 'nxdomain' },
  { q: '_https._tcp.service.lexa A', kind: 'nodata' },
  { q: '_https._udp.service.lexa SRV', kind: 'nxdomain' },
  { q: '_https._green.service.lexa SRV', kind: 'nxdomain' },
  { q: '_nope._tcp.service.lexa SRV', kind: 'nxdomain' },
]);

table(t, 'cluster names on a cluster', clustered, [
  { q: 'cluster.web-1.lexa CNAME', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN CNAME node-1.'] },
  { q: 'cluster.web-1.lexa ANY', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN CNAME node-1.'] },
  { q: 'cluster.web-1.lexa A', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN A 10.77.0.11'] },
  { q: 'cluster.web-1.lexa AAAA', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN AAAA fd42:77::11'] },
  { q: 'cluster.web-2.lexa AAAA', kind: 'nodata' },
  { q: 'cluster.web-1.lexa MX', kind: 'nodata' },
  // db-1 and db-2 both run on node-1: one CNAME, one address
  { q: 'cluster.db-*.lexa CNAME', kind: 'answer', answers: ['cluster.db-*.lexa. 0 IN CNAME node-1.'] },
  { q: 'cluster.db-*.lexa A', kind: 'answer', answers: ['cluster.db-*.lexa. 0 IN A 10.77.0.11'] },
  // web-1 on node-1, web-2 on node-2: no CNAME (one per owner), the addresses of both members
  { q: 'cluster.web-*.lexa CNAME', kind: 'nodata' },
  {
    q: 'cluster.web-*.lexa A',
    kind: 'answer',
    answers: ['cluster.web-*.lexa. 0 IN A 10.77.0.11', 'cluster.web-*.lexa. 0 IN A 10.77.0.12'],
  },
  {
    q: 'cluster.web-*.lexa ANY',
    kind: 'answer',
    answers: ['cluster.web-*.lexa. 0 IN A 10.77.0.11', 'cluster.web-*.lexa. 0 IN A 10.77.0.12'],
  },
  // lost-1 runs on node-3, which the member list does not (yet) know
  { q: 'cluster.lost-1.lexa A', kind: 'nodata' },
  { q: 'cluster.lost-1.lexa CNAME', kind: 'answer', answers: ['cluster.lost-1.lexa. 0 IN CNAME node-3.'] },
  { q: 'cluster.nope.lexa A', kind: 'nxdomain' },
  { q: 'cluster.web-3.lexa A', kind: 'nxdomain' },
  { q: 'node-1.cluster.web-1.lexa A', kind: 'answer', answers: ['node-1.cluster.web-1.lexa. 0 IN A 10.77.0.11'] },
  { q: 'Node-1.Cluster.web-1.lexa A', kind: 'answer', answers: ['Node-1.Cluster.web-1.lexa. 0 IN A 10.77.0.11'] },
  { q: 'node-1.cluster.web-1.lexa AAAA', kind: 'answer', answers: ['node-1.cluster.web-1.lexa. 0 IN AAAA fd42:77::11'] },
  { q: 'node-2.cluster.web-*.lexa A', kind: 'answer', answers: ['node-2.cluster.web-*.lexa. 0 IN A 10.77.0.12'] },
  { q: 'node-1.cluster.web-1.lexa CNAME', kind: 'nodata' },
  { q: 'node-3.cluster.lost-1.lexa A', kind: 'nodata' },
  { q: 'node-2.cluster.web-1.lexa A', kind: 'nxdomain' },
  { q: 'node-1.cluster.nope.lexa A', kind: 'nxdomain' },
]);

table(t, 'cluster names on a standalone LXD: the server is the one member', standalone, [
  { q: 'cluster.web-1.lexa CNAME', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN CNAME vm.'] },
  { q: 'cluster.web-1.lexa A', kind: 'answer', answers: ['cluster.web-1.lexa. 0 IN A 10.0.0.5'] },
  { q: 'cluster.web-*.lexa A', kind: 'answer', answers: ['cluster.web-*.lexa. 0 IN A 10.0.0.5'] },
  { q: 'cluster.web-*.lexa CNAME', kind: 'answer', answers: ['cluster.web-*.lexa. 0 IN CNAME vm.'] },
  { q: 'cluster.web-*.lexa AAAA', kind: 'nodata' },
  { q: 'vm.cluster.web-1.lexa A', kind: 'answer', answers: ['vm.cluster.web-1.lexa. 0 IN A 10.0.0.5'] },
  { q: 'VM.cluster.web-1.lexa A', kind: 'answer', answers: ['VM.cluster.web-1.lexa. 0 IN A 10.0.0.5'] },
  { q: 'cluster.nope.lexa A', kind: 'nxdomain' },
  { q: 'none.cluster.web-1.lexa A', kind: 'nxdomain' },
  { q: 'web-1.lexa A', kind: 'answer', answers: ['web-1.lexa. 0 IN A 10.99.0.11'] },
]);

table(t, 'cluster names on a standalone LXD lexa has no record of', standaloneUnknown, [
  { q: 'cluster.web-1.lexa CNAME', kind: 'nodata' },
  { q: 'cluster.web-1.lexa A', kind: 'nodata' },
  { q: 'cluster.nope.lexa A', kind: 'nxdomain' },
  { q: 'vm.cluster.web-1.lexa A', kind: 'nxdomain' },
]);

table(t, 'zone apex, ANY, types, classes, names outside the zone', clustered, [
  { q: 'lexa SOA', kind: 'answer', answers: [SOA] },
  { q: 'LEXA. SOA', kind: 'answer', answers: [SOA.replace('lexa.', 'LEXA.')] },
  { q: 'lexa NS', kind: 'answer', answers: ['lexa. 0 IN NS ns.lexa.'] },
  { q: 'lexa ANY', kind: 'answer', answers: [SOA] },
  { q: 'lexa A', kind: 'nodata' },
  { q: 'lexa AXFR', kind: 'refused' },
  { q: 'lexa IXFR', kind: 'refused' },
  { q: 'web-1.lexa ANY', kind: 'answer', answers: ['web-1.lexa. 0 IN A 10.99.0.11'] },
  { q: 'db-2.lexa ANY', kind: 'answer', answers: ['db-2.lexa. 0 IN AAAA fd42:99::22'] },
  { q: 'new-1.lexa ANY', kind: 'nodata' },
  { q: 'web-1.lexa OPT', kind: 'notimp' },
  { q: 'web-1.lexa UNKNOWN_254', kind: 'notimp' },
  { q: 'web-1.lexa A CH', kind: 'refused' },
  { q: '. NS', kind: 'refused' },
  { q: 'example.com A', kind: 'refused' },
  { q: 'xlexa A', kind: 'refused' },
  { q: 'lexa.com A', kind: 'refused' },
]);

table(t, 'not yet synced: SERVFAIL below the apex, never NXDOMAIN', () => Snapshot.empty(), [
  { q: 'web-1.lexa A', kind: 'notready' },
  { q: 'nope.lexa A', kind: 'notready' },
  { q: '_https._tcp.service.lexa SRV', kind: 'notready' },
  { q: '. NS', kind: 'refused' },
  { q: 'lexa NS', kind: 'answer', answers: ['lexa. 0 IN NS ns.lexa.'] },
]);

const MULTI: ResolveOptions = {
  suffix: 'LXD.Example.com.',
  ttl: 30,
  soa: { minimum: 60, mname: 'ns1.example.com', rname: 'ops.example.com', refresh: 1, retry: 2, expire: 3 },
};
const MULTI_SOA = `lxd.example.com. 60 IN SOA ns1.example.com. ops.example.com. ${SERIAL} 1 2 3 60`;
table(
  t,
  'a multi-label suffix, configured TTLs and SOA',
  clustered,
  [
    { q: 'web-1.lxd.example.com A', kind: 'answer', answers: ['web-1.lxd.example.com. 30 IN A 10.99.0.11'] },
    {
      q: '_https._blue.service.lxd.example.com SRV',
      kind: 'answer',
      answers: ['_https._blue.service.lxd.example.com. 30 IN SRV 1 255 443 eth0.if.web-1.lxd.example.com.'],
      additionals: ['eth0.if.web-1.lxd.example.com. 30 IN A 10.99.0.11', 'eth0.if.web-1.lxd.example.com. 30 IN AAAA fd42:99::11'],
    },
    { q: 'lxd.example.com SOA', kind: 'answer', answers: [MULTI_SOA] },
    { q: 'lxd.example.com NS', kind: 'answer', answers: ['lxd.example.com. 30 IN NS ns1.example.com.'] },
    { q: 'nope.lxd.example.com A', kind: 'nxdomain' },
    { q: 'example.com A', kind: 'refused' },
    { q: 'web-1.lexa A', kind: 'refused' },
  ],
  MULTI,
  MULTI_SOA,
);

t.test('answer order is shuffled per query, from the injected random source', (t) => {
  const many = Array.from({ length: 20 }, (_, i) =>
    instance(`n-${i}`, { interfaces: [iface('eth0', [`10.0.0.${i + 1}`])] }),
  );
  const snap = snapshotOf(many);
  const order = (random: () => number) =>
    (resolve(snap, question('n-*.lexa A'), { ...OPTS, random }) as Extract<Outcome, { kind: 'answer' }>).answers.map(
      (a) => rdata(a),
    );
  const a = order(seeded(7));
  t.same(order(seeded(7)), a, 'same random source, same order');
  t.not(order(seeded(8)).join(), a.join(), 'another random source, another order');
  t.equal(new Set(a).size, 20, 'every address once');
  const opts = { ...OPTS, random: seeded(3) };
  const first = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const out = resolve(snap, question('n-*.lexa A'), opts) as Extract<Outcome, { kind: 'answer' }>;
    first.add(rdata(out.answers[0]!));
  }
  t.ok(first.size > 5, `successive queries lead with different addresses (${first.size} of 20)`);
  t.end();
});

t.test('SRV additionals follow the order of the answers', (t) => {
  const snap = clustered();
  for (let seed = 1; seed < 6; seed++) {
    const out = resolve(snap, question('_https._app.service.lexa SRV'), { ...OPTS, random: seeded(seed) });
    if (out.kind !== 'answer') return t.fail(out.kind);
    const targets = out.answers.map((a) => rdata<{ target: string }>(a).target);
    const addTargets = [...new Set(out.additionals.map((a) => a.name))];
    t.same(addTargets, targets, `seed ${seed}`);
  }
  t.end();
});

t.test('the SOA is built once per snapshot and its serial follows the snapshot time', (t) => {
  const a = clustered();
  const b = snapshotOf([], [], false, 1_800_000_000_000);
  const nx = (s: Snapshot) => resolve(s, question('nope.lexa A'), OPTS) as Extract<Outcome, { kind: 'nxdomain' }>;
  t.equal(nx(a).soa, nx(a).soa, 'same object for the same snapshot');
  t.equal(nx(b).soa.data.serial, 1_800_000_000, 'serial in seconds');
  t.end();
});

t.test('options are checked once, at start', (t) => {
  t.same(checkResolveOptions(OPTS), []);
  t.same(checkResolveOptions(MULTI), []);
  const bad: [string, ResolveOptions][] = [
    ['empty suffix', { ...OPTS, suffix: '.' }],
    ['empty label', { ...OPTS, suffix: 'a..lexa' }],
    ['64-byte label', { ...OPTS, suffix: `${'x'.repeat(64)}.lexa` }],
    ['non-ASCII suffix', { ...OPTS, suffix: 'lexä' }],
    ['negative ttl', { ...OPTS, ttl: -1 }],
    ['fractional negative ttl', { ...OPTS, soa: { minimum: 1.5 } }],
    ['bad mname', { ...OPTS, soa: { minimum: 5, mname: 'n s.lexa' } }],
  ];
  for (const [what, opts] of bad) {
    t.equal(checkResolveOptions(opts).length, 1, what);
    t.throws(() => createHandler({ snapshot: clustered, resolver: opts, log: silentLogger }), `${what}: createHandler throws`);
  }
  t.end();
});

// Reverse zones: derived from the snapshot's subnets unless configured.
const withSubnets = () => clustered().withSubnets(['10.99.0.1/24', '10.100.0.1/24', 'fd42:99::1/64'], 1_700_000_000_000);
const V6Z = '0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa';
const REV_SOA = (zone: string) => `${zone}. 5 IN SOA ns.lexa. hostmaster.lexa. ${SERIAL} 3600 600 604800 5`;
table(t, 'PTR in the reverse zones derived from the subnets', withSubnets, [
  { q: '11.0.99.10.in-addr.arpa PTR', kind: 'answer', answers: ['11.0.99.10.in-addr.arpa. 0 IN PTR web-1.lexa.'] },
  { q: '11.0.100.10.in-addr.arpa PTR', kind: 'answer', answers: ['11.0.100.10.in-addr.arpa. 0 IN PTR eth1.if.web-1.lexa.'] },
  { q: `1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${V6Z} PTR`, kind: 'answer', answers: [`1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${V6Z}. 0 IN PTR web-1.lexa.`] },
  { q: '11.0.99.10.in-addr.arpa ANY', kind: 'answer', answers: ['11.0.99.10.in-addr.arpa. 0 IN PTR web-1.lexa.'] },
]);
table(t, 'reverse zone NXDOMAIN and NODATA carry the reverse zone SOA', withSubnets, [
  { q: '13.0.99.10.in-addr.arpa PTR', kind: 'nxdomain' },
  { q: '99.0.99.10.in-addr.arpa PTR', kind: 'nxdomain' },
  { q: 'x.0.99.10.in-addr.arpa PTR', kind: 'nxdomain' },
  { q: '11.0.99.10.in-addr.arpa A', kind: 'nodata' },
  { q: '0.99.10.in-addr.arpa A', kind: 'nodata' },
], undefined, REV_SOA('0.99.10.in-addr.arpa'));
table(t, 'reverse zone apex and outside', withSubnets, [
  { q: '0.99.10.in-addr.arpa SOA', kind: 'answer', answers: [REV_SOA('0.99.10.in-addr.arpa')] },
  { q: '0.99.10.in-addr.arpa NS', kind: 'answer', answers: ['0.99.10.in-addr.arpa. 0 IN NS ns.lexa.'] },
  { q: '11.0.98.10.in-addr.arpa PTR', kind: 'refused' },
  { q: '99.10.in-addr.arpa SOA', kind: 'refused' },
  { q: '0.99.10.in-addr.arpa AXFR', kind: 'refused' },
]);
table(t, 'configured reverse zones replace the derived ones', withSubnets, [
  { q: '31.0.98.10.in-addr.arpa PTR', kind: 'answer', answers: ['31.0.98.10.in-addr.arpa. 0 IN PTR api.lexa.'] },
  { q: '11.0.99.10.in-addr.arpa PTR', kind: 'refused' },
], { ...OPTS, reverseZones: ['0.98.10.in-addr.arpa'] });
table(t, 'no subnets known: no reverse zone', clustered, [{ q: '11.0.99.10.in-addr.arpa PTR', kind: 'refused' }]);
table(t, 'reverse names before the first list: SERVFAIL', () => Snapshot.empty().withSubnets(['10.99.0.1/24']), [
  { q: '11.0.99.10.in-addr.arpa PTR', kind: 'notready' },
]);
t.test('PTR: an address shared across projects names both hosts', (t) => {
  const snap = snapshotOf([
    instance('a', { interfaces: [iface('eth0', ['10.99.0.50'])] }),
    instance('b', { project: 'p2', interfaces: [iface('eth0', ['10.99.0.50'])] }),
  ]).withSubnets(['10.99.0.1/24']);
  const out = resolve(snap, question('50.0.99.10.in-addr.arpa PTR'), OPTS);
  t.same(out.kind === 'answer' ? sortedText(out.answers) : out.kind, zone('50.0.99.10.in-addr.arpa. 0 IN PTR a.lexa.', '50.0.99.10.in-addr.arpa. 0 IN PTR b.lexa.'));
  t.end();
});
