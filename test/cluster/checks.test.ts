import t from 'tap';
import { deleteClusterPrefix, launchOn, MEMBERS, startClusterLexa } from '../helpers/cluster.js';
import { dig } from '../helpers/dig.js';
import { curl, hosts } from '../helpers/lexa.js';
import { waitFor } from '../helpers/lxd-cli.js';

// The rule for checks lexa cannot run, on the real 2-member cluster (scripts/cluster-bed.sh): each member's
// instances sit on a bridge inside that member's network namespace (10.78.0.0/24), which the host running lexa is
// not attached to. A service whose server-side check lexa cannot run must not be withdrawn: it is served, its
// health `unchecked`, and the check's output says why. Nothing listens on the port: were the check run and
// counted, the service would be critical.
const PREFIX = 'ckc-';
const W1 = `${PREFIX}web-1`; // on lexa-c1
const W2 = `${PREFIX}web-2`; // on lexa-c2
const SVC = { 'user.lexa.service.ckc.port': '80', 'user.lexa.service.ckc.check': 'http:/', 'user.lexa.service.ckc.check_interval': '1s', 'user.lexa.service.ckc.check_timeout': '500ms' };

t.before(() => deleteClusterPrefix(PREFIX));
t.teardown(() => deleteClusterPrefix(PREFIX));

t.test('checks of instances on member bridges this host does not have: served unchecked, with the reason', async (t) => {
  await Promise.all([launchOn(1, W1, SVC), launchOn(2, W2, SVC)]);
  const lexa = await startClusterLexa([1]);
  t.teardown(() => lexa.close());
  const docs = await waitFor(
    async () => {
      const h = await hosts(lexa.restUrl);
      const both = [h.get(`${W1}.lexa`), h.get(`${W2}.lexa`)];
      return both.every((d) => d?.checks?.[0]?.at !== null && d?.checks?.[0]?.at !== undefined) && both;
    },
    { what: 'both checks to have had their turn', timeoutMs: 15_000 },
  );
  for (const [doc, name, member] of [[docs[0], W1, MEMBERS[1].name], [docs[1], W2, MEMBERS[2].name]] as const) {
    t.equal(doc?.location, member);
    const ip = doc?.interfaces.ipv4[0]?.['eth0'];
    t.match(ip, /^10\.78\.0\./, `${name} is on the members' bridge`);
    t.match(doc?.checks, [{ service: 'ckc', status: 'unreachable', output: `not checked: ${ip} is on no network of this host` }]);
    t.match(doc?.services, [{ name: 'ckc', health: 'unchecked' }], `${name}'s service is served, unchecked`);
  }
  const srv = await dig(lexa.dnsPort)('_ckc._tcp.service.lexa', 'SRV');
  t.equal(srv.answer.length, 2, 'both in DNS');
  const service = (await curl(`${lexa.restUrl}/services/ckc`)).json<{ endpoints: { health: string; check: { status: string } }[] }>();
  t.match(service.endpoints, [{ health: 'unchecked', check: { status: 'unreachable' } }, { health: 'unchecked', check: { status: 'unreachable' } }]);
  t.match((await curl(`${lexa.restUrl}/metrics`)).body, /^lexa_checks\{status="unreachable"\} 2$/m);
});
