import { FrameReader, frameMessage } from '../../../src/servers/dns/stream.js';
import { QueryAccumulator } from '../../../src/servers/doq/framing.js';
import { dnsCorpus } from '../corpus.js';
import { check, type Target } from '../harness.js';
import { DNS_MUTATORS, mutate } from '../mutate.js';
import type { Rng } from '../random.js';
import { dnsRig } from './dns-rig.js';

/** Queries per TCP/DoT case: pipelining several is what a resolver does, and splits land between them. */
const MAX_PIPELINED = 6;

/** `bytes` cut at random places into 1..8 chunks (a split may fall inside a length prefix). */
function chunks(rng: Rng, bytes: Buffer): Buffer[] {
  const cuts = Array.from({ length: rng.int(8) }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(bytes.subarray(from, c));
    from = c;
  }
  return out;
}

/**
 * TCP and DoT (dns/stream.ts): pipelined mutated queries, length-framed (sometimes a prefix is wrong), delivered
 * in chunks split anywhere. Every message the reader yields goes through the stream path (transfer, then the
 * handler) and is checked; with honest prefixes the reader must yield exactly the messages sent, in order.
 */
export const tcpFramingTarget: Target = {
  name: 'tcp-frames',
  weight: 6,
  covers: 'src/servers/dns/stream.ts FrameReader (TCP, DoT) + the stream path of the handler, in-process',
  async open(ctx) {
    const rig = dnsRig(ctx.log);
    const corpus = dnsCorpus();
    return {
      run(rng) {
        const sent = Array.from({ length: 1 + rng.int(MAX_PIPELINED) }, () => mutate(rng, rng.pick(corpus), corpus, DNS_MUTATORS));
        const framed = sent.map(frameMessage);
        const honest = !rng.chance(0.2);
        if (!honest) rng.pick(framed).writeUInt16BE(rng.pick([0, 1, 11, 12, 0x7fff, 0xffff, rng.int(0x10000)]), 0);
        const stream = Buffer.concat(framed);
        ctx.note(stream);
        const reader = new FrameReader();
        const got: Buffer[] = [];
        for (const c of chunks(rng, stream)) {
          reader.push(c, (msg) => {
            got.push(Buffer.from(msg));
            rig.stream(msg);
            return true;
          });
        }
        if (honest) {
          check(got.length === sent.length && got.every((m, i) => m.equals(sent[i]!)), `the reader yielded ${got.length} of ${sent.length} messages, or other bytes`);
          check(reader.pendingBytes === 0, 'bytes left over after whole frames');
        }
      },
      async close() {
        rig.answering.close();
      },
    };
  },
};

/** RFC 9250 §4.2: one query per stream, ID 0. The accumulator's verdict, computed independently. */
function expectedDoq(stream: Buffer): 'ok' | 'error' {
  if (stream.length < 2) return 'error';
  const len = stream.readUInt16BE(0);
  if (stream.length !== 2 + len || len < 12 || stream[2] !== 0 || stream[3] !== 0) return 'error';
  return 'ok';
}

/**
 * DoQ streams (doq/framing.ts): a mutated query (ID 0 as RFC 9250 wants, mostly), framed, with extra or missing
 * bytes, in chunks. The accumulator must accept exactly one whole frame of a message with ID 0, and its message
 * goes to the handler as the DoQ server sends it.
 */
export const doqFramingTarget: Target = {
  name: 'doq-frames',
  weight: 5,
  covers: 'src/servers/doq/framing.ts QueryAccumulator + the handler, in-process',
  async open(ctx) {
    const rig = dnsRig(ctx.log);
    const corpus = dnsCorpus();
    return {
      run(rng) {
        const query = mutate(rng, rng.pick(corpus), corpus, DNS_MUTATORS);
        if (query.length >= 2 && rng.chance(0.8)) query.writeUInt16BE(0, 0);
        let stream = frameMessage(query);
        if (rng.chance(0.3)) stream = rng.chance(0.5) ? stream.subarray(0, rng.int(stream.length)) : Buffer.concat([stream, rng.bytes(1 + rng.int(20))]);
        ctx.note(stream);
        const acc = new QueryAccumulator();
        let failed = false;
        for (const c of chunks(rng, stream)) failed ||= acc.push(c) !== undefined;
        const done = failed ? 'error' : acc.finish();
        const verdict = typeof done === 'string' ? 'error' : 'ok';
        check(verdict === expectedDoq(stream), `accumulator said ${typeof done === 'string' ? done : 'a query'} for a ${stream.length}-byte stream`);
        if (typeof done !== 'string') {
          check(Buffer.from(done).equals(stream.subarray(2)), 'the accumulated query differs from the bytes sent');
          rig.stream(Buffer.from(done));
        }
      },
      async close() {
        rig.answering.close();
      },
    };
  },
};
