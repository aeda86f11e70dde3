import { join } from 'node:path';
import t from 'tap';
import { runUnderAsan } from '../helpers/asan.js';

// native/h2_session.c (DoH's HTTP/2 sessions on Node's nghttp2) built once with AddressSanitizer and driven by
// test/native/h2-session-asan-driver.ts: bad arguments to every entry point, a closed session used again, sessions
// left to the collector, and 3000 fuzz cases of frames and mutated frames (test/fuzz/targets/h2-native.ts) answered
// in odd ways. ASan turns any out-of-bounds access, use after free or double free into a report on stderr and a
// non-zero exit.

const ROOT = join(import.meta.dirname, '..', '..');

t.test('h2_session.c under AddressSanitizer: no report, and every entry point reached', async (t) => {
  const { counts } = await runUnderAsan(t, 'h2_session', join(import.meta.dirname, 'h2-session-asan-driver.ts'), ['--expose-gc', '--import', join(ROOT, 'test', 'loader', 'register.mjs')], 240_000);
  t.equal(counts['refused'], 14, 'bad arguments and calls on a closed session are refused with an exception');
  t.equal(counts['collected'], 100, 'sessions left open were made (and collected)');
  t.equal(counts['cases'], 3000, 'every fuzz case ran');
  t.ok((counts['events'] ?? 0) > 10_000, `the cases reached the requests (${counts['events']} events)`);
});
