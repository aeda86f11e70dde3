import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

// native/udp_batch.c (batched UDP for DNS, and the QUIC socket's receive batches and send queue) built once with
// AddressSanitizer and driven through every entry point by test/native/asan-driver.mjs: bad open() arguments,
// a burst of 203 datagrams into 8-slot batches (empty, larger than a slot, replies longer than a slot or negative),
// the send queue with bad ports, lengths, counts, an IPv6 destination on an IPv4 socket, a double close, a send after
// close, and the wrappers collected after close. ASan turns any out-of-bounds access, use after free or double free
// into a report on stderr and a non-zero exit.

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lexa-asan-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const addon = join(dir, 'udp_batch.node');

t.test('udp_batch.c under AddressSanitizer: no report, and every entry point reached', async (t) => {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-native.mjs'), '--asan', addon], { stdio: 'pipe' });
  t.ok(readFileSync(addon).includes('__asan_report_store'), 'the addon is instrumented');
  // The sanitizer's runtime must be the first library loaded, before Node's own: preloaded. Leak detection is off,
  // as Node itself does not free everything at exit.
  const libasan = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      ['--expose-gc', join(import.meta.dirname, 'asan-driver.mjs'), addon],
      { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LD_PRELOAD: libasan, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=0' }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
  t.notMatch(run.stderr, /AddressSanitizer/, 'no AddressSanitizer report');
  t.equal(run.code, 0, `the driver ended cleanly: ${run.stderr.slice(-2000)}`);
  const counts = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
  t.equal(counts['refused'], 10, 'bad open() and send() arguments are refused with an exception (a count of 2^32 reads as 0)');
  t.equal(counts['replies'], 81, 'the in-range replies of the burst were written');
  t.equal(counts['emptyOrOversize'], 2, 'the empty datagram and the one larger than a slot reach JavaScript with no length');
  t.equal(counts['queued'], 4, 'the send queue took exactly its 4 valid datagrams');
  t.equal(counts['received'], 84, 'and they arrived, as did every reply');
  t.equal(counts['afterClose'], 0, 'a send on a closed socket sends nothing');
});
