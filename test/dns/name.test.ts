import t, { type Test } from 'tap';
import { parseName, parseReverseName, type NameForm, type ReverseForm } from '../../src/dns/name.js';

// The zone's name grammar, one row per query name: the name as asked → the form it parses to. The suffix is
// passed normalised (lower-case, no dots at either end), as the resolver does.

type Row = readonly [qname: string, form: NameForm];

function table(t: Test, name: string, suffix: string, rows: readonly Row[]): void {
  t.test(name, (t) => {
    for (const [qname, form] of rows) t.strictSame(parseName(qname, suffix), form, `${JSON.stringify(qname)} → ${form.kind}`);
    t.end();
  });
}

table(t, 'apex and names outside the zone', 'lexa', [
  ['lexa', { kind: 'apex' }],
  ['lexa.', { kind: 'apex' }],
  ['LeXa.', { kind: 'apex' }],
  // the suffix behind an empty label: an empty relative name, so the apex
  ['.lexa', { kind: 'apex' }],
  ['.', { kind: 'outside' }],
  ['', { kind: 'outside' }],
  ['com', { kind: 'outside' }],
  ['example.com', { kind: 'outside' }],
  ['xlexa', { kind: 'outside' }],
  ['lexa.com', { kind: 'outside' }],
  ['exa', { kind: 'outside' }],
  // only one trailing dot is the root's
  ['lexa..', { kind: 'outside' }],
  ['web-1.lexa..', { kind: 'outside' }],
]);

table(t, 'hosts: case, trailing dot, wildcards', 'lexa', [
  ['web-1.lexa', { kind: 'host', pattern: 'web-1' }],
  ['web-1.lexa.', { kind: 'host', pattern: 'web-1' }],
  ['WEB-1.LeXa', { kind: 'host', pattern: 'web-1' }],
  ['web-*.lexa', { kind: 'host', pattern: 'web-*' }],
  ['*-1.lexa', { kind: 'host', pattern: '*-1' }],
  ['w*b-2.lexa', { kind: 'host', pattern: 'w*b-2' }],
  ['*.lexa', { kind: 'host', pattern: '*' }],
  // names that are keywords elsewhere are ordinary hosts on their own
  ['ns.lexa', { kind: 'host', pattern: 'ns' }],
  ['if.lexa', { kind: 'host', pattern: 'if' }],
  ['interface.lexa', { kind: 'host', pattern: 'interface' }],
  ['cluster.lexa', { kind: 'host', pattern: 'cluster' }],
  ['_tcp.lexa', { kind: 'host', pattern: '_tcp' }],
  ['servic*.lexa', { kind: 'host', pattern: 'servic*' }],
  // no other name has a host under a label
  ['foo.web-1.lexa', { kind: 'none' }],
  ['a.b.web-1.lexa', { kind: 'none' }],
  ['a.b.c.web-1.lexa', { kind: 'none' }],
  ['a..lexa', { kind: 'none' }],
]);

table(t, 'interfaces: `interface` is a synonym of `if`', 'lexa', [
  ['eth1.if.web-1.lexa', { kind: 'iface', iface: 'eth1', host: 'web-1' }],
  ['eth1.interface.web-1.lexa', { kind: 'iface', iface: 'eth1', host: 'web-1' }],
  ['ETH1.IF.Web-1.lexa.', { kind: 'iface', iface: 'eth1', host: 'web-1' }],
  ['eth1.Interface.web-1.lexa', { kind: 'iface', iface: 'eth1', host: 'web-1' }],
  ['eth1.if.web-*.lexa', { kind: 'iface', iface: 'eth1', host: 'web-*' }],
  ['eth1.if.*.lexa', { kind: 'iface', iface: 'eth1', host: '*' }],
  // the interface label is literal; the resolver finds no interface named `eth*`
  ['eth*.if.web-1.lexa', { kind: 'iface', iface: 'eth*', host: 'web-1' }],
  ['if.web-1.lexa', { kind: 'ifaceParent', host: 'web-1' }],
  ['interface.web-1.lexa', { kind: 'ifaceParent', host: 'web-1' }],
  ['IF.web-1.lexa.', { kind: 'ifaceParent', host: 'web-1' }],
  ['if.web-*.lexa', { kind: 'ifaceParent', host: 'web-*' }],
  ['if.if.lexa', { kind: 'ifaceParent', host: 'if' }],
  ['eth0.if.if.lexa', { kind: 'iface', iface: 'eth0', host: 'if' }],
  ['ifs.web-1.lexa', { kind: 'none' }],
  ['eth0.ifx.web-1.lexa', { kind: 'none' }],
  ['a.eth0.if.web-1.lexa', { kind: 'none' }],
]);

table(t, 'services: A/AAAA forms and their empty non-terminals', 'lexa', [
  ['https.service.lexa', { kind: 'service', svc: 'https' }],
  ['Https.SERVICE.lexa.', { kind: 'service', svc: 'https' }],
  ['blue.https.service.lexa', { kind: 'service', svc: 'https', tag: 'blue' }],
  ['APP.Https.service.lexa', { kind: 'service', svc: 'https', tag: 'app' }],
  // one leading underscore is not an SRV name: a tag or a service that starts with `_`
  ['_app.https.service.lexa', { kind: 'service', svc: 'https', tag: '_app' }],
  ['app._https.service.lexa', { kind: 'service', svc: '_https', tag: 'app' }],
  // service labels are literal: no service is named `*`
  ['*.service.lexa', { kind: 'service', svc: '*' }],
  ['service.lexa', { kind: 'serviceParent', host: 'service' }],
  ['SERVICE.lexa.', { kind: 'serviceParent', host: 'service' }],
  ['_tcp.service.lexa', { kind: 'serviceParent', host: null }],
  ['_app.service.lexa', { kind: 'serviceParent', host: null }],
  ['_.service.lexa', { kind: 'serviceParent', host: null }],
  // more than three labels ending in `service`: no form
  ['a.b.c.service.lexa', { kind: 'none' }],
  ['a._b._c.service.lexa', { kind: 'none' }],
]);

table(t, 'services: SRV', 'lexa', [
  ['_https._tcp.service.lexa', { kind: 'srv', svc: 'https', protoOrTag: 'tcp' }],
  ['_HTTPS._Tcp.service.lexa', { kind: 'srv', svc: 'https', protoOrTag: 'tcp' }],
  ['_dns._udp.service.lexa.', { kind: 'srv', svc: 'dns', protoOrTag: 'udp' }],
  ['_https._blue.service.lexa', { kind: 'srv', svc: 'https', protoOrTag: 'blue' }],
  ['__x.__y.service.lexa', { kind: 'srv', svc: '_x', protoOrTag: '_y' }],
]);

table(t, 'a host named `service`: its name is its own, its sub-names are the service forms', 'lexa', [
  ['service.lexa', { kind: 'serviceParent', host: 'service' }],
  ['cluster.service.lexa', { kind: 'service', svc: 'cluster' }],
  ['if.service.lexa', { kind: 'service', svc: 'if' }],
  ['eth0.if.service.lexa', { kind: 'service', svc: 'if', tag: 'eth0' }],
  ['node-1.cluster.service.lexa', { kind: 'service', svc: 'cluster', tag: 'node-1' }],
  ['service.service.lexa', { kind: 'service', svc: 'service' }],
  // `service` elsewhere than last is an ordinary label
  ['web-1.service.x.lexa', { kind: 'none' }],
  ['eth0.if.service.x.lexa', { kind: 'none' }],
  ['cluster.service.x.lexa', { kind: 'none' }],
]);

table(t, 'cluster names', 'lexa', [
  ['cluster.web-1.lexa', { kind: 'cluster', host: 'web-1' }],
  ['Cluster.WEB-1.lexa.', { kind: 'cluster', host: 'web-1' }],
  ['cluster.db-*.lexa', { kind: 'cluster', host: 'db-*' }],
  ['cluster.cluster.lexa', { kind: 'cluster', host: 'cluster' }],
  ['node-1.cluster.web-1.lexa', { kind: 'member', member: 'node-1', host: 'web-1' }],
  ['Node-1.Cluster.web-1.lexa', { kind: 'member', member: 'node-1', host: 'web-1' }],
  ['node-2.cluster.web-*.lexa', { kind: 'member', member: 'node-2', host: 'web-*' }],
  // the member label is literal
  ['node-*.cluster.web-1.lexa', { kind: 'member', member: 'node-*', host: 'web-1' }],
  ['clusters.web-1.lexa', { kind: 'none' }],
  ['a.node-1.cluster.web-1.lexa', { kind: 'none' }],
]);

table(t, 'a multi-label suffix', 'lxd.example.com', [
  ['lxd.example.com', { kind: 'apex' }],
  ['LXD.Example.COM.', { kind: 'apex' }],
  ['web-1.lxd.example.com', { kind: 'host', pattern: 'web-1' }],
  ['eth0.if.web-1.lxd.example.com', { kind: 'iface', iface: 'eth0', host: 'web-1' }],
  ['_https._blue.service.lxd.example.com', { kind: 'srv', svc: 'https', protoOrTag: 'blue' }],
  ['service.lxd.example.com', { kind: 'serviceParent', host: 'service' }],
  ['example.com', { kind: 'outside' }],
  ['xlxd.example.com', { kind: 'outside' }],
  ['web-1.lexa', { kind: 'outside' }],
  ['lxd.example.com.evil', { kind: 'outside' }],
]);

// Reverse zones: the zone holding a name is the longest that matches; labels spell an address or a beginning of one.
const V4 = '0.99.10.in-addr.arpa';
const V4_16 = '100.10.in-addr.arpa';
const V6 = '0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa';
const REVERSE = [V4, V4_16, V6, '99.10.in-addr.arpa'];
t.test('reverse names', (t) => {
  const rows: [string, ReverseForm][] = [
    ['0.99.10.in-addr.arpa', { kind: 'reverseApex', zone: V4 }],
    ['0.99.10.IN-ADDR.ARPA.', { kind: 'reverseApex', zone: V4 }],
    ['5.0.99.10.in-addr.arpa', { kind: 'ptr', zone: V4, ip: '10.99.0.5' }],
    ['255.0.99.10.in-addr.arpa.', { kind: 'ptr', zone: V4, ip: '10.99.0.255' }],
    // the longest zone wins: 99.10 holds 1.99.10, but 0.99.10 is its own zone
    ['7.1.99.10.in-addr.arpa', { kind: 'ptr', zone: '99.10.in-addr.arpa', ip: '10.99.1.7' }],
    ['1.99.10.in-addr.arpa', { kind: 'reverseParent', zone: '99.10.in-addr.arpa' }],
    ['3.2.100.10.in-addr.arpa', { kind: 'ptr', zone: V4_16, ip: '10.100.2.3' }],
    ['2.100.10.in-addr.arpa', { kind: 'reverseParent', zone: V4_16 }],
    ['256.0.99.10.in-addr.arpa', { kind: 'none', zone: V4 }],
    ['05.0.99.10.in-addr.arpa', { kind: 'none', zone: V4 }],
    ['x.0.99.10.in-addr.arpa', { kind: 'none', zone: V4 }],
    ['1.5.0.99.10.in-addr.arpa', { kind: 'none', zone: V4 }],
    ['5.0.98.10.in-addr.arpa', { kind: 'outside' }],
    ['10.in-addr.arpa', { kind: 'outside' }],
    ['in-addr.arpa', { kind: 'outside' }],
    ['web-1.lexa', { kind: 'outside' }],
    [V6, { kind: 'reverseApex', zone: V6 }],
    [`1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${V6}`, { kind: 'ptr', zone: V6, ip: 'fd42:0099:0000:0000:0000:0000:0000:0011' }],
    [`B.A.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${V6}.`, { kind: 'ptr', zone: V6, ip: 'fd42:0099:0000:0000:0000:0000:0000:00ab' }],
    [`1.0.0.0.${V6}`, { kind: 'reverseParent', zone: V6 }],
    [`10.0.0.0.${V6}`, { kind: 'none', zone: V6 }],
    [`g.0.0.0.${V6}`, { kind: 'none', zone: V6 }],
    [`0.1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.${V6}`, { kind: 'none', zone: V6 }],
    ['1.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa', { kind: 'outside' }],
    ['0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa', { kind: 'outside' }],
  ];
  for (const [qname, form] of rows) t.strictSame(parseReverseName(qname, REVERSE), form, `${qname} → ${form.kind}`);
  t.end();
});
