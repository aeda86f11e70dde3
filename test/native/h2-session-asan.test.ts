import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

// native/h2_session.c (DoH's HTTP/2 sessions on Node's nghttp2) built once with AddressSanitizer and driven by
// test/native/h2-session-asan-driver.ts: bad arguments to every entry point, a closed session used again, sessions
// left to the collector, and 3000 fuzz cases of frames and mutated frames (test/fuzz/targets/h2-native.ts) answered
// in odd ways. ASan turns any out-of-bounds access, use after free or double free into a report on stderr and a
// non-zero exit.

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lexa-asan-h2-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const addon = join(dir, 'h2_session.node');

t.test('h2_session.c under AddressSanitizer: no report, and every entry point reached', async (t) => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--asan', addon, 'h2_session'], { stdio: 'pipe' });
  t.ok(readFileSync(addon).includes('__asan_report_store'), 'the addon is instrumented');
  // The sanitizer's runtime must be the first library loaded, before Node's own: preloaded. Leak detection is off,
  // as Node itself does not free everything at exit.
  const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', '--import', join(ROOT, 'test', 'loader', 'register.mjs'), join(import.meta.dirname, 'h2-session-asan-driver.ts'), addon],
      { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' }, timeout: 240_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.notMatch(run.stderr, /AddressSanitizer/, 'no AddressSanitizer report');
  t.equal(run.code, 0, `the driver ended cleanly: ${run.stderr.slice(-2000)}`);
  const counts = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
  t.equal(counts['refused'], 14, 'bad arguments and calls on a closed session are refused with an exception');
  t.equal(counts['collected'], 100, 'sessions left open were made (and collected)');
  t.equal(counts['cases'], 3000, 'every fuzz case ran');
  t.ok((counts['events'] ?? 0) > 10_000, `the cases reached the requests (${counts['events']} events)`);
});
