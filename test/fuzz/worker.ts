import { parentPort, workerData } from 'node:worker_threads';
import { Finding, FuzzLog, within, type CaseContext, type OpenTarget } from './harness.js';
import { caseRng } from './random.js';
import { TARGETS } from './targets/index.js';
import type { FromWorker, WorkerPlan } from './runner.js';

/**
 * The fuzz loop, in a worker thread so the runner (runner.ts) can watch it: before each case it stores the case's
 * position in shared memory, so when a case never returns (a synchronous hang) or crashes the thread, the runner
 * knows exactly which case it was and can replay it from the seed.
 */

/** Findings reported per target at most: past that the same defect is usually being found again. */
const MAX_FINDINGS_PER_TARGET = 20;
/** A target that has not opened in this long (a daemon that never syncs) is reported, and skipped. */
const OPEN_DEADLINE_MS = 120_000;
const OPEN_HEARTBEAT_MS = 1_000;
/** Cases between yields to the event loop (timers, sockets and the runner's messages need it). */
const YIELD_EVERY = 256;

const plan = workerData as WorkerPlan;
const shared = new Int32Array(plan.shared);
const post = (m: FromWorker): void => parentPort!.postMessage(m);

let input: Buffer | string | object | undefined;
const log = new FuzzLog();
const ctx: CaseContext = {
  note: (i) => (input = i),
  log,
};

/** The input as written to a findings file: hex for bytes, as-is for text and objects. */
function shown(i: typeof input): unknown {
  return Buffer.isBuffer(i) ? { hex: i.toString('hex') } : i;
}

// Loaded (its imports transpiled and run, seconds on a busy machine): the watchdog starts counting from here.
post({ kind: 'started' });

for (const [t, step] of plan.steps.entries()) {
  const target = TARGETS.find((x) => x.name === step.target)!;
  const started = performance.now();
  let opened: OpenTarget;
  // Opening (a daemon's start, its first LXD list) is not a case: its heartbeat keeps the watchdog quiet, and its
  // own deadline bounds it.
  const opening = setInterval(() => Atomics.add(shared, 2, 1), OPEN_HEARTBEAT_MS);
  try {
    opened = await within(OPEN_DEADLINE_MS, `opening ${step.target}`, target.open(ctx));
  } catch (err) {
    post({ kind: 'finding', target: step.target, index: -1, message: `could not open: ${(err as Error).stack ?? String(err)}`, input: null });
    continue;
  } finally {
    clearInterval(opening);
  }
  log.take();
  let findings = 0;
  for (let i = step.from; i < step.to; i++) {
    Atomics.store(shared, 0, t);
    Atomics.store(shared, 1, i);
    Atomics.add(shared, 2, 1);
    input = undefined;
    let failure: string | undefined;
    try {
      const r = opened.run(caseRng(plan.seed, step.target, i), i);
      if (r !== undefined) await r;
      const errors = log.take();
      if (errors.count > 0) failure = `logged ${errors.count} error line(s): ${errors.lines.join(' | ')}`;
    } catch (err) {
      failure = err instanceof Finding ? err.message : `crash: ${(err as Error).stack ?? String(err)}`;
      log.take();
    }
    if (failure !== undefined && findings++ < MAX_FINDINGS_PER_TARGET) {
      post({ kind: 'finding', target: step.target, index: i, message: failure, input: shown(input) });
    }
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await new Promise((r) => setImmediate(r));
  }
  let alive: string | undefined;
  try {
    await opened.alive?.();
  } catch (err) {
    alive = (err as Error).message;
  }
  if (alive !== undefined) post({ kind: 'finding', target: step.target, index: step.to, message: `not answering after the cases: ${alive}`, input: null });
  await opened.close();
  post({ kind: 'step-done', target: step.target, cases: step.to - step.from, ms: performance.now() - started, findings });
}
post({ kind: 'all-done' });
