import t from 'tap';
import { resolve, type Outcome } from '../../src/dns/resolve.js';
import type { Instance } from '../../src/streams/model/model.js';
import { OPTS, question } from '../helpers/dns-fixture.js';
import { iface, instance, member, service, snapshotOf } from '../helpers/model.js';
import { scans } from '../helpers/scan.js';

// Which names cost O(N): only a bare `*` (and patterns whose literal prefix many names share). Every other form
// is answered from the snapshot's hash indexes. Synthetic 10,000 instances on a 2-member cluster, not a real LXD.

const N = 10_000;
const many: Instance[] = [];
for (let i = 0; i < N; i++) {
  many.push(
    instance(`host-${i}`, {
      location: `node-${1 + (i % 2)}`,
      interfaces: [iface('eth0', [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`]), iface('eth1', ['10.200.0.1'])],
      services: i % 1000 === 7 ? [service('http', { tags: ['blue'] })] : [],
    }),
  );
}
const snap = snapshotOf(many, [member('node-1', ['10.77.0.1']), member('node-2', ['10.77.0.2'])], true);
// Sort the host names now, so the one-off sort is not counted against the first wildcard case.
snap.matchHosts('x*');

const rows: [q: string, kind: Outcome['kind']][] = [
  ['host-9999.lexa A', 'answer'],
  ['HOST-42.lexa. AAAA', 'nodata'],
  ['nope.lexa A', 'nxdomain'],
  ['eth1.if.host-5.lexa A', 'answer'],
  ['eth9.interface.host-5.lexa A', 'nxdomain'],
  ['if.host-5.lexa A', 'nodata'],
  ['if.nope.lexa A', 'nxdomain'],
  ['http.service.lexa A', 'answer'],
  ['blue.http.service.lexa A', 'answer'],
  ['nope.service.lexa A', 'nxdomain'],
  ['_http._tcp.service.lexa SRV', 'answer'],
  ['_http._blue.service.lexa SRV', 'answer'],
  ['_nope._tcp.service.lexa SRV', 'nxdomain'],
  ['service.lexa A', 'nodata'],
  ['_tcp.service.lexa A', 'nodata'],
  ['cluster.host-3.lexa CNAME', 'answer'],
  ['cluster.host-3.lexa A', 'answer'],
  ['node-2.cluster.host-3.lexa A', 'answer'],
  ['node-1.cluster.host-3.lexa A', 'nxdomain'],
  ['a.b.c.service.lexa A', 'nxdomain'],
  ['lexa SOA', 'answer'],
  ['example.com A', 'refused'],
];

t.test('every name but a wildcard is answered without iterating the snapshot', (t) => {
  for (const [q, kind] of rows) {
    let out: Outcome | undefined;
    const seen = scans(() => (out = resolve(snap, question(q), OPTS)));
    t.equal(out?.kind, kind, `${q}: ${kind}`);
    t.same({ maps: seen.maps, running: seen.running, patternTests: seen.patternTests }, { maps: [], running: 0, patternTests: 0 }, `${q}: no scan`);
  }
  t.end();
});

t.test('a wildcard looks only at the names sharing its literal prefix; a bare `*` looks at all of them', (t) => {
  const count = (q: string) => {
    let out: Outcome | undefined;
    const seen = scans(() => (out = resolve(snap, question(q), OPTS)));
    return { kind: out?.kind, maps: seen.maps, running: seen.running, patternTests: seen.patternTests };
  };
  t.same(count('host-999*.lexa A'), { kind: 'answer', maps: [], running: 0, patternTests: 11 });
  t.same(count('eth0.if.host-12*5.lexa A'), { kind: 'answer', maps: [], running: 0, patternTests: 111 });
  t.same(count('zzz*.lexa A'), { kind: 'nxdomain', maps: [], running: 0, patternTests: 0 });
  // the instrument sees a scan when there is one
  t.same(count('*.lexa A'), { kind: 'answer', maps: [], running: 0, patternTests: N });
  t.end();
});
