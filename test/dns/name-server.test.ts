import t, { type Test } from 'tap';
import { fromParsed } from '../../src/config/index.js';
import { nameServerAddresses } from '../../src/config/name-server.js';
import { resolverOptions } from '../../src/dns/handler.js';
import { decideReload } from '../../src/runtime/reload-plan.js';
import { checkResolveOptions, resolve, zoneOptions, type ResolveOptions } from '../../src/dns/resolve.js';
import { zoneContent } from '../../src/dns/zone.js';
import { Snapshot } from '../../src/streams/state/snapshot.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';
import { question } from '../helpers/dns-fixture.js';
import { sortedText, zone } from '../helpers/zone.js';

// The zone's name server name, ns.<suffix> (server.dns.ns_addresses): what Zonemaster's CONSISTENCY05,
// DELEGATION05/07 and ZONE01 asked for. Hermetic: hand-built snapshots, parsed JSON for the configuration.

const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 }, nameServerAddresses: ['127.0.0.2', '::1'] };
/** An instance named `ns`: the name server's name shadows its host name, nothing else of it. */
const snap = snapshotOf([
  instance('ns', { interfaces: [iface('eth0', ['10.99.0.53'])] }),
  instance('web-1', { interfaces: [iface('eth0', ['10.99.0.11'])] }),
]);

function answers(t: Test, s: Snapshot, q: string, want: readonly string[], additionals: readonly string[] = [], opts = OPTS): void {
  const out = resolve(s, question(q), opts);
  if (out.kind !== 'answer') return void t.fail(`${q}: ${out.kind}, not an answer`);
  t.same(sortedText(out.answers), zone(...want), `${q}: answers`);
  t.same(sortedText(out.additionals), zone(...additionals), `${q}: additionals`);
}

t.test('the apex NS carries the name server\'s addresses; ns.<suffix> answers them', async (t) => {
  const glue = ['ns.lexa. 0 IN A 127.0.0.2', 'ns.lexa. 0 IN AAAA ::1'];
  answers(t, snap, 'lexa NS', ['lexa. 0 IN NS ns.lexa.'], glue);
  answers(t, snap, 'LEXA. NS', ['LEXA. 0 IN NS ns.lexa.'], glue);
  answers(t, snap, 'ns.lexa A', ['ns.lexa. 0 IN A 127.0.0.2']);
  answers(t, snap, 'NS.Lexa. AAAA', ['NS.Lexa. 0 IN AAAA ::1']);
  answers(t, snap, 'ns.lexa ANY', ['ns.lexa. 0 IN A 127.0.0.2']);
  t.equal(resolve(snap, question('ns.lexa MX'), OPTS).kind, 'nodata');
  t.equal(resolve(snap, question('ns.lexa TXT'), OPTS).kind, 'nodata');
  // The reverse zones name the same server.
  answers(t, snap, '0.99.10.in-addr.arpa NS', ['0.99.10.in-addr.arpa. 0 IN NS ns.lexa.'], glue, { ...OPTS, reverseZones: ['0.99.10.in-addr.arpa'] });
  // Before LXD has listed, as the apex: the name server's addresses depend on no instance.
  answers(t, Snapshot.empty(), 'ns.lexa A', ['ns.lexa. 0 IN A 127.0.0.2']);
  t.equal(resolve(Snapshot.empty(), question('web-1.lexa A'), OPTS).kind, 'notready');
  // Other names of the instance `ns` are untouched; wildcards still match it as an instance.
  answers(t, snap, 'eth0.if.ns.lexa A', ['eth0.if.ns.lexa. 0 IN A 10.99.0.53']);
  answers(t, snap, 'n*.lexa A', ['n*.lexa. 0 IN A 10.99.0.53']);
});

t.test('one family only: the other is NODATA and ANY gives the one there is', async (t) => {
  const v6: ResolveOptions = { ...OPTS, nameServerAddresses: ['fd42:99::1'] };
  answers(t, snap, 'lexa NS', ['lexa. 0 IN NS ns.lexa.'], ['ns.lexa. 0 IN AAAA fd42:99::1'], v6);
  answers(t, snap, 'ns.lexa ANY', ['ns.lexa. 0 IN AAAA fd42:99::1'], [], v6);
  t.equal(resolve(snap, question('ns.lexa A'), v6).kind, 'nodata');
});

t.test('without addresses ns.<suffix> is an ordinary host name, as before', async (t) => {
  const none: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 } };
  answers(t, snap, 'lexa NS', ['lexa. 0 IN NS ns.lexa.'], [], none);
  answers(t, snap, 'ns.lexa A', ['ns.lexa. 0 IN A 10.99.0.53'], [], none);
  t.equal(resolve(snapshotOf([]), question('ns.lexa A'), none).kind, 'nxdomain');
  // An MNAME outside the zone: its addresses are another zone's to publish, none of lexa's.
  const outside: ResolveOptions = { ...OPTS, soa: { minimum: 5, mname: 'ns1.example.com' } };
  answers(t, snap, 'lexa NS', ['lexa. 0 IN NS ns1.example.com.'], [], outside);
  answers(t, snap, 'ns.lexa A', ['ns.lexa. 0 IN A 10.99.0.53'], [], outside);
});

t.test('a zone transfer holds exactly what the resolver answers at ns.<suffix>', async (t) => {
  t.same(sortedText(zoneContent(snap, 'lexa', zoneOptions(OPTS))), zone(
    'lexa. 0 IN NS ns.lexa.',
    'ns.lexa. 0 IN A 127.0.0.2',
    'ns.lexa. 0 IN AAAA ::1',
    'eth0.if.ns.lexa. 0 IN A 10.99.0.53',
    'web-1.lexa. 0 IN A 10.99.0.11',
    'eth0.if.web-1.lexa. 0 IN A 10.99.0.11',
  ));
  t.same(sortedText(zoneContent(snap, '0.99.10.in-addr.arpa', zoneOptions(OPTS))).filter((l) => l.includes(' NS ')), zone('0.99.10.in-addr.arpa. 0 IN NS ns.lexa.'));
});

t.test('the default: the DNS binds\' specific addresses; wildcards and names give none', async (t) => {
  t.same(nameServerAddresses(null, ['127.0.0.2', '::1', '127.0.0.2', '0:0:0:0:0:0:0:1']).addresses, ['127.0.0.2', '::1'], 'each address once');
  t.same(nameServerAddresses(null, ['0.0.0.0', '::', 'localhost', 'fe80::1%eth0']), { addresses: [], problems: [], fromBinds: true });
  t.same(nameServerAddresses(['10.99.0.1'], ['0.0.0.0']), { addresses: ['10.99.0.1'], problems: [], fromBinds: false });
  t.same(nameServerAddresses([], ['127.0.0.1']).addresses, [], 'an empty list turns the addresses off');
  t.match(nameServerAddresses(['0.0.0.0', '::', 'fe80::1%eth0', '10.0.0.256'], []).problems, [/"0\.0\.0\.0"/, /"::"/, /"fe80::1%eth0"/, /"10\.0\.0\.256"/]);

  const config = (dns: Record<string, unknown>) => fromParsed({ server: [{ dns: [dns] }] }, '/x.hcl', {});
  t.same(config({}).dns.nsAddresses, ['127.0.0.1'], 'the default bind, 127.0.0.1');
  t.same(config({ bind: [{ host: '127.0.0.2', port: 53 }, { host: '::', port: 53 }] }).dns.nsAddresses, ['127.0.0.2']);
  const wildcard = config({ bind: [{ host: '0.0.0.0', port: 53 }] });
  t.same(wildcard.dns.nsAddresses, []);
  t.match(wildcard.warnings, [/server\.dns\.ns_addresses/], 'a wildcard bind warns that the name server has no address');
  t.same(config({ bind: [{ host: '0.0.0.0', port: 53 }], ns_addresses: [] }).warnings, [], 'unless the operator chose none');
  t.throws(() => config({ ns_addresses: ['::'] }), /\/x\.hcl: server\.dns\.ns_addresses: "::" is not a specific/);
  // The handler takes them from the configuration; the resolver checks them again (a library caller may pass any).
  t.same(resolverOptions('lexa', config({ ns_addresses: ['10.0.0.1'] }).dns).nameServerAddresses, ['10.0.0.1']);
  t.match(checkResolveOptions({ ...OPTS, nameServerAddresses: ['nope'] }), [/name server address "nope"/]);
});

t.test('a reload: the addresses apply at once, or wait for a restart where transfers fixed the zone at start', async (t) => {
  const config = (dns: Record<string, unknown>) => fromParsed({ server: [{ dns: [dns] }] }, '/x.hcl', {});
  const plain = config({ ns_addresses: ['10.0.0.1'] });
  const moved = decideReload(plain, config({ ns_addresses: ['10.0.0.2'] }), plain);
  t.same(moved.plan, { live: ['server.dns.ns_addresses'], restart: [] });
  t.same(moved.apply.dns.nsAddresses, ['10.0.0.2']);
  // The default follows the binds, so a new bind moves it too.
  t.same(decideReload(config({}), config({ bind: [{ host: '127.0.0.2' }] }), config({})).apply.dns.nsAddresses, ['127.0.0.2']);
  const xfr = { transfer: [{ allow: ['127.0.0.1'] }] };
  const served = config({ ...xfr, ns_addresses: ['10.0.0.1'] });
  const held = decideReload(served, config({ ...xfr, ns_addresses: ['10.0.0.2'] }), served);
  t.same(held.plan, { live: [], restart: ['server.dns.ns_addresses'] });
  t.same(held.apply.dns.nsAddresses, ['10.0.0.1'], 'the running zone keeps its name server until the restart');
});
