import t from 'tap';
import { resolve, zoneOptions } from '../../src/dns/resolve.js';
import { zoneContent } from '../../src/dns/zone.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import { OPTS, question } from '../helpers/dns-fixture.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// Work that tenants' data could make grow past what a reply or a zone needs: counted, not timed. Synthetic
// instances (no LXD): a container can give itself any number of addresses, and copy another's.

t.test('an SRV answer builds no more records than a message can hold, however many addresses its target has', async (t) => {
  // One endpoint whose interface carries 10,000 addresses (a container adds them to itself with `ip addr add`).
  const addresses = Array.from({ length: 10_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.9`);
  const snap = snapshotOf([instance('big', { interfaces: [iface('eth0', addresses)], services: [service('http')] })]);
  const out = resolve(snap, question('_http._tcp.service.lexa SRV'), OPTS);
  if (out.kind !== 'answer') return t.fail(`answer expected, got ${out.kind}`);
  t.equal(out.answers.length, 1, 'one SRV record');
  // 65,535 bytes hold at most 4095 records of 16 bytes (the smallest lexa writes).
  t.ok(out.answers.length + out.additionals.length <= 4096, `${out.additionals.length} additionals built for 10,000 addresses`);
  t.ok(out.additionals.length > 0, 'the target still has addresses');
});

t.test('a reverse zone looks up each address once, however many instances hold it', async (t) => {
  // 200 instances, each with its own address and one address they all share.
  const snap = snapshotOf(
    Array.from({ length: 200 }, (_, i) => instance(`c-${i}`, { interfaces: [iface('eth0', [`10.99.0.${i + 1}`, '10.99.1.5'])] })),
  );
  const original = Snapshot.prototype.addressOwners;
  let lookups = 0;
  Snapshot.prototype.addressOwners = function (this: Snapshot, ip: string) {
    lookups++;
    return original.call(this, ip);
  };
  let ptrs = 0;
  try {
    ptrs = zoneContent(snap, '99.10.in-addr.arpa', zoneOptions(OPTS)).filter((r) => r.type === 'PTR').length;
  } finally {
    Snapshot.prototype.addressOwners = original;
  }
  t.equal(ptrs, 200 + 200, 'a PTR per own address, and 200 for the shared one');
  // One lookup per holder of the shared address made this O(N²) in the number of holders.
  t.equal(lookups, 201, 'one owner lookup per distinct address');
});
