import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { TARGETS } from './targets/index.js';

/**
 * Runs a fuzz plan in a worker thread (worker.ts) under a watchdog: a case that has not returned after `hangMs`
 * (a synchronous loop, a promise that never settles past its own deadline) is a hang; the worker is ended and a
 * new one goes on from the next case. A crash of the worker (an uncaught exception or an unhandled rejection in
 * the code under test) is a finding the same way. Every finding is written to `out` as JSON with the command that
 * replays it.
 */

export interface FuzzOptions {
  /** Cases in all, shared among the targets by weight (at least one each). */
  readonly count: number;
  readonly seed: number;
  /** Target names; default all. */
  readonly targets?: readonly string[];
  /** Run only this case of the (single) target: a replay. */
  readonly only?: number;
  /** Where findings are written. */
  readonly out: string;
  /** A case still running after this long is a hang. */
  readonly hangMs: number;
  /** Progress lines (one per target); default none. */
  readonly progress?: (line: string) => void;
}

export interface StepResult {
  readonly target: string;
  readonly cases: number;
  readonly ms: number;
  readonly findings: number;
}

export interface FuzzFinding {
  readonly target: string;
  readonly index: number;
  readonly message: string;
  readonly input: unknown;
  readonly file: string;
}

export interface FuzzSummary {
  readonly steps: readonly StepResult[];
  readonly findings: readonly FuzzFinding[];
  readonly ms: number;
}

export interface WorkerStep {
  readonly target: string;
  readonly from: number;
  readonly to: number;
}

export interface WorkerPlan {
  readonly seed: number;
  readonly steps: readonly WorkerStep[];
  /** Int32 × 3: the step running, its case index, and cases started in all (the watchdog's heartbeat). */
  readonly shared: SharedArrayBuffer;
}

export type FromWorker =
  | { readonly kind: 'finding'; readonly target: string; readonly index: number; readonly message: string; readonly input: unknown }
  | ({ readonly kind: 'step-done' } & StepResult)
  | { readonly kind: 'started' }
  | { readonly kind: 'all-done' };

/** How often the watchdog looks at the heartbeat. */
const WATCH_INTERVAL_MS = 250;
/** A worker that has not loaded its modules by then will not: the run ends with that as its finding. */
const START_DEADLINE_MS = 180_000;

/** Splits `count` among the targets by weight, exactly (the rounding's remainder to the first), each at least one case. */
export function planSteps(count: number, names: readonly string[]): WorkerStep[] {
  const chosen = TARGETS.filter((t) => names.includes(t.name));
  const total = chosen.reduce((s, t) => s + t.weight, 0);
  const shares = chosen.map((t) => Math.max(1, Math.floor((count * t.weight) / total)));
  shares[0] = Math.max(1, shares[0]! + count - shares.reduce((a, b) => a + b, 0));
  return chosen.map((t, i) => ({ target: t.name, from: 0, to: shares[i]! }));
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const names = opts.targets ?? TARGETS.map((t) => t.name);
  for (const n of names) if (!TARGETS.some((t) => t.name === n)) throw new Error(`no fuzz target "${n}" (targets: ${TARGETS.map((t) => t.name).join(', ')})`);
  let steps: WorkerStep[] =
    opts.only !== undefined ? names.map((target) => ({ target, from: opts.only!, to: opts.only! + 1 })) : planSteps(opts.count, names);
  const results: StepResult[] = [];
  const findings: FuzzFinding[] = [];
  const started = performance.now();
  mkdirSync(opts.out, { recursive: true });

  const record = (target: string, index: number, message: string, input: unknown): void => {
    const file = join(opts.out, `${target}-seed${opts.seed}-case${index}.json`);
    const replay = `npm run fuzz -- --seed ${opts.seed} --target ${target} --case ${index}`;
    writeFileSync(file, `${JSON.stringify({ target, seed: opts.seed, index, message, replay, input }, null, 1)}\n`);
    findings.push({ target, index, message, input, file });
    opts.progress?.(`FINDING ${target} case ${index}: ${message.split('\n')[0]} (${file})`);
  };

  while (steps.length > 0) {
    const shared = new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT);
    const view = new Int32Array(shared);
    const worker = new Worker(new URL('./worker.ts', import.meta.url), { workerData: { seed: opts.seed, steps, shared } satisfies WorkerPlan });
    const current = steps;
    const stopped = await new Promise<{ step: number; index: number } | undefined>((resolve) => {
      let beat = -1;
      let still = 0;
      let started = false;
      const begun = performance.now();
      const watch = setInterval(() => {
        if (!started) {
          if (performance.now() - begun < START_DEADLINE_MS) return;
          record(current[0]!.target, -1, `the fuzz worker did not start within ${START_DEADLINE_MS} ms`, null);
          clearInterval(watch);
          void worker.terminate().then(() => resolve(undefined));
          return;
        }
        const now = Atomics.load(view, 2);
        still = now === beat ? still + WATCH_INTERVAL_MS : 0;
        beat = now;
        if (still < opts.hangMs) return;
        const at = { step: Atomics.load(view, 0), index: Atomics.load(view, 1) };
        record(current[at.step]!.target, at.index, `hang: the case did not return within ${opts.hangMs} ms`, null);
        clearInterval(watch);
        void worker.terminate().then(() => resolve(at));
      }, WATCH_INTERVAL_MS);
      worker.on('message', (m: FromWorker) => {
        if (m.kind === 'started') started = true;
        else if (m.kind === 'finding') record(m.target, m.index, m.message, m.input);
        else if (m.kind === 'step-done') {
          results.push(m);
          opts.progress?.(`${m.target}: ${m.cases} cases in ${(m.ms / 1000).toFixed(1)} s (${Math.round(m.cases / (m.ms / 1000))}/s), ${m.findings} finding(s)`);
        } else {
          clearInterval(watch);
          resolve(undefined);
        }
      });
      worker.on('error', (err) => {
        clearInterval(watch);
        if (!started) {
          // It failed while loading: every new worker would too.
          record(current[0]!.target, -1, `the fuzz worker failed to start: ${err.stack ?? err.message}`, null);
          return resolve(undefined);
        }
        const at = { step: Atomics.load(view, 0), index: Atomics.load(view, 1) };
        record(current[at.step]!.target, at.index, `crash: ${err.stack ?? err.message}`, null);
        resolve(at);
      });
    });
    await worker.terminate();
    // After a hang or a crash: go on from the case after it (the steps before it are done).
    steps = stopped === undefined ? [] : [{ ...current[stopped.step]!, from: stopped.index + 1 }, ...current.slice(stopped.step + 1)].filter((s) => s.from < s.to);
  }
  return { steps: results, findings, ms: performance.now() - started };
}
