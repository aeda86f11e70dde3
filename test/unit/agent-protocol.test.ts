import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { Agent, type AgentConfig } from '../../src/agent/index.js';
import { memoryLogger } from '../../src/log/index.js';
import { decodeAgentMessage, decodeServerMessage, encodeFrame, AgentFrameReader, MAX_MESSAGE_BYTES, serviceOnWire, type AgentMessage, type ServerMessage } from '../../src/agent/protocol.js';
import { AGENT_LIMITS, startAgentServer } from '../../src/servers/agent/index.js';
import { AgentIngest } from '../../src/streams/agents/ingest.js';
import { SnapshotStore, tokenDigest, type AgentService } from '../../src/streams/index.js';
import { generateSelfSigned } from '../../src/tls/index.js';
import { fakeDevlxd } from '../helpers/fake-devlxd.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { iface, instance, seeded, snapshotOf } from '../helpers/model.js';

// The agent protocol's decoder, fuzzed (seeded, replayable), and the endpoint on loopback with real TLS sockets:
// bad peers are closed one by one while a good agent's state stays. The snapshot here is hand-built (no LXD): an
// instance "holds" 127.0.0.1 so loopback connections can be bound; test/integration/agent.test.ts does it for real.
const svc = (name: string, over: Partial<AgentService> = {}): AgentService => ({
  name, port: 443, proto: 'tcp', tags: ['app'], interface: null, priority: 1, weight: 1, source: 'agent', health: 'passing', ...over,
});
const body = (frame: Buffer) => frame.subarray(4);
const TOKEN = 'a-shared-secret-of-enough-length';
/** The `user.lexa.agent.token` of the instance "local" (which holds 127.0.0.1 here). */
const CREDENTIAL = 'the-instance-credential-of-local';

t.test('round trip: encode → decode → encode gives the same bytes', async (t) => {
  const messages: AgentMessage[] = [
    { type: 'hello', version: 2, credential: CREDENTIAL, token: TOKEN },
    { type: 'hello', version: 2, credential: CREDENTIAL },
    { type: 'state', seq: 7, services: [svc('https'), svc('dns', { proto: 'udp', tags: [], interface: 'eth1', health: 'critical' })] },
    { type: 'ping' },
  ];
  for (const m of messages) {
    const frame = encodeFrame(m);
    t.equal(frame.readUInt32BE(0), frame.length - 4, 'length prefix');
    const d = decodeAgentMessage(body(frame));
    t.ok(d.ok, m.type);
    if (!d.ok) continue;
    t.same(encodeFrame(d.message), frame, `${m.type} re-encodes to the same bytes`);
  }
});

t.test('decoder refuses what is wrong, with a reason', async (t) => {
  const bad: [unknown, RegExp][] = [
    [{ type: 'hello', version: 1, token: TOKEN }, /unsupported version 1 \(this server speaks 2: upgrade the agent\)/],
    [{ type: 'hello', version: 2 }, /credential/],
    [{ type: 'hello', version: 2, credential: CREDENTIAL, token: '' }, /token/],
    [{ type: 'hello', version: 2, credential: CREDENTIAL, instance: 'default/other' }, /unknown key/],
    [{ type: 'state', seq: -1, services: [] }, /seq/],
    [{ type: 'state', seq: 1, services: [serviceOnWire(svc('Bad_Name'))] }, /name/],
    [{ type: 'state', seq: 1, services: [serviceOnWire(svc('x', { port: 0 }))] }, /port/],
    [{ type: 'state', seq: 1, services: [serviceOnWire(svc('x', { weight: 300 }))] }, /weight/],
    [{ type: 'state', seq: 1, services: [serviceOnWire(svc('x')), serviceOnWire(svc('x'))] }, /twice/],
    [{ type: 'state', seq: 1, services: [{ ...serviceOnWire(svc('x')), source: 'config' }] }, /unknown key/],
    [{ type: 'state', seq: 1, services: Array.from({ length: 257 }, (_, i) => serviceOnWire(svc(`s${i}`))) }, /at most/],
    [{ type: 'nope' }, /unknown message type/],
    [[1, 2], /not a JSON object/],
  ];
  for (const [value, why] of bad) {
    const d = decodeAgentMessage(Buffer.from(JSON.stringify(value)));
    t.notOk(d.ok, JSON.stringify(value).slice(0, 60));
    if (!d.ok) t.match(d.reason, why);
  }
  t.notOk(decodeAgentMessage(Buffer.from([0xff, 0xfe, 0x7b])).ok, 'not UTF-8');
});

t.test('the agent\'s decoder never throws on text fields that are objects without a string form', async (t) => {
  // Found by `npm run fuzz` (agent target, seed 1): String() of a JSON object whose "toString" is not a function
  // threw inside decodeServerMessage, on the agent's socket 'data' handler: any server answer like this ended the
  // agent process. Each such field is now written as its JSON.
  const odd = { toString: 1 };
  const cases: [unknown, (m: ServerMessage) => boolean][] = [
    [{ type: 'error', reason: odd }, (m) => m.type === 'error' && m.reason === '{"toString":1}'],
    [{ type: 'ack', seq: 1, refused: [{ name: odd, reason: { valueOf: [] } }] }, (m) => m.type === 'ack' && m.refused?.[0]?.name === '{"toString":1}'],
  ];
  for (const [value, expect] of cases) {
    let d: ReturnType<typeof decodeServerMessage> | undefined;
    t.doesNotThrow(() => (d = decodeServerMessage(Buffer.from(JSON.stringify(value)))), JSON.stringify(value));
    t.ok(d?.ok && expect(d.message), 'decoded, the field as its JSON');
  }
});

t.test('fuzz: 20000 random and mutated messages never throw; every accepted one round-trips', async (t) => {
  const random = seeded(8);
  const valid = [
    encodeFrame({ type: 'hello', version: 2, credential: CREDENTIAL, token: TOKEN }),
    encodeFrame({ type: 'state', seq: 3, services: [svc('https')] }),
    encodeFrame({ type: 'ping' }),
  ].map(body);
  let accepted = 0;
  for (let i = 0; i < 20_000; i++) {
    let b: Buffer;
    if (i % 3 === 0) {
      b = Buffer.alloc(Math.floor(random() * 300));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
    } else {
      b = Buffer.from(valid[i % valid.length]!);
      for (let k = 0; k < 1 + Math.floor(random() * 3); k++) b[Math.floor(random() * b.length)] = 32 + Math.floor(random() * 95);
    }
    const d = decodeAgentMessage(b); // must not throw
    if (!d.ok) continue;
    accepted++;
    const again = decodeAgentMessage(body(encodeFrame(d.message)));
    if (!again.ok || JSON.stringify(again.message) !== JSON.stringify(d.message)) t.fail(`case ${i} does not round-trip`);
  }
  t.ok(accepted > 0, `${accepted} mutated messages were still valid, and round-tripped`);

  // Framing: the same stream cut at every position gives the same messages; an oversized prefix is an error.
  const stream = Buffer.concat(valid.map((v) => { const f = Buffer.alloc(4); f.writeUInt32BE(v.length); return Buffer.concat([f, v]); }));
  for (let cut = 0; cut <= stream.length; cut++) {
    const r = new AgentFrameReader();
    const got = [...r.push(stream.subarray(0, cut)).bodies, ...r.push(stream.subarray(cut)).bodies];
    if (got.length !== 3 || r.pending !== 0) t.fail(`cut at ${cut}: ${got.length} messages`);
  }
  const big = Buffer.alloc(4);
  big.writeUInt32BE(MAX_MESSAGE_BYTES + 1);
  t.match(new AgentFrameReader().push(big).error ?? '', /exceeds/);
});

t.test('endpoint: bad peers are closed one at a time; a good agent stays connected and its state intact', async (t) => {
  const store = new SnapshotStore(snapshotOf([
    instance('local', { interfaces: [iface('eth0', ['127.0.0.1'])], agentServices: ['*'], agentTokenDigest: tokenDigest(CREDENTIAL) }),
    instance('web', { interfaces: [iface('eth0', ['10.0.0.2'])] }),
  ]));
  const devlxd = await fakeDevlxd(() => CREDENTIAL);
  t.teardown(() => devlxd.close());
  const tlsMaterial = await generateSelfSigned('localhost', []);
  const log = memoryLogger();
  const server = await startAgentServer({
    binds: [{ host: '127.0.0.1', port: 0 }], tls: tlsMaterial, log,
    // Every peer here comes from 127.0.0.1, 20 at a time: room for them all from one source.
    limits: { ...AGENT_LIMITS, helloTimeoutMs: 1000, maxPerSource: 64 },
    agents: new AgentIngest({ store: { snapshot: () => store.current, dispatch: (a) => store.dispatch(a) }, policy: () => ({ token: TOKEN, services: [] }), graceMs: () => 300, log }),
  });
  t.teardown(() => server.close());
  const port = server.ports[0]!;
  const config: AgentConfig = {
    source: 'test', server: { host: '127.0.0.1', port }, token: TOKEN, devlxd: devlxd.path, trust: { kind: 'ca', pem: tlsMaterial.cert },
    services: [{ name: 'https', port: 443, proto: 'tcp', tags: ['app'], interface: null, priority: 1, weight: 1, checks: [] }],
  };
  const agent = new Agent(config, memoryLogger());
  agent.start();
  t.teardown(() => agent.stop());
  await waitFor(() => store.current.serviceEndpoints('https').length === 1, { what: 'the good agent to register' });
  t.same(server.connected(), ['default/local'], 'bound to the instance holding 127.0.0.1');

  /** Opens a TLS connection, writes `bytes`, and resolves with what the server said before closing. */
  const peer = (write: (s: tls.TLSSocket) => void) =>
    new Promise<string>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      let got = Buffer.alloc(0);
      s.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
      s.on('error', () => undefined);
      s.on('close', () => resolve(got.subarray(4).toString()));
      s.once('secureConnect', () => write(s));
    });
  const frame = (m: unknown) => encodeFrame(m as AgentMessage);
  const hello = frame({ type: 'hello', version: 2, credential: CREDENTIAL, token: TOKEN });
  t.match(await peer((s) => s.write(frame({ type: 'hello', version: 2, credential: CREDENTIAL, token: 'wrong-token-wrong-token' }))), /wrong token/);
  t.match(await peer((s) => s.write(frame({ type: 'state', seq: 1, services: [] }))), /before hello/);
  t.match(await peer((s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))), /exceeds/);
  t.match(await peer((s) => s.write(Buffer.concat([hello, frame({ type: 'state', seq: 2, services: [] }), frame({ type: 'state', seq: 2, services: [] })]))), /welcome[\s\S]*out of order/);
  t.match(await peer((s) => s.write(Buffer.concat([hello, hello]))), /twice/);
  t.match(await peer(() => undefined), /no hello in time/, 'a silent peer is closed after the hello timeout');
  // 200 fuzzed peers, in parallel batches.
  const random = seeded(99);
  for (let batch = 0; batch < 10; batch++) {
    await Promise.all(Array.from({ length: 20 }, () => peer((s) => {
      const b = Buffer.alloc(8 + Math.floor(random() * 200));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(random() * 256);
      b.writeUInt32BE(b.length - 4, 0);
      s.write(b);
    })));
  }
  // A raw TCP peer that never does TLS.
  await new Promise<void>((r) => { const s = net.connect(port, '127.0.0.1', () => s.end('garbage')); s.on('close', () => r()); s.on('error', () => r()); });
  t.same(server.connected(), ['default/local'], 'the good agent is still connected');
  const eps = store.current.serviceEndpoints('https');
  t.equal(eps.length, 1, 'its service is still served');
  t.equal(eps[0]!.service.source, 'agent');
  t.ok(log.lines.filter((l) => l['msg'] === 'agent connection closed').length >= 205, 'each bad connection was logged with its reason');

  // The good agent stops: its services outlive the connection for grace (300 ms), then leave.
  await agent.stop();
  await waitFor(() => store.current.agents.get('default/local')?.connected === false, { what: 'disconnect noticed' });
  t.equal(store.current.serviceEndpoints('https').length, 1, 'still served within grace');
  await waitFor(() => store.current.serviceEndpoints('https').length === 0, { what: 'grace to end', timeoutMs: 3000 });
  t.pass('gone after grace');
});
