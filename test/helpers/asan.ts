import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';

// The AddressSanitizer tier of test/native: one of lexa's addons built instrumented (scripts/build-native.mjs
// --asan) and driven by a driver program in a node of its own, where ASan turns any out-of-bounds access, use after
// free or double free into a report on stderr and a non-zero exit.

const ROOT = join(import.meta.dirname, '..', '..');

export interface AsanRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The driver's last stdout line, parsed: its counts of what it reached. */
  readonly counts: Record<string, number>;
}

/**
 * Builds native/<addon>.c with AddressSanitizer into a temporary directory (checked to be instrumented), then runs
 * `node ...nodeArgs <driver> <built addon>` with the sanitizer's runtime preloaded (it must be the first library
 * loaded, before Node's own) and leak detection off (Node itself does not free everything at exit). Asserts that
 * no report was made and that the driver ended cleanly; resolves with its output for the caller's counts.
 */
export async function runUnderAsan(t: Test, addon: string, driver: string, nodeArgs: readonly string[], timeoutMs: number): Promise<AsanRun> {
  const dir = mkdtempSync(join(tmpdir(), `lexa-asan-${addon}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const built = join(dir, `${addon}.node`);
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--asan', built, addon], { stdio: 'pipe' });
  t.ok(readFileSync(built).includes('__asan_report_store'), 'the addon is instrumented');
  const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
  const run = await new Promise<Omit<AsanRun, 'counts'>>((resolve) => {
    execFile(
      process.execPath,
      [...nodeArgs, driver, built],
      { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' }, timeout: timeoutMs },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.notMatch(run.stderr, /AddressSanitizer/, 'no AddressSanitizer report');
  t.equal(run.code, 0, `the driver ended cleanly: ${run.stderr.slice(-2000)}`);
  const counts = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
  return { ...run, counts };
}
