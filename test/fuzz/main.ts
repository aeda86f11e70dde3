import { parseArgs } from 'node:util';
import { runFuzz, type StepResult } from './runner.js';
import { TARGETS } from './targets/index.js';

/**
 * `npm run fuzz`: a million bad inputs through every decoder and entry point (docs/reliability.md, "Bad input").
 *
 *   npm run fuzz [-- --count 1000000] [--seed 1] [--target dns,doh,...] [--out fuzz-findings] [--hang-ms 10000]
 *   npm run fuzz -- --seed S --target T --case N      replays one case (as a finding's file says)
 *   npm run fuzz -- --list                            the targets and what each covers
 *
 * Deterministic from the seed. Prints cases, time and cases/s per target; exits 1 when anything was found,
 * each finding written to a JSON file under --out with its input and the command that replays it.
 */
const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000000' },
    seed: { type: 'string', default: '1' },
    target: { type: 'string' },
    case: { type: 'string' },
    out: { type: 'string', default: 'fuzz-findings' },
    'hang-ms': { type: 'string', default: '10000' },
    list: { type: 'boolean', default: false },
  },
});

if (values.list) {
  for (const t of TARGETS) process.stdout.write(`${t.name.padEnd(10)} weight ${String(t.weight).padStart(3)}  ${t.covers}\n`);
  process.exit(0);
}

const whole = (s: string, what: string): number => {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${what} must be a whole number ≥ 0, not "${s}"`);
  return n;
};

const summary = await runFuzz({
  count: whole(values.count, 'count'),
  seed: whole(values.seed, 'seed'),
  ...(values.target !== undefined ? { targets: values.target.split(',') } : {}),
  ...(values.case !== undefined ? { only: whole(values.case, 'case') } : {}),
  out: values.out,
  hangMs: whole(values['hang-ms'], 'hang-ms'),
  progress: (line) => process.stdout.write(`${line}\n`),
});

const byTarget = new Map<string, StepResult>();
for (const s of summary.steps) {
  const b = byTarget.get(s.target);
  byTarget.set(s.target, b === undefined ? s : { ...s, cases: b.cases + s.cases, ms: b.ms + s.ms, findings: b.findings + s.findings });
}
const cases = [...byTarget.values()].reduce((n, s) => n + s.cases, 0);
process.stdout.write(`\n| target | cases | time (s) | cases/s |\n|---|---:|---:|---:|\n`);
for (const s of byTarget.values()) process.stdout.write(`| ${s.target} | ${s.cases} | ${(s.ms / 1000).toFixed(1)} | ${Math.round(s.cases / (s.ms / 1000))} |\n`);
process.stdout.write(`| all | ${cases} | ${(summary.ms / 1000).toFixed(1)} | ${Math.round(cases / (summary.ms / 1000))} |\n\n`);
process.stdout.write(`${summary.findings.length} finding(s)${summary.findings.length > 0 ? ` written to ${values.out}/` : ''}\n`);
if (values.case !== undefined) for (const f of summary.findings) process.stdout.write(`${JSON.stringify(f, null, 1)}\n`);
process.exit(summary.findings.length > 0 ? 1 : 0);
