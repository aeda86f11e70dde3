// Drives native/h2_session.c, built with AddressSanitizer (scripts/build-native.mjs --asan OUT h2_session), with
// what a hostile client or a careless caller could produce, for test/native/h2-session-asan.test.ts: bad
// arguments to every entry point, a closed session used again, sessions dropped unclosed for the collector, and
// thousands of fuzz cases (test/fuzz/targets/h2-native.ts: frames, mutated frames, odd answers). Run as
// `node --expose-gc --import ./test/loader/register.mjs h2-session-asan-driver.ts <addon>` with libasan preloaded:
// ASan reports any out-of-bounds access, use after free or double free on stderr and exits non-zero. Prints one
// JSON line of counts at the end, which the test checks, so a driver that stopped early cannot pass.
import { Buffer } from 'node:buffer';
import { loadH2Addon, STATE_SLOTS, type H2Addon, type H2Handle } from '../../src/servers/doh/native-h2.js';
import { h2Input, runH2Case } from '../fuzz/targets/h2-native.js';
import { caseRng } from '../fuzz/random.js';

const CASES = 3000;
const loaded = loadH2Addon(process.argv[2], {});
if (loaded instanceof Error) throw loaded;
const addon: H2Addon = loaded;
const counts = { refused: 0, cases: 0, events: 0, collected: 0 };
const loose = addon as unknown as Record<string, (...args: unknown[]) => unknown>;

const refused = (call: () => unknown) => {
  try {
    call();
  } catch {
    counts.refused++;
  }
};
// Bad arguments: each refused with an exception.
refused(() => loose['open']!());
refused(() => loose['open']!(0, new Int32Array(STATE_SLOTS)));
refused(() => loose['open']!(100, new Int32Array(1)));
refused(() => loose['open']!(100, new Float64Array(STATE_SLOTS)));
refused(() => loose['feed']!({}, Buffer.alloc(1)));
const session = addon.open(100, new Int32Array(STATE_SLOTS));
refused(() => loose['feed']!(session, 'not a buffer'));
refused(() => loose['respond']!(session, 1, 42, [], null, 0));
refused(() => loose['respond']!(session, 1, 200, ['odd'], null, 0));
refused(() => loose['respond']!(session, 1, 200, Array.from({ length: 66 }, () => 'x'), null, 0));
refused(() => loose['informational']!(session));
refused(() => loose['reset']!(session));
// A closed session: every call but close refused, close again harmless.
addon.close(session);
addon.close(session);
refused(() => addon.feed(session, Buffer.alloc(10)));
refused(() => addon.flush(session));
refused(() => addon.goaway(session));
// Sessions left open for the collector (a socket that vanished without 'close').
for (let i = 0; i < 100; i++) {
  const s: H2Handle = addon.open(10, new Int32Array(STATE_SLOTS));
  addon.feed(s, Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00'));
  counts.collected++;
}
(globalThis as { gc?: () => void }).gc?.();
for (let i = 0; i < CASES; i++) {
  const rng = caseRng(1, 'h2-native-asan', i);
  counts.events += runH2Case(addon, rng, h2Input(rng));
  counts.cases++;
}
(globalThis as { gc?: () => void }).gc?.();
console.log(JSON.stringify(counts));
