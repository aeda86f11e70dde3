import t from 'tap';
import { addressKey, reverseZoneOf } from '../../src/net/addresses.js';
import { reverseNameOf } from '../../src/dns/reverse.js';
import { toSubnets } from '../../src/streams/lxd/networks.js';

t.test('reverse zones from subnets: on the label boundary at or above the prefix', (t) => {
  const rows: [string, string | undefined][] = [
    ['10.99.0.1/24', '0.99.10.in-addr.arpa'],
    ['10.99.0.0/24', '0.99.10.in-addr.arpa'],
    ['10.99.16.1/20', '99.10.in-addr.arpa'],
    ['10.99.0.7/32', '7.0.99.10.in-addr.arpa'],
    ['10.0.0.1/8', '10.in-addr.arpa'],
    ['10.0.0.1/7', undefined],
    ['10.0.0.1/33', undefined],
    ['fd42:99::1/64', '0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa'],
    ['fd42:99::1/62', '0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa'],
    ['FD42:99::1/48', '0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa'],
    ['fd42:99::1/3', undefined],
    ['fd42:99::1/129', undefined],
    ['none', undefined],
    ['10.99.0.1', undefined],
    ['300.1.1.1/24', undefined],
  ];
  for (const [cidr, zone] of rows) t.equal(reverseZoneOf(cidr), zone, cidr);
  t.end();
});

t.test('reverse names and address keys', (t) => {
  t.equal(reverseNameOf('10.99.0.5'), '5.0.99.10.in-addr.arpa');
  t.equal(reverseNameOf('fd42:99::11'), '1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa');
  t.equal(reverseNameOf('nope'), undefined);
  t.equal(addressKey('fd42:99::11'), addressKey('FD42:0099:0:0:0:0:0:0011'));
  t.equal(addressKey('::ffff:10.0.0.1'), '00000000000000000000ffff0a000001');
  t.equal(addressKey('::'), '0'.repeat(32));
  t.equal(addressKey('fe80::1%eth0'), undefined);
  t.end();
});

t.test('subnets of managed networks only, sorted, bad values ignored', (t) => {
  t.strictSame(
    toSubnets([
      { name: 'lxdbr0', managed: true, config: { 'ipv4.address': '10.99.0.1/24', 'ipv6.address': 'fd42:99::1/64' } },
      { name: 'br1', managed: true, config: { 'ipv4.address': 'none', 'ipv6.address': null } },
      { name: 'eth0', managed: false, config: { 'ipv4.address': '192.168.1.1/24' } },
      { name: 'br2', managed: true, config: { 'ipv4.address': '10.98.0.1/24' } },
      { name: 'odd', managed: true },
    ]),
    ['10.98.0.1/24', '10.99.0.1/24', 'fd42:99::1/64'],
  );
  t.strictSame(toSubnets(null as never), []);
  t.end();
});
