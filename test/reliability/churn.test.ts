import t from 'tap';
import { CHURN_DEFAULTS, describeChurn, runChurn } from '../../src/bench/churn.js';

// The short form of `npm run churn` (src/bench/churn.ts) on the real LXD of scripts/testbed.sh and the built CLI
// (npm run build): dnsperf at 20k QPS over UDP for 12 s while 4 real containers are started and stopped, and a
// recorder whose every reply is judged against LXD's timeline (src/bench/churn-judge.ts). No lost query, no rcode
// but NOERROR/NXDOMAIN, no stale or foreign address, no missing address once an instance has been up for the start
// bound. lexa runs on CPU 0, dnsperf on CPU 1.

const options = { ...CHURN_DEFAULTS, containers: 4, seconds: 12, prefix: 'load-ci-', lexaCpu: 0, clientCpu: 1 };

t.test('churn under 20k QPS: every reply matches LXD at that moment', async (t) => {
  const report = await runChurn(options);
  t.comment(describeChurn(report).join('\n'));
  const stops = report.steps.filter((s) => s.op === 'stop');
  const starts = report.steps.filter((s) => s.op === 'start').length - options.containers;
  // The run exercised what it claims: instances went down and up under load, and the recorder saw both states.
  t.ok(stops.length >= options.containers, `${stops.length} stops during the load`);
  t.ok(starts >= 1, `${starts} starts during the load`);
  t.ok((report.dnsperf.rcodes['NXDOMAIN'] ?? 0) > 0 && (report.dnsperf.rcodes['NOERROR'] ?? 0) > 0, 'dnsperf saw stopped and running instances');
  t.ok(report.dnsperf.sent >= options.qps * options.seconds * 0.9, `dnsperf sent ${report.dnsperf.sent} queries`);
  t.equal(report.dnsperf.lost, 0, 'dnsperf lost no query');
  t.same(Object.keys(report.dnsperf.rcodes).filter((r) => r !== 'NOERROR' && r !== 'NXDOMAIN'), [], 'no rcode but NOERROR and NXDOMAIN');
  t.ok(report.verdict.answers >= options.recorderQps * options.seconds * 0.9, `${report.verdict.answers} recorder replies judged`);
  t.same(report.verdict.violations.slice(0, 5), [], 'no reply contradicts LXD (first five shown)');
  t.same(report.failures, [], 'the run passed');
});
