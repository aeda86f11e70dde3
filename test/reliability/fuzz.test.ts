import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runFuzz } from '../fuzz/runner.js';
import { TARGETS } from '../fuzz/targets/index.js';

// The short form of `npm run fuzz` (docs/reliability.md, "Bad input"): 50,000 cases shared among every target by
// weight (~17 s of CPU; 37-75 s on the shared 2-core machine), through the same runner, watchdog and oracles as
// the million. Any finding fails the test, with the command that replays it. The seed is fixed so CI is repeatable; LEXA_FUZZ_SEED picks another.
// Needs dist (the check-config share), the real LXD and the Go DoQ client (the sockets target), as .ci/run has.
const COUNT = 50_000;
const SEED = Number(process.env['LEXA_FUZZ_SEED'] ?? 1);
/** A case still running after this long is a hang (the slowest cases, a DoQ handshake or a daemon's sync, take ~1 s). */
const HANG_MS = 15_000;

t.test(`${COUNT} fuzz cases across every target find nothing`, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'fz-findings-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const summary = await runFuzz({ count: COUNT, seed: SEED, out, hangMs: HANG_MS });
  const ran = new Map<string, number>();
  for (const s of summary.steps) ran.set(s.target, (ran.get(s.target) ?? 0) + s.cases);
  t.same([...ran.keys()].sort(), TARGETS.map((x) => x.name).sort(), 'every target ran');
  t.equal([...ran.values()].reduce((a, b) => a + b, 0), COUNT, `${COUNT} cases in ${(summary.ms / 1000).toFixed(1)} s`);
  for (const f of summary.findings) t.fail(`${f.target} case ${f.index}: ${f.message.split('\n')[0]} (replay: npm run fuzz -- --seed ${SEED} --target ${f.target} --case ${f.index})`);
  t.equal(summary.findings.length, 0, 'no finding');
});
