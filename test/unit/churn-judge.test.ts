import t from 'tap';
import { judge, type Answer, type Step } from '../../src/bench/churn-judge.js';

// The churn run's definition of a correct reply (src/bench/churn-judge.ts), on scripted timelines: web launched at
// 0–100, stopped 1000–1200, started again 5000–5300; db launched at 0–100 and never stopped.

const steps: Step[] = [
  { name: 'web', op: 'start', issuedAt: 0, returnedAt: 100 },
  { name: 'db', op: 'start', issuedAt: 0, returnedAt: 100 },
  { name: 'web', op: 'stop', issuedAt: 1000, returnedAt: 1200 },
  { name: 'web', op: 'start', issuedAt: 5000, returnedAt: 5300 },
];
const known = new Map([
  ['web', new Set(['10.99.0.10', 'fd42:99::10'])],
  ['db', new Set(['10.99.0.11'])],
]);
const bounds = { stopBoundMs: 1000, startBoundMs: 2000 };
const a = (name: string, sentAt: number, rcode: string, addresses: string[] = [], type: 'A' | 'AAAA' = 'A'): Answer => ({
  name,
  type,
  sentAt,
  receivedAt: sentAt + 2,
  rcode,
  addresses,
});
const faults = (answers: Answer[]) => judge(steps, answers, known, bounds).violations.map((v) => `${v.answer.name}@${v.answer.sentAt}:${v.fault}`);

t.test('an address after the stop bound is stale; within it, or while the stop runs, it is not', async (t) => {
  t.same(faults([a('web', 1100, 'NOERROR', ['10.99.0.10']), a('web', 1250, 'NOERROR', ['10.99.0.10']), a('web', 2199, 'NOERROR', ['10.99.0.10'])]), []);
  t.same(faults([a('web', 2200, 'NOERROR', ['10.99.0.10']), a('web', 4000, 'NOERROR', ['fd42:99::10'], 'AAAA')]), ['web@2200:stale', 'web@4000:stale']);
  t.same(faults([a('web', 3000, 'NXDOMAIN')]), [], 'NXDOMAIN for a stopped instance');
});

t.test('a reply whose window meets a step is not judged on state', async (t) => {
  // Sent at 4999, received at 5001: the start was issued in between.
  t.same(faults([a('web', 4999, 'NOERROR', ['10.99.0.10'])]), []);
});

t.test('no address is correct until the start bound, missing after it', async (t) => {
  t.same(faults([a('web', 5400, 'NXDOMAIN'), a('web', 7299, 'NOERROR', [], 'AAAA'), a('db', 1500, 'NXDOMAIN')]), []);
  t.same(faults([a('web', 7300, 'NXDOMAIN'), a('db', 2100, 'NOERROR', [], 'AAAA')]), ['web@7300:missing', 'db@2100:missing']);
});

t.test("another instance's address, an error rcode, a timeout: always wrong", async (t) => {
  t.same(faults([a('db', 500, 'NOERROR', ['10.99.0.10']), a('db', 600, 'SERVFAIL'), a('db', 700, 'TIMEOUT'), a('web', 5100, 'REFUSED')]), [
    'db@500:foreign-address',
    'db@600:rcode',
    'db@700:timeout',
    'web@5100:rcode',
  ]);
});

t.test('lags: the last reply naming a stopped instance, the first A naming a started one', async (t) => {
  const v = judge(steps, [a('web', 1201, 'NOERROR', ['10.99.0.10']), a('web', 1240, 'NOERROR', ['10.99.0.10']), a('web', 5310, 'NXDOMAIN'), a('web', 5350, 'NOERROR', ['10.99.0.10'])], known, bounds);
  t.same(v.stopLagsMs, [42], 'received 1242, the stop returned at 1200');
  t.same(v.startLagsMs, [52], 'received 5352, the start returned at 5300 (starts without an A reply have none)');
});
