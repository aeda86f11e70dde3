import t from 'tap';
import { MAX_LEASE_LINES, parseLeaseFile } from '../../src/streams/lxd/lease-file.js';

// The dnsmasq lease file parser (src/streams/lxd/lease-file.ts): pure, so hermetic. The lines below are in the
// format of /var/lib/lxd/networks/lxdbr0/dnsmasq.leases as LXD 5.0.2's dnsmasq wrote it on the test bed.

const NOW = 1_796_300_000;
const REAL = [
  '1796306343 00:16:3e:96:65:03 10.99.0.79 cc-web-1 01:00:16:3e:96:65:03',
  '1796306342 00:16:3E:53:29:F1 10.99.0.200 * *',
  '0 00:16:3e:ef:5d:43 10.99.0.105 cc-db-1 *',
  'duid 00:01:00:01:32:a3:f3:a7:26:b4:bf:0d:b4:9d',
  '1796306343 1046143491 fd42:99::216:3eff:fe96:6503 cc-web-1 00:04:9d:2c:2f:4c',
  '',
].join('\n');

t.test('the IPv4 section of a real lease file: MACs lower-cased, expiry 0 kept, no hostname, v6 lines ignored', async (t) => {
  t.same(parseLeaseFile(REAL, NOW), [
    { hwaddr: '00:16:3e:96:65:03', address: '10.99.0.79', type: 'dynamic' },
    { hwaddr: '00:16:3e:53:29:f1', address: '10.99.0.200', type: 'dynamic' },
    { hwaddr: '00:16:3e:ef:5d:43', address: '10.99.0.105', type: 'dynamic' },
  ]);
});

t.test('an expired lease is not a lease', async (t) => {
  const text = `${NOW - 1} 00:16:3e:00:00:01 10.99.0.1 a *\n${NOW} 00:16:3e:00:00:02 10.99.0.2 b *\n`;
  t.same(parseLeaseFile(text, NOW).map((l) => l.address), ['10.99.0.2']);
});

t.test('garbage lines are skipped, never thrown on, and the good lines around them still count', async (t) => {
  const good = '1796306343 00:16:3e:00:00:07 10.99.0.7 web *';
  const junk = [
    'x 00:16:3e:00:00:01 10.99.0.1 a *', // expiry not a number
    '-5 00:16:3e:00:00:01 10.99.0.1 a *',
    '99999999999999 00:16:3e:00:00:01 10.99.0.1 a *', // expiry absurdly long
    '1796306343 01-00:16:3e:00:00:01 10.99.0.1 a *', // another hardware type
    '1796306343 00:16:3e:00:01 10.99.0.1 a *', // five octets
    '1796306343 00:16:3e:00:00:0g 10.99.0.1 a *',
    '1796306343 00:16:3e:00:00:01 10.99.0.256 a *',
    '1796306343 00:16:3e:00:00:01 10.99.0.1x a *',
    '1796306343 00:16:3e:00:00:01 fd42:99::1 a *', // v6 in the v4 section
    '1796306343 00:16:3e:00:00:01',
    '1796306343',
    '   ',
    '\u0000\u00ff\ud800 binary',
    `1796306343 00:16:3e:00:00:01 10.99.0.1 ${'h'.repeat(100_000)} *`, // a huge hostname: the lease itself is fine
  ];
  const parsed = parseLeaseFile([...junk, good, ''].join('\n'), NOW);
  t.same(parsed.map((l) => l.address), ['10.99.0.1', '10.99.0.7'], 'only the well-formed lines');
  t.same(parseLeaseFile('', NOW), []);
  t.same(parseLeaseFile('\n\n\r\n', NOW), []);
});

t.test('a hostname binds nothing: a container that asks for another instance\'s name gets only its own MAC\'s lease', async (t) => {
  const [lease] = parseLeaseFile('1796306343 00:16:3e:66:66:66 10.99.0.66 web-1 *\n', NOW);
  t.same(lease, { hwaddr: '00:16:3e:66:66:66', address: '10.99.0.66', type: 'dynamic' }, 'no hostname is passed on');
});

t.test('a huge file: at most MAX_LEASE_LINES lines are looked at', async (t) => {
  const filler = '\n'.repeat(MAX_LEASE_LINES - 1);
  const at = (n: number) => `1796306343 00:16:3e:00:00:${n.toString(16).padStart(2, '0')} 10.99.0.${n} x *\n`;
  t.same(parseLeaseFile(filler + at(1), NOW).map((l) => l.address), ['10.99.0.1'], 'the last line within the cap counts');
  t.same(parseLeaseFile(filler + '\n' + at(2), NOW), [], 'one line beyond the cap does not');
  t.same(parseLeaseFile('junk\n'.repeat(1_000_000) + at(3), NOW), [], 'a million junk lines end at the cap');
});

t.test('the duid line ends the IPv4 section: later lines are never read as IPv4 leases', async (t) => {
  const text = 'duid 00:01\n1796306343 00:16:3e:00:00:09 10.99.0.9 late *\n';
  t.same(parseLeaseFile(text, NOW), []);
});
