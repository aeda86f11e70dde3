import t from 'tap';
import { dig } from '../helpers/dig.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { DAEMON, deleteByPrefix, instanceState, launch, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';

// Trusted addresses against the real LXD: a container that copies its neighbour's IPv4 onto its own eth0 (LXD's
// bridge filters neither MAC nor IP by default) and makes an interface of its own with an address LXD knows
// nothing of. Queried with the real dig and curl, lexa in this process. The container module `dummy` cannot be
// loaded from an unprivileged container here, so the thief's own interface is a veth it creates (the same case:
// an interface no LXD NIC device backs).
const PREFIX = 'sd-';
const VICTIM = `${PREFIX}victim`;
const THIEF = `${PREFIX}thief`;
/** The address the thief gives the interface it made itself. */
const OWN_IF_ADDRESS = '10.123.0.7';

t.before(() => deleteByPrefix(PREFIX));
t.teardown(() => deleteByPrefix(PREFIX));

/** The instance's global IPv4 on eth0, once DHCP gave it one. */
async function ipv4Of(name: string): Promise<string> {
  return waitFor(
    async () => (await instanceState(name)).network?.['eth0']?.addresses.find((a) => a.family === 'inet' && a.scope === 'global')?.address,
    { what: `${name} to get an IPv4` },
  );
}

t.test("a container copying its neighbour's address takes none of its names, PTR, services or agent binding", async (t) => {
  const traefik = { 'user.traefik.enable': 'true' };
  await Promise.all([
    launch(VICTIM, { config: { 'user.lexa.service.sdweb.port': '80', ...traefik } }),
    launch(THIEF, {
      config: {
        'user.lexa.service.sdweb.port': '80',
        // Offered only by the thief: whatever these names give is the thief's doing alone.
        'user.lexa.service.sdloot.port': '80',
        'user.lexa.service.sdown.port': '81',
        'user.lexa.service.sdown.interface': 'x0',
        ...traefik,
      },
    }),
  ]);
  const [victimV4, thiefV4] = await Promise.all([ipv4Of(VICTIM), ipv4Of(THIEF)]);
  // The copy goes first on eth0 (the thief's own address re-added after it), so "the first address" is the stolen one.
  const prefix = DAEMON.v4Prefix;
  t.ok(victimV4.startsWith(prefix) && thiefV4.startsWith(prefix), 'both on the bridge');
  await lxc(
    'exec', THIEF, '--', 'sh', '-c',
    `ip addr del ${thiefV4}/24 dev eth0 && ip addr add ${victimV4}/24 dev eth0 && ip addr add ${thiefV4}/24 dev eth0 && ` +
      `ip link add x0 type veth && ip link set x0 up && ip link set veth0 up && ip addr add ${OWN_IF_ADDRESS}/32 dev x0`,
  );
  const thiefState = await waitFor(
    async () => {
      const net = (await instanceState(THIEF)).network;
      const v4 = (ifname: string) => net?.[ifname]?.addresses.filter((a) => a.family === 'inet').map((a) => a.address) ?? [];
      return v4('eth0')[0] === victimV4 && v4('x0').includes(OWN_IF_ADDRESS) ? net : undefined;
    },
    { what: `${THIEF}'s state to show the copied address first and x0` },
  );
  t.ok(thiefState, "LXD reports the thief's copied address and its own interface");

  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  const store = lexa.daemon.store;
  // lexa sees every address the thief reports (the test is not vacuous).
  await waitFor(
    () => {
      const inst = store.current.instances.get(`default/${THIEF}`);
      const names = inst?.interfaces.map((i) => i.name) ?? [];
      return inst?.interfaces[0]?.ipv4.includes(victimV4) && names.includes('x0') && store.current.holders(victimV4).length > 0;
    },
    { what: "lexa's snapshot to show the thief's addresses" },
  );

  t.same(store.current.holders(victimV4).map((i) => i.name), [VICTIM], "the victim's address is held by the victim alone (agent binding)");
  t.same(store.current.holders(thiefV4).map((i) => i.name), [THIEF], 'the thief holds its own leased address');
  t.same(store.current.holders(OWN_IF_ADDRESS), [], 'an address on an interface the thief made is held by nobody');

  const q = dig(lexa.dnsPort);
  const srv = await q('_sdweb._tcp.service.lexa', 'SRV');
  t.equal(srv.answer.length, 2, 'both offer sdweb');
  const thiefTarget = `eth0.if.${THIEF}.lexa.`;
  t.same(
    srv.additional.filter((r) => r.startsWith(thiefTarget) && / A /.test(r)).map((r) => r.split(' ').at(-1)),
    [thiefV4],
    "the thief's SRV target carries its own IPv4 in the additionals, never the copied one",
  );
  const loot = await q('sdloot.service.lexa', 'A');
  t.same(loot.answer.map((r) => r.split(' ').at(-1)), [thiefV4], "the thief's own service names its own address only");
  const own = await q('_sdown._tcp.service.lexa', 'SRV');
  t.equal(own.status, 'NOERROR', 'a service on the interface the thief made exists ...');
  t.same(own.answer, [], '... but gets no SRV record');

  const ptr = await q(victimV4.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR');
  t.same(ptr.answer.map((r) => r.split(' ').at(-1)), [`${VICTIM}.lexa.`], "the victim's address names the victim alone (dig -x)");
  const ownPtr = await q(`${OWN_IF_ADDRESS.split('.').reverse().join('.')}.in-addr.arpa`, 'PTR');
  t.same(ownPtr.answer, [], 'no PTR for the address on the interface the thief made');

  const x0 = await q(`x0.if.${THIEF}.lexa`, 'A');
  t.same(x0.answer.map((r) => r.split(' ').at(-1)), [OWN_IF_ADDRESS], 'x0.if.<host> still answers the address the thief gave it');

  const doc = await curl(`${lexa.restUrl}/traefik`);
  t.equal(doc.status, 200);
  const servers = (name: string) =>
    (doc.json<{ http: { services: Record<string, { loadBalancer: { servers: { url: string }[] } }> } }>().http.services[name]?.loadBalancer.servers ?? []).map((s) => s.url);
  t.same(servers('sdloot'), [`http://${thiefV4}:80`], "/traefik sends the thief's service to the thief's own address");
  t.same(servers('sdweb').sort(), [`http://${thiefV4}:80`, `http://${victimV4}:80`].sort(), 'and sdweb to each one\'s own');
});
