import { dnsCorpus } from '../corpus.js';
import type { Target } from '../harness.js';
import { DNS_MUTATORS, mutate } from '../mutate.js';
import { dnsRig } from './dns-rig.js';

/** Share of cases that are random bytes rather than a mutated seed: the decoder's very first checks. */
const RANDOM_SHARE = 0.05;
/** Random messages are at most this long: past 600 bytes random bytes test nothing new. */
const RANDOM_MAX_BYTES = 600;

/**
 * DNS messages straight into the handler every transport calls (in-process: fast enough for most of a million
 * cases), as UDP asks (the datagram limit, the EDNS size) and as the streams ask (TCP, DoT: transfers first, the
 * stream limit), through the daemon's cached handler and the uncached one.
 */
export const dnsTarget: Target = {
  name: 'dns',
  weight: 40,
  covers: 'src/dns (handler, wire, resolve, answer cache), src/replication (TSIG, AXFR/IXFR, NOTIFY) in-process',
  async open(ctx) {
    const rig = dnsRig(ctx.log);
    const corpus = dnsCorpus();
    return {
      run(rng) {
        const query = rng.chance(RANDOM_SHARE) ? rng.bytes(rng.int(RANDOM_MAX_BYTES)) : mutate(rng, rng.pick(corpus), corpus, DNS_MUTATORS);
        ctx.note(query);
        const handle = rng.chance(0.5) ? rig.answering.handle : rig.uncached;
        if (rng.chance(0.5)) rig.datagram(query, handle);
        else rig.stream(query, handle);
      },
      async close() {
        rig.answering.close();
      },
    };
  },
};
