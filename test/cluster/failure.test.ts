import t from 'tap';
import { clxc, deleteClusterPrefix, killMember, launchOn, MEMBERS, memberStatus, startClusterLexa, startMember } from '../helpers/cluster.js';
import { dig } from '../helpers/dig.js';
import { compareAfterSettle, describeComparison, type Source } from '../helpers/exact-view.js';
import { curl, hosts, since, type TestLexa } from '../helpers/lexa.js';
import { waitFor } from '../helpers/lxd-cli.js';

// A member dies on the real 2-member cluster: its daemon is killed (SIGKILL; no lifecycle event comes, its
// containers keep running as they do when LXD crashes). Member 2 is the one killed: it is the database-standby,
// so the cluster's database (on member 1, the only voter) keeps working; killing member 1 would stop the cluster.
//   lexa A watches member 1 (the member that dies is not its own),
//   lexa B is configured with member 2 only, so it must fail over to member 1, which it learnt from LXD.
const PREFIX = 'clf-';
const ON1 = `${PREFIX}a`;
const ON2 = `${PREFIX}b`;
const ON2_STOPPED_IN_GAP = `${PREFIX}c`;
/** LXD marks a dead member Offline after ~10–20 s, lexa polls members every 5 s: generous on a loaded machine. */
const OFFLINE_BOUND_MS = 60_000;
const BOUND_MS = 30_000;
/**
 * The stated settle bound from lexa-c2 Online again to the exact comparison: LXD resumes forwarding the member's
 * events ~7 s after it returns (events in that gap are lost, docs/architecture.md), lexa re-lists when a member's
 * status changes; with room for a busy machine.
 */
const SETTLE_MS = 20_000;
const cluster: Source = { query: (p) => clxc(1, 'query', p), zone: 'lexa', covers: (n) => n.startsWith(PREFIX) };
const ALL = [ON1, ON2, ON2_STOPPED_IN_GAP].map((n) => `${n}.lexa`);

let a: TestLexa;
let b: TestLexa;

t.before(async () => {
  await deleteClusterPrefix(PREFIX);
  await Promise.all([launchOn(1, ON1), launchOn(2, ON2), launchOn(2, ON2_STOPPED_IN_GAP)]);
  [a, b] = await Promise.all([startClusterLexa([1]), startClusterLexa([2])]);
  for (const l of [a, b])
    await waitFor(async () => {
      const h = await hosts(l.restUrl);
      return [ON1, ON2, ON2_STOPPED_IN_GAP].every((n) => (h.get(`${n}.lexa`)?.interfaces.ipv4.length ?? 0) > 0);
    }, { what: 'both lexas to know the three instances with IPv4', timeoutMs: BOUND_MS });
});
t.teardown(async () => {
  await a?.close();
  await b?.close();
  // Whatever happened, leave member 2 running and the cluster clean for the next run.
  if ((await memberStatus().catch(() => ({})) as Record<string, string>)[MEMBERS[2].name] !== 'Online') await startMember(2);
  await deleteClusterPrefix(PREFIX);
});

const aRecords = async (l: TestLexa, name: string) => (await dig(l.dnsPort)(`${name}.lexa`, 'A')).answer.length;

t.test('member 2 dies; then comes back', async (t) => {
  const readyB = (await curl(`${b.restUrl}/readyz`)).json<Record<string, unknown>>();
  t.match(readyB, { lxdMember: 'lexa-c2' }, 'B watches lexa-c2 before');
  const killedAt = Date.now();
  killMember(2);

  // B's member is gone: it keeps answering its last picture, then fails over to lexa-c1 by itself.
  t.ok((await aRecords(b, ON2)) > 0 && (await aRecords(b, ON1)) > 0, 'B answers from its last picture right after the kill');
  const failover = await waitFor(async () => {
    const r = (await curl(`${b.restUrl}/readyz`)).json<Record<string, unknown>>();
    return r['lxdConnected'] === true && r['lxdMember'] === 'lexa-c1' && r;
  }, { what: 'B to fail over to lexa-c1', timeoutMs: BOUND_MS });
  t.pass(`B failed over to lexa-c1 (${JSON.stringify(failover)}) ${since(killedAt)} ms after the kill`);
  t.ok(b.log.lines.some((l) => l['msg'] === 'lxd failing over to another member' && l['to'] === 'https://10.77.0.11:8443'), 'logged');

  // Policy: while LXD still lists lexa-c2 Online, its instances answer (LXD already reports them "Error").
  const status = await memberStatus();
  // (A single-instance GET fails outright here, "Missing event connection with target cluster member"; the list
  // answers, with status Error.)
  const list = JSON.parse(await clxc(1, 'query', '/1.0/instances?recursion=1')) as { name: string; status: string }[];
  const lxdSays = list.find((i) => i.name === ON2) ?? { status: 'absent' };
  if (status[MEMBERS[2].name] === 'Online') {
    t.equal(lxdSays.status, 'Error', 'LXD reports the instance Error while the member is still Online');
    t.ok((await aRecords(a, ON2)) > 0 && (await aRecords(b, ON2)) > 0, 'both lexas still answer it (member Online)');
  } else t.fail(`lexa-c2 was already ${status[MEMBERS[2].name]} ${since(killedAt)} ms after the kill; the Online window was not observed`);

  // Once LXD marks lexa-c2 Offline, its instances leave DNS; lexa-c1's stay.
  await waitFor(async () => (await memberStatus())[MEMBERS[2].name] === 'Offline', { what: 'LXD to mark lexa-c2 Offline', timeoutMs: OFFLINE_BOUND_MS });
  const offlineAt = Date.now();
  t.pass(`LXD marked lexa-c2 Offline ${offlineAt - killedAt} ms after the kill`);
  for (const l of [a, b]) {
    await waitFor(async () => (await aRecords(l, ON2)) === 0, { what: `${ON2} to leave DNS`, timeoutMs: BOUND_MS });
    t.equal(await aRecords(l, ON1), 1, `${ON1} on the live member still answers`);
    t.equal((await dig(l.dnsPort)(`${ON2}.lexa`, 'A')).status, 'NXDOMAIN');
  }
  t.pass(`lexa-c2's instances left DNS ${since(offlineAt)} ms after LXD marked it Offline`);

  // The member returns (its containers never stopped). Right away, one of its instances is stopped: that event
  // may be lost while the member's event forwarding resumes; lexa's re-lists must catch it anyway.
  const backAt = Date.now();
  await startMember(2);
  await waitFor(async () => (await memberStatus())[MEMBERS[2].name] === 'Online', { what: 'lexa-c2 Online again', timeoutMs: BOUND_MS });
  const onlineAt = Date.now();
  await clxc(1, 'stop', '--force', ON2_STOPPED_IN_GAP);
  // The exact comparison (test/helpers/exact-view.ts), names, addresses and locations, at SETTLE_MS after lexa-c2
  // is Online again; both lexas at once. Only this test's instances: other tests share the cluster bed.
  const settled = await Promise.all([a, b].map((l) => compareAfterSettle(l, [cluster], { from: onlineAt, boundMs: SETTLE_MS, alsoAsk: ALL })));
  settled.forEach(({ comparison, firstEqualMs }, k) =>
    t.ok(comparison.rest.length === 0 && comparison.dns.length === 0 && comparison.truth.size === 2,
      `lexa ${'AB'[k]} equals LXD at ${SETTLE_MS} ms after lexa-c2 was Online again (first equal after ${firstEqualMs ?? '-'} ms)`,
      { diff: describeComparison(comparison) }));
  t.pass(`full recovery ${since(backAt)} ms after restarting lexa-c2`);
  const [ca, cb] = await Promise.all([curl(`${a.restUrl}/containers/`), curl(`${b.restUrl}/containers/`)]);
  t.equal(cb.body, ca.body, 'both replicas agree again');
  const names = (await hosts(a.restUrl)).keys();
  t.same([...names].filter((n) => n.startsWith(PREFIX)).sort(), [`${ON1}.lexa`, `${ON2}.lexa`]);
});
