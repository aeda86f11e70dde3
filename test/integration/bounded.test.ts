import { execFile } from 'node:child_process';
import t from 'tap';
import { exec } from '../helpers/agent-container.js';
import { dig, kdig } from '../helpers/dig.js';
import { startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, instanceState, launch, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// Bounded work per query and bad names, against the real LXD with real dig and kdig, as a tenant would do it:
// a container named to make a wildcard expensive, and a container that gives itself an interface called `a..b`.

const PREFIX = 'sb-';
/** 60 characters: `sb-` and 57 `a`s (LXD allows 63). */
const LONG = `${PREFIX}${'a'.repeat(57)}`;
const ODD = `${PREFIX}odd`;
/** Ten `*a` runs and a `z` no name has: a backtracking matcher tries every split of the `a`s among the stars. */
const PATHOLOGICAL = `${'*a'.repeat(10)}*z.lexa`;
/** The subnet the odd interface gets: outside lxdbr0, so it collides with no other test's addresses. */
const ODD_ADDRESS = '10.123.0.1';
const ODD_ZONE = '0.123.10.in-addr.arpa';

/** Runs a client command; resolves with its stdout, whatever its exit code (dig exits 9 on no reply). */
function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve) => execFile(cmd, args, { timeout: 30_000 }, (_err, stdout, stderr) => resolve(stdout + stderr)));
}

t.test('a pathological wildcard and an interface called a..b, on the real LXD', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  await Promise.all([launch(LONG), launch(ODD)]);
  const v4 = (name: string) =>
    waitFor(async () => (await instanceState(name)).network?.['eth0']?.addresses.find((a) => a.family === 'inet')?.address, { what: `${name}'s IPv4` });
  const [longV4, oddV4] = await Promise.all([v4(LONG), v4(ODD)]);
  // What Linux allows and LXD reports as is. (A veth pair: the dummy driver is not loaded on the test host.)
  await exec(ODD, 'ip', 'link', 'add', 'a..b', 'type', 'veth');
  await exec(ODD, 'ip', 'addr', 'add', `${ODD_ADDRESS}/24`, 'dev', 'a..b');
  await exec(ODD, 'ip', 'link', 'set', 'a..b', 'up');
  await waitFor(async () => (await instanceState(ODD)).network?.['a..b'] !== undefined, { what: 'LXD to report a..b' });

  const lexa = await startLexa(
    `    socket = "${LXD_SOCKET}"`,
    `  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    reverse_zones = ["10.99.0.0/24", "10.123.0.0/24"]\n    transfer {\n      allow = ["127.0.0.1"]\n    }\n  }\n`,
  );
  t.teardown(() => lexa.close());
  const udp = dig(lexa.dnsPort);
  await waitFor(async () => (await udp(`${ODD}.lexa`, 'A')).answer.length === 1, { what: 'lexa to know the containers' });

  t.test('the wildcard is answered, and so is a query sent beside it', async (t) => {
    // Both in flight at once over UDP: with the old matcher the first never returns, and the event loop it
    // blocks (this process's: the daemon runs in it) answers neither.
    const [wild, other] = await Promise.all([udp(PATHOLOGICAL, 'A'), udp(`${ODD}.lexa`, 'A')]);
    t.equal(wild.status, 'NXDOMAIN', `${PATHOLOGICAL}: NXDOMAIN`);
    t.equal(other.status, 'NOERROR', 'the query beside it is answered');
    t.same(other.answer, [`${ODD}.lexa. 0 IN A ${oddV4}`]);
    const match = await udp(`${'*a'.repeat(10)}*.lexa`, 'A');
    t.ok(match.answer.includes(`${'*a'.repeat(10)}*.lexa. 0 IN A ${longV4}`), 'the same stars find the long name');
  });

  t.test('a..b leaves every answer standing: AXFR of the zone and the reverse zones, PTR', async (t) => {
    const zone = await run('dig', ['@127.0.0.1', '-p', String(lexa.dnsPort), 'lexa', 'AXFR', '+time=5', '+tries=1']);
    t.notMatch(zone, /Transfer failed/, 'dig: the zone transfers');
    t.match(zone, new RegExp(`^${ODD}\\.lexa\\.\\s+0\\s+IN\\s+A\\s+${oddV4.replaceAll('.', '\\.')}$`, 'm'), 'with the odd container\'s host name');
    t.match(zone, new RegExp(`^eth0\\.if\\.${ODD}\\.lexa\\.\\s`, 'm'), 'and its eth0 name');
    t.notMatch(zone, /a\\?\.\\?\.b/, 'and nothing named after a..b');
    t.equal(zone.match(/\sIN\s+SOA\s/g)?.length, 2, 'SOA first and last');

    const reverse = await run('kdig', ['@127.0.0.1', '-p', String(lexa.dnsPort), ODD_ZONE, 'AXFR', '+time=5', '+retry=0']);
    t.notMatch(reverse, /failed|SERVFAIL/i, 'kdig: the reverse zone of a..b\'s subnet transfers');
    t.match(reverse, /IN\s+NS\s/, 'its NS is there');
    t.notMatch(reverse, /\sPTR\s/, 'and no PTR: a..b names nothing');
    const bridge = await run('kdig', ['@127.0.0.1', '-p', String(lexa.dnsPort), '0.99.10.in-addr.arpa', 'AXFR', '+time=5', '+retry=0']);
    const last = oddV4.split('.')[3];
    t.match(bridge, new RegExp(`^${last}\\.0\\.99\\.10\\.in-addr\\.arpa\\.\\s+0\\s+IN\\s+PTR\\s+${ODD}\\.lexa\\.$`, 'm'), 'the bridge zone keeps the odd container\'s PTR');

    const ptr = await kdig(lexa.dnsPort)(`1.${ODD_ZONE}`, 'PTR');
    t.equal(ptr.status, 'NXDOMAIN', 'PTR of the address only a..b holds: NXDOMAIN, not SERVFAIL');
    const problems = lexa.log.lines.filter((l) => String(l['problem'] ?? '').includes('"a..b" is not a DNS label'));
    t.equal(problems.length, 1, 'the odd interface is logged once, when the instance is read');
  });
});
