import t from 'tap';
import { ATTACKERS, describe, runExhaust, SHORT } from '../../src/bench/exhaust/run.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';

// EXHAUSTION with the fair-sharing limits in place (docs/security.md), against a real `lexa server` process (the
// built dist/cli.js) on the real LXD, at the short size (npm run exhaust runs the full one): each attack from eight
// loopback addresses (127.0.0.10–17) while a real client at 127.0.0.2 (dig, kdig, curl; a hello on the agent
// endpoint) keeps asking the attacked listener. For each: every question answered within the client's timeout,
// lexa's peak RSS within the bound its limits give, and the attacker held no more than the limits allow.

/** The good client's own timeout per question: a stub resolver's (resolv.conf's default is 5 s), doubled for this busy machine. */
const CLIENT_TIMEOUT_MS = 10_000;
const PROBES = 20;
/**
 * "Held" is lexa's open descriptors above those before the attack: lexa may open a few meanwhile for its own
 * reasons (a request to LXD, a watched lease file); seen once: one.
 */
const OWN_DESCRIPTORS = 4;

t.test('every listener under exhaustion: bounded memory, the attacker limited, a client elsewhere answered', async (t) => {
  const results = await runExhaust({ sizes: SHORT, probes: PROBES, probeTimeoutMs: CLIENT_TIMEOUT_MS, lxdSocket: LXD_SOCKET, note: (l) => t.comment(l) });
  t.equal(results.length, 8, 'every attack ran');
  for (const r of results) {
    const what = `${r.attack.name} [${r.attack.listener}]`;
    t.same(r.failures, [], `${what}: the good client was answered ${PROBES}/${PROBES} (p99 ${r.p99.toFixed(0)} ms)`);
    t.ok(r.peakRss <= r.rssBound, `${what}: peak RSS ${(r.peakRss / 2 ** 20).toFixed(1)} MB within ${(r.rssBound / 2 ** 20).toFixed(1)} MB`);
    t.ok(r.held <= r.allowed + OWN_DESCRIPTORS, `${what}: the attacker held ${r.held}, the limits allow ${ATTACKERS.length} addresses ${r.allowed}`);
    if (r.size > r.allowed) t.ok(r.outcome.attempts > r.held, `${what}: connections past the limit were refused (${r.outcome.attempts} opened)`);
    t.comment(describe(r));
  }
  const oversized = results.find((r) => r.attack.name.startsWith('oversized'))!;
  t.ok(Object.keys(oversized.outcome.answers).length === 1 && (oversized.outcome.answers['413'] ?? 0) > 0, `every oversized DoH body answered 413 (${JSON.stringify(oversized.outcome.answers)})`);
});
