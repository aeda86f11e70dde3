import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { SOAK_RATES, loadPhase } from '../../src/bench/soak-load.js';
import { addedKinds, fdKinds, phaseFailures, startSoakBed, type Sample } from '../../src/bench/soak.js';

// The short form of `npm run soak` (src/bench/soak.ts) on the real LXD and the built CLI (npm run build): CYCLES
// phases of the soak's mixed load (UDP, TCP, DoT, DoH, REST, blocking queries, SSE readers, container churn), each
// followed by a settle. The assertions are exact, not timed: once the load has ended and lexa has settled, its
// open file descriptors, active handles and active timers (from its own /metrics) are the same after every
// cycle, so none grows with the number of cycles; and against the counts before the first load, the only
// difference allowed is one descriptor the test can name: the inotify instance of the lease-file watch
// (src/streams/lxd/lease-watch.ts), opened at the first instance start lexa sees (before the baseline or during
// cycle 1) and kept for its life (one for every bridge: libuv shares one inotify instance per loop).

const CYCLES = 3;
const PHASE_SECONDS = 6;
/** After a settle, the scrape's own connection may take a moment to close on lexa's side. */
const SCRAPE_CLOSE_MS = 300;

t.test('after each cycle of load and churn, fds, handles and timers return to the same counts', async (t) => {
  const bed = await startSoakBed(2, 'load-soakci-', 0);
  t.teardown(() => bed.close());
  const counts = (s: Sample) => ({ fds: s.fds, handles: s.handles, timers: s.timers });
  const settled = async () => {
    const s = await bed.settle();
    await sleep(SCRAPE_CLOSE_MS);
    return { counts: counts(s), kinds: fdKinds(bed.lexa.pid), rss: s.rss };
  };
  const before = await settled();
  t.comment(`before the load: ${JSON.stringify(before.counts)}`);
  const after: Awaited<ReturnType<typeof settled>>[] = [];
  for (let c = 1; c <= CYCLES; c++) {
    const phase = await loadPhase(bed.ports, bed.names, bed.queryFile, PHASE_SECONDS, SOAK_RATES, 1);
    t.same(phaseFailures(phase), [], `cycle ${c}: every client was answered`);
    t.ok(phase.udp.completed > 0 && phase.tcp.completed > 0 && phase.dot.completed > 0 && phase.http.ok > 0 && phase.churned > 0, `cycle ${c}: every transport carried load, containers churned`);
    after.push(await settled());
    t.comment(`cycle ${c}: ${JSON.stringify(after.at(-1)!.counts)}, rss ${(after.at(-1)!.rss / 2 ** 20).toFixed(1)} MiB`);
  }
  for (let c = 1; c < CYCLES; c++) {
    t.same(after[c]!.counts, after[0]!.counts, `cycle ${c + 1} ends with the counts of cycle 1`);
    t.same(after[c]!.kinds, after[0]!.kinds, `cycle ${c + 1} ends with the descriptors of cycle 1`);
  }
  // The lease-file watch opens when lexa first polls a starting instance's lease: during cycle 1, or already
  // before the baseline when lexa started while a container's addresses were still arriving.
  const added = addedKinds(before.kinds, after[0]!.kinds);
  t.same(added.filter((k) => k !== 'anon_inode:inotify'), [], `cycle 1 kept no descriptor but the lease-file watch's (${JSON.stringify(added)})`);
  t.ok(added.length <= 1, 'and at most that one');
  t.same({ ...after[0]!.counts, fds: after[0]!.counts.fds - added.length }, before.counts, 'cycle 1 ends with the counts before the load, but for it');
  t.same(addedKinds(after[0]!.kinds, before.kinds), [], 'and none closed');
});
