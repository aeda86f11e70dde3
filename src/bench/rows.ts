import { appendFileSync } from 'node:fs';

/**
 * One row of the table `npm run bench` prints at its end (scripts/bench.sh): a figure for lexa, the same figure
 * for its peer measured in the same run, and their ratio. A benchmark run by bench.sh appends its rows to the file
 * $BENCH_ROWS names, one `id|figure|lexa|peer|ratio` line each; run by hand (no BENCH_ROWS), it records nothing.
 * `id` is the row's place in bench.sh's table; a row whose figure has no peer gives "" for peer and ratio.
 */
export function recordRow(id: string, figure: string, lexa: string, peer: string, ratio: number | undefined): void {
  const file = process.env['BENCH_ROWS'];
  if (!file) return;
  const cells = [id, figure, lexa, peer, ratio === undefined || !Number.isFinite(ratio) ? '' : `${ratio.toFixed(2)}×`];
  appendFileSync(file, `${cells.map((c) => c.replaceAll('|', '/').replaceAll('\n', ' ')).join('|')}\n`);
}
