import t from 'tap';
import { Checker, fold, type Action, type CheckTarget, type HostNetworks, type Instance, type ProbeResult, type Snapshot } from '../../src/streams/index.js';
import { checksDoc, hostDoc } from '../../src/servers/rest/hosts.js';
import { NEW_TALLY, tally, type Outcome } from '../../src/streams/checks/tally.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { deepFreeze, iface, instance, member, seeded, service, snapshotOf } from '../helpers/model.js';

// The checker against a fake clock and a scripted probe (no sockets): jitter, the concurrency bound, no stacking,
// thresholds, the unreachable rule, and what the fold then serves.
const LOCAL: HostNetworks = { addresses: ['10.0.0.1'], subnets: ['10.0.0.1/16'] };
const check = (over: Record<string, unknown> = {}) => ({ kind: 'tcp' as const, path: null, intervalMs: 10_000, timeoutMs: 2_000, failuresBeforeCritical: 1, successBeforePassing: 1, ...over });
const web = (n: number, over: Record<string, unknown> = {}, inst: Partial<Instance> = {}) =>
  instance(`web-${n}`, { interfaces: [iface('eth0', [`10.0.${n >> 8}.${n & 255}`])], services: [service('http', { port: 80, check: check(over) })], ...inst });

/** A store in miniature: the checker's actions fold into `snap`, which the checker observes again. */
function harness(instances: Instance[], opts: { probe?: (target: CheckTarget) => Promise<ProbeResult> | ProbeResult; maxInFlight?: number; host?: HostNetworks; members?: Parameters<typeof snapshotOf>[1] } = {}) {
  const clock = new FakeClock();
  const calls: { target: string; at: number }[] = [];
  const h = {
    clock,
    calls,
    snap: snapshotOf(instances, opts.members ?? []) as Snapshot,
    checker: undefined as unknown as Checker,
    served: (svc = 'http') => h.snap.serviceEndpoints(svc).map((e) => e.instance.name).sort(),
    /** Moves the clock until `k` more probes have run (in steps of 10 ms). */
    runs: async (k = 1) => {
      const until = calls.length + k;
      while (calls.length < until) await clock.advance(10);
    },
  };
  h.checker = new Checker({
    clock,
    random: seeded(7),
    maxInFlight: opts.maxInFlight,
    hostNetworks: () => opts.host ?? LOCAL,
    dispatch: (a: Action) => {
      h.snap = deepFreeze(fold(h.snap, a));
    },
    probe: async (_kind, target) => {
      calls.push({ target: target.target, at: clock.now() });
      return (opts.probe ?? (() => ({ ok: true, output: 'ok' })))(target);
    },
  });
  h.checker.observe(h.snap);
  return h;
}

t.test('a new service is not served until its first success; then it stays while checks pass', async (t) => {
  const h = harness([web(1)]);
  t.same(h.served(), [], 'critical until shown to pass: not served before the first run');
  t.equal(hostDoc(h.snap.instances.get('default/web-1')!, 'lexa', h.snap.checks.get('default/web-1')).services, null);
  t.match(checksDoc(h.snap.instances.get('default/web-1')!, undefined), [{ service: 'http', status: 'critical', output: 'waiting for its first run', at: null }]);
  await h.clock.advance(1_000);
  t.equal(h.calls.length, 1, 'the first run comes within the first second');
  t.same(h.served(), ['web-1']);
  const doc = hostDoc(h.snap.instances.get('default/web-1')!, 'lexa', h.snap.checks.get('default/web-1'));
  t.match(doc.services, [{ name: 'http', health: 'passing' }]);
  t.match(doc.checks, [{ service: 'http', check: 'tcp', target: '10.0.0.1:80', status: 'passing', output: 'ok' }]);
  const before = h.snap;
  await h.clock.advance(50_000);
  const times = h.calls.map((c) => c.at);
  const second = times[1]! - times[0]!;
  t.ok(second >= 2_000 && second < 12_000, `the second run a timeout plus a random part of the interval later (${second} ms)`);
  t.same(times.slice(2).map((at, i) => at - times[i + 1]!), times.slice(2).map(() => 10_000), 'then one run per interval');
  t.equal(h.snap, before, 'runs that change nothing publish nothing');
});

t.test('thresholds: failures before critical, successes before passing', async (t) => {
  let up = true;
  const h = harness([web(1, { failuresBeforeCritical: 3, successBeforePassing: 2 })], { probe: () => (up ? { ok: true, output: 'up' } : { ok: false, output: 'refused', code: 'ECONNREFUSED' }) });
  await h.runs();
  t.same(h.served(), [], 'one success of two');
  await h.runs();
  t.same(h.served(), ['web-1'], 'two successes: passing');
  up = false;
  await h.runs(2);
  t.same(h.served(), ['web-1'], 'two failures of three: still served');
  t.equal(h.snap.checks.get('default/web-1')?.['http']?.output, 'refused', 'the output moves at once');
  t.equal(h.snap.checks.get('default/web-1')?.['http']?.status, 'passing');
  await h.runs();
  t.same(h.served(), [], 'three failures: withdrawn');
  up = true;
  await h.runs();
  t.same(h.served(), [], 'one success of two');
  await h.runs();
  t.same(h.served(), ['web-1'], 'back');
  t.equal(h.checker.counters.failures, 3);
});

t.test('a run past its timeout fails, and a hung target never stacks runs', async (t) => {
  const h = harness([web(1, { intervalMs: 1_000, timeoutMs: 500 })], { probe: () => new Promise<ProbeResult>(() => undefined) });
  await h.clock.advance(10_000);
  t.match(h.snap.checks.get('default/web-1')?.['http'], { status: 'critical', output: 'TCP connect 10.0.0.1:80: timed out after 500ms' });
  t.ok(h.checker.counters.inFlight <= 1, 'timed-out runs give their slot back (one may be running now)');
  const gaps = h.calls.slice(1).map((c, i) => c.at - h.calls[i]!.at);
  t.ok(gaps.length >= 7 && gaps.every((g) => g >= 500), `never two runs of one check closer than its timeout: ${gaps.join(',')}`);
  t.equal(h.checker.counters.skipped, 0, 'each run had ended (timed out) before the next turn');
});

t.test('first runs come within a second, spread; then runs spread evenly over the interval (jitter), never in step', async (t) => {
  const h = harness(Array.from({ length: 200 }, (_, i) => web(i + 1)), { maxInFlight: 1000 });
  const per = async (buckets: number, ms: number) => {
    const out: number[] = [];
    for (let b = 0; b < buckets; b++) {
      const before = h.calls.length;
      await h.clock.advance(ms);
      out.push(h.calls.length - before);
    }
    return out;
  };
  const first = await per(10, 100);
  t.equal(h.calls.length, 200, 'every check ran once in the first second');
  t.ok(first.every((n) => n >= 5 && n <= 40), `about 20 per 100 ms, never all at once: ${first.join(',')}`);
  t.equal(h.served().length, 200);
  await h.clock.advance(12_000); // every second run is done by 1 s + 2 s + 10 s
  const steady = await per(10, 1_000);
  t.equal(steady.reduce((a, b) => a + b, 0), 200, 'one run per check per interval');
  t.ok(steady.every((n) => n >= 8 && n <= 35), `about 20 a second, never a burst: ${steady.join(',')}`);
});

t.test('at most maxInFlight runs at once; a check still waiting when its turn comes is skipped, not stacked', async (t) => {
  let inFlight = 0;
  let most = 0;
  // Probes that answer only when aborted (at their timeout), as a hung target makes the real ones do.
  const h = harness(Array.from({ length: 50 }, (_, i) => web(i + 1, { intervalMs: 1_000, timeoutMs: 900 })), { maxInFlight: 4 });
  h.checker.stop();
  const checker = new Checker({
    clock: h.clock,
    random: seeded(3),
    maxInFlight: 4,
    hostNetworks: () => LOCAL,
    dispatch: (a) => void (h.snap = fold(h.snap, a)),
    probe: (_kind, _target, signal) =>
      new Promise<ProbeResult>((resolve) => {
        most = Math.max(most, ++inFlight);
        signal.addEventListener('abort', () => {
          inFlight--;
          resolve({ ok: false, output: 'aborted' });
        });
      }),
  });
  checker.observe(h.snap);
  await h.clock.advance(5_000);
  t.equal(most, 4, 'never more than four probes at once');
  t.ok(checker.counters.inFlight <= 4);
  t.ok(checker.counters.skipped > 0, `turns of checks still waiting were skipped (${checker.counters.skipped})`);
  t.ok(checker.counters.waiting <= 50, `the line never holds a check twice (${checker.counters.waiting})`);
  t.ok(checker.counters.runs >= 16 && checker.counters.runs <= 24, `four slots, each freed by a 900 ms timeout: about 20 runs in 5 s (${checker.counters.runs})`);
  checker.stop();
  t.equal(inFlight, 0, 'stop aborts the runs in progress');
});

t.test('a check lexa cannot run from here is unreachable: served, with the reason', async (t) => {
  // Rule 1: the address is on no network of this host.
  const far = harness([web(1)], { host: { addresses: ['192.0.2.2'], subnets: ['192.0.2.2/24'] } });
  await far.clock.advance(10_000);
  t.same(far.served(), ['web-1'], 'served as if unchecked');
  t.equal(far.calls.length, 0, 'no probe was sent');
  t.match(far.snap.checks.get('default/web-1')?.['http'], { status: 'unreachable', output: /not checked: 10\.0\.0\.1 is on no network of this host/ });
  t.match(hostDoc(far.snap.instances.get('default/web-1')!, 'lexa', far.snap.checks.get('default/web-1')).services, [{ health: 'unchecked' }]);

  // Rule 2: clustered, this host is member c1, the instance runs on c2 (same subnet: each member's own bridge).
  const members = [member('c1', ['10.0.0.1']), member('c2', ['10.0.0.2'])];
  const cl = harness([web(5, {}, { location: 'c2' }), web(6, {}, { location: 'c1' })], { members });
  await cl.clock.advance(10_000);
  t.same(cl.served(), ['web-5', 'web-6']);
  t.match(cl.snap.checks.get('default/web-5')?.['http'], { status: 'unreachable', output: /runs on cluster member c2, whose bridge this host \(member c1\) does not reach/ });
  t.equal(cl.snap.checks.get('default/web-6')?.['http']?.status, 'passing', 'the local member\'s instance is checked');
  t.same([...new Set(cl.calls.map((c) => c.target))], ['10.0.0.6:80'], 'no probe went to the other member\'s instance');

  // Rule 3: the kernel says there is no path.
  const noRoute = harness([web(1)], { probe: () => ({ ok: false, output: 'TCP connect 10.0.0.1:80: EHOSTUNREACH', code: 'EHOSTUNREACH' }) });
  await noRoute.clock.advance(10_000);
  t.same(noRoute.served(), ['web-1']);
  t.equal(noRoute.snap.checks.get('default/web-1')?.['http']?.status, 'unreachable');
  t.equal(noRoute.checker.counters.failures, 0, 'not a failure of the service');
});

t.test('check states survive an LXD re-read; stop, removal and a new target reset them', async (t) => {
  const h = harness([web(1)]);
  await h.clock.advance(10_000);
  t.same(h.served(), ['web-1']);
  h.snap = deepFreeze(fold(h.snap, { type: 'instance', instance: web(1), at: 2 }));
  t.same(h.served(), ['web-1'], 'a re-read of the same instance keeps it served');
  t.ok(h.snap.checks.get('default/web-1'));
  const moved = web(1, {}, { interfaces: [iface('eth0', ['10.0.9.9'])] });
  h.snap = deepFreeze(fold(h.snap, { type: 'instance', instance: moved, at: 3 }));
  t.same(h.served(), [], 'a new address is a new target: not served until checked there');
  h.checker.observe(h.snap);
  await h.clock.advance(10_000);
  t.same(h.served(), ['web-1']);
  t.equal(h.calls.at(-1)?.target, '10.0.9.9:80');
  h.snap = deepFreeze(fold(h.snap, { type: 'instance', instance: web(1, {}, { running: false, status: 'Stopped', interfaces: [iface('eth0', ['10.0.9.9'])] }), at: 4 }));
  t.equal(h.snap.checks.get('default/web-1'), undefined, 'a stopped instance loses its check states');
  h.checker.observe(h.snap);
  t.equal(h.checker.counters.scheduled, 0, 'and its checks stop');
  const late = fold(h.snap, { type: 'check', key: 'default/web-1', service: 'http', result: { target: '10.0.9.9:80', status: 'passing', output: 'ok', at: 5 }, at: 5 });
  t.equal(late, h.snap, 'a late result for a stopped instance changes nothing');
});

t.test('hostile names: a service named constructor inherits no state', async (t) => {
  const inst = instance('x', { interfaces: [iface('eth0', ['10.0.0.7'])], services: [service('constructor', { port: 80, check: check() })] });
  const s = snapshotOf([inst]);
  t.same(s.serviceEndpoints('constructor'), [], 'not served: no state of its own');
  const withOther = fold(s, { type: 'check', key: 'default/x', service: 'tostring', result: { target: '10.0.0.7:80', status: 'passing', output: 'ok', at: 1 }, at: 1 });
  t.equal(withOther, s, 'a result for a service the instance does not check is ignored');
});

t.test('a full re-list keeps check states; an agent cannot serve a name whose config check withholds it', async (t) => {
  const h = harness([web(1)]);
  await h.clock.advance(10_000);
  t.same(h.served(), ['web-1']);
  h.snap = deepFreeze(fold(h.snap, { type: 'listed', instances: [web(1)], members: [], clustered: false, at: 2 }));
  t.same(h.served(), ['web-1'], 'a re-list (every reconnect) keeps it served');
  const agent: Action = {
    type: 'agent-services', key: 'default/web-1', session: 's', connected: true, defaultServices: ['*'], at: 3,
    services: [{ ...service('http', { port: 8080 }), source: 'agent', health: 'passing' }],
  };
  const fresh = deepFreeze(fold(snapshotOf([web(1)]), agent));
  t.same(fresh.serviceEndpoints('http'), [], 'config declares http with a check not yet passed: the agent\'s http is not served either');
  const passed = deepFreeze(fold(h.snap, agent));
  t.same(passed.serviceEndpoints('http').map((e) => [e.service.port, e.service.source]), [[80, 'config']], 'once it passes, the config declaration is what is served');
});

t.test('the thresholds as a table (tally.ts, pure)', async (t) => {
  const spec = { ...check(), failuresBeforeCritical: 2, successBeforePassing: 3 };
  const walk = (outcomes: Outcome[]) => outcomes.reduce((s, o) => tally(s, o, spec), NEW_TALLY).status;
  const cases: [Outcome[], string][] = [
    [[], 'critical'],
    [['success', 'success'], 'critical'],
    [['success', 'success', 'success'], 'passing'],
    [['success', 'failure', 'success', 'success'], 'critical'],
    [['success', 'success', 'success', 'failure'], 'passing'],
    [['success', 'success', 'success', 'failure', 'failure'], 'critical'],
    [['success', 'success', 'success', 'failure', 'success', 'failure'], 'passing'],
    [['unreachable'], 'unreachable'],
    [['unreachable', 'success'], 'passing'],
    [['unreachable', 'failure'], 'unreachable'],
    [['unreachable', 'failure', 'failure'], 'critical'],
    [['success', 'success', 'success', 'failure', 'unreachable', 'failure'], 'unreachable'],
  ];
  for (const [outcomes, status] of cases) t.equal(walk(outcomes), status, outcomes.join(',') || '(none)');
});
