/**
 * npm run exhaust: every exhaustion attack at full size against a real lexa on the real LXD (scripts/testbed.sh),
 * one after another, printing per attack what the attacker held, lexa's peak RSS and the good client's p99.
 *
 *   node dist/bench/exhaust.js [--probes 100] [--timeout-ms 5000] [--only dns/tcp,doq,...] [--scale 1]
 *       --scale multiplies every attack's size (0.1 is the size test/reliability/exhaust.test.ts runs).
 *   Exits 1 when the good client missed an answer or a peak passed its bound.
 */
import { parseArgs } from 'node:util';
import { describe, FULL, runExhaust, type Sizes } from './exhaust/run.js';

const { values } = parseArgs({
  options: {
    probes: { type: 'string', default: '100' },
    'timeout-ms': { type: 'string', default: '5000' },
    only: { type: 'string' },
    scale: { type: 'string', default: '1' },
    socket: { type: 'string', default: process.env['LEXA_LXD_SOCKET'] ?? '/var/lib/lxd/unix.socket' },
  },
});
// Ctrl-C or a kill: end through process.exit, so that the lexa this started is stopped too (run.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
const scale = Number(values.scale);
const sizes = Object.fromEntries(Object.entries(FULL).map(([k, v]) => [k, Math.max(1, Math.round(v * scale))])) as unknown as Sizes;
const results = await runExhaust({
  sizes,
  probes: Number(values.probes),
  probeTimeoutMs: Number(values['timeout-ms']),
  lxdSocket: values.socket,
  ...(values.only === undefined ? {} : { only: values.only.split(',') }),
  note: (line) => process.stderr.write(`${line}\n`),
});
process.stdout.write('\nattack | listener | opened | held (allowed) | peak RSS (baseline, bound) | good client answered | p99\n');
for (const r of results) {
  const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
  process.stdout.write(
    `${r.attack.name} | ${r.attack.listener} | ${r.outcome.attempts} | ${r.held} (${r.allowed}) | ${mb(r.peakRss)} MB (${mb(r.baselineRss)}, ${mb(r.rssBound)}) | ` +
      `${r.latencies.length}/${r.latencies.length + r.failures.length} | ${r.p99.toFixed(0)} ms\n`,
  );
}
const bad = results.filter((r) => r.failures.length > 0 || r.peakRss > r.rssBound);
for (const r of bad) process.stderr.write(`FAILED: ${describe(r)}\n`);
process.exitCode = bad.length > 0 ? 1 : 0;
