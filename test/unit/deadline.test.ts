import { mkdtempSync, rmSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { deadline } from '../../src/time/deadline.js';
import { realClock, sleep } from '../../src/time/clock.js';
import { onAbort } from '../../src/time/on-abort.js';
import { createLxdClient } from '../../src/streams/lxd/lxd-client.js';

// The deadline every LXD request carries (src/time/deadline.ts), and the client's use of it: requests that hang
// off one long-lived connection signal must leave nothing registered with it once they end. The same for the
// sleeps of the reflector's settle loops (src/time/clock.ts), which share the one listener (src/time/on-abort.ts).

/** Signals Node keeps registered with `signal` for AbortSignal.any (an internal set; absent on Node versions without it). */
function dependants(signal: AbortSignal): number {
  const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const set = key === undefined ? undefined : (signal as unknown as Record<symbol, { size?: number } | undefined>)[key];
  return set?.size ?? 0;
}

t.test('aborts with the parent, and with a timeout error after ms', async (t) => {
  const parent = new AbortController();
  const a = deadline(parent.signal, 60_000);
  parent.abort(new Error('connection ended'));
  t.ok(a.signal.aborted, 'the parent aborting aborts it');
  t.equal((a.signal.reason as Error).message, 'connection ended', "with the parent's reason");
  a.done();
  const already = deadline(parent.signal, 60_000);
  t.ok(already.signal.aborted, 'an already aborted parent: aborted at once');
  already.done();
  const b = deadline(undefined, 10);
  // The deadline's timer does not hold the process open (as AbortSignal.timeout's does not): this one does meanwhile.
  const keepAlive = setTimeout(() => undefined, 10_000);
  await new Promise((resolve) => b.signal.addEventListener('abort', resolve, { once: true }));
  clearTimeout(keepAlive);
  t.equal((b.signal.reason as DOMException).name, 'TimeoutError', 'the timeout aborts it with a TimeoutError');
  b.done();
});

t.test('a parent carries one listener however many requests are in flight, and aborts them all', async (t) => {
  const parent = new AbortController();
  for (let i = 0; i < 1000; i++) deadline(parent.signal, 60_000).done();
  t.ok(getEventListeners(parent.signal, 'abort').length <= 1, 'at most one abort listener after 1,000 requests');
  // A burst of re-reads: 50 at once (Node warns of a possible leak past 10 listeners on one signal).
  const burst = Array.from({ length: 50 }, () => deadline(parent.signal, 60_000));
  t.equal(getEventListeners(parent.signal, 'abort').length, 1, 'one listener with 50 in flight');
  parent.abort(new Error('gone'));
  t.ok(burst.every((d) => d.signal.aborted), 'the parent aborting aborts every request in flight');
  for (const d of burst) d.done();
});

t.test('sleepers share one listener on their signal, and all wake when it aborts', async (t) => {
  const parent = new AbortController();
  // A batch of instances starting: one settle loop each, all sleeping on the connection signal at once.
  const sleeping = Array.from({ length: 50 }, () => sleep(realClock, 60_000, parent.signal));
  t.equal(getEventListeners(parent.signal, 'abort').length, 1, 'one listener with 50 sleepers (a listener each warned past 10)');
  const started = performance.now();
  parent.abort();
  await Promise.all(sleeping);
  t.ok(performance.now() - started < 30_000, 'every sleeper woke on the abort, not at its timer');
  await sleep(realClock, 1, new AbortController().signal);
  t.pass('a sleep whose timer fires resolves');
});

t.test('onAbort: off() before the abort unregisters; a parent already aborted calls at once', async (t) => {
  const parent = new AbortController();
  const calls: string[] = [];
  const offA = onAbort(parent.signal, () => calls.push('a'));
  onAbort(parent.signal, () => calls.push('b'));
  const fn = () => calls.push('c');
  const offC1 = onAbort(parent.signal, fn);
  onAbort(parent.signal, fn);
  offA();
  offC1();
  parent.abort();
  t.same(calls.sort(), ['b', 'c'], 'a and one registration of c unregistered; b and the other c called once each');
  onAbort(parent.signal, () => calls.push('late'));
  t.equal(calls.at(-1), 'late', 'a parent already aborted: called at once');
});

t.test('1,000 LXD requests on one connection signal leave nothing registered with it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-deadline-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, 'lxd.sock');
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ type: 'sync', status_code: 200, metadata: { ok: true } }));
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const client = createLxdClient({ kind: 'unix', socket });
  t.teardown(async () => {
    await client.close();
    await new Promise((resolve) => server.close(resolve));
  });
  const connection = new AbortController();
  let answered = 0;
  for (let i = 0; i < 1000; i++) if ((await client.get<{ ok?: boolean }>('/1.0', connection.signal)).ok === true) answered++;
  t.equal(answered, 1000, 'every request answered');
  t.ok(getEventListeners(connection.signal, 'abort').length <= 1, 'at most one abort listener');
  t.equal(dependants(connection.signal), 0, 'no derived signal kept by the connection signal (AbortSignal.any kept 1,000)');
});
