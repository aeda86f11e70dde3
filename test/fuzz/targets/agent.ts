import { AgentFrameReader, decodeAgentMessage, decodeServerMessage, encodeFrame, MAX_MESSAGE_BYTES, PROTOCOL_VERSION, type AgentMessage } from '../../../src/agent/protocol.js';
import { check, type Target } from '../harness.js';
import { BYTE_MUTATORS, mutate, mutateText } from '../mutate.js';
import { mutateJson } from '../mutate-json.js';

/** Reasons a decoder gives are logged and sent to the peer: they must stay short whatever the input. */
const MAX_REASON_CHARS = 600;

const service = (name: string, port: number) => ({ name, port, proto: 'tcp', tags: ['app'], interface: null, priority: 1, weight: 1, health: 'passing' });
/** Seeds: each message kind of both directions, as the agent and the endpoint send them. */
const SEEDS: readonly unknown[] = [
  { type: 'hello', version: PROTOCOL_VERSION, credential: 'c'.repeat(43) },
  { type: 'hello', version: PROTOCOL_VERSION, credential: 'c'.repeat(43), token: 'shared-token' },
  { type: 'state', seq: 0, services: [] },
  { type: 'state', seq: 7, services: [service('http', 80), { ...service('dns', 53), proto: 'udp', interface: 'eth1', health: 'critical' }] },
  { type: 'ping' },
  { type: 'welcome', instance: 'web-1', graceMs: 60000 },
  { type: 'ack', seq: 7, refused: [{ name: 'x', reason: 'not allowed' }] },
  { type: 'pong' },
  { type: 'error', reason: 'bad credential' },
];
const TEXTS = SEEDS.map((s) => JSON.stringify(s));

/**
 * The agent protocol (agent/protocol.ts, shared by the endpoint and the agent): byte streams of length-prefixed
 * messages, mutated as structures (wrong types, huge lists, unknown keys), as text, and as bytes (UTF-8 broken,
 * prefixes wrong), split into chunks. Oracle: the reader holds at most one message, each body decodes to a message
 * or a short reason and never throws, and a message decoded as valid survives encode → decode unchanged.
 */
export const agentTarget: Target = {
  name: 'agent',
  weight: 10,
  covers: 'src/agent/protocol.ts: AgentFrameReader, decodeAgentMessage, decodeServerMessage, encodeFrame round trip',
  async open(ctx) {
    return {
      run(rng) {
        const bodies: Buffer[] = [];
        for (let n = 1 + rng.int(3); n > 0; n--) {
          const seed = rng.pick(SEEDS);
          const how = rng.int(3);
          const body =
            how === 0
              ? Buffer.from(JSON.stringify(mutateJson(rng, seed)) ?? 'undefined')
              : how === 1
                ? Buffer.from(mutateText(rng, JSON.stringify(seed), TEXTS))
                : mutate(rng, Buffer.from(JSON.stringify(seed)), TEXTS.map((t) => Buffer.from(t)), BYTE_MUTATORS);
          bodies.push(body);
        }
        const framed = bodies.map((b) => {
          const head = Buffer.alloc(4);
          head.writeUInt32BE(rng.chance(0.9) ? b.length : rng.pick([0, b.length + 1, MAX_MESSAGE_BYTES + 1, 0xffffffff]), 0);
          return Buffer.concat([head, b]);
        });
        const stream = Buffer.concat(framed);
        ctx.note(stream);
        const reader = new AgentFrameReader();
        for (let off = 0; off < stream.length; ) {
          const step = 1 + rng.int(stream.length);
          const { bodies: got, error } = reader.push(stream.subarray(off, off + step));
          off += step;
          check(reader.pending <= 4 + MAX_MESSAGE_BYTES + step, `the reader holds ${reader.pending} bytes`);
          for (const body of got) {
            for (const decode of [decodeAgentMessage, decodeServerMessage]) {
              const d = decode(body);
              if (!d.ok) {
                check(typeof d.reason === 'string' && d.reason.length <= MAX_REASON_CHARS, `a reason of ${d.reason.length} characters`);
                continue;
              }
              if (decode === decodeAgentMessage) {
                const again = decodeAgentMessage(encodeFrame(d.message as AgentMessage).subarray(4));
                check(again.ok && JSON.stringify(again.message) === JSON.stringify(d.message), 'a valid message changed through encode → decode');
              }
            }
          }
          if (error !== undefined) break;
        }
      },
      async close() {},
    };
  },
};
