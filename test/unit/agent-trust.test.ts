import tls from 'node:tls';
import t, { type Test } from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { decodeServerMessage, encodeFrame, AgentFrameReader, MAX_LOGGED_CHARS, type AgentMessage, type ServerMessage } from '../../src/agent/protocol.js';
import { AGENT_LIMITS, startAgentServer, type AgentLimits } from '../../src/servers/agent/index.js';
import { AgentIngest, type AgentAction, type AgentPolicy } from '../../src/streams/agents/ingest.js';
import { SnapshotStore, tokenDigest, type AgentService, type Instance } from '../../src/streams/index.js';
import { generateSelfSigned } from '../../src/tls/index.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';

// The agent endpoint's trust checks, each against a hand-built snapshot (no LXD) and real TLS sockets on loopback:
// instances "hold" 127.0.0.1 so loopback connections bind. Each test here fails when its check is removed
// (see docs/security.md, "Agents"); test/integration/agent.test.ts runs the same rules with real containers.
const LOCAL = 'credential-of-the-instance-local';
const EVIL = 'credential-of-the-instance-evil!';
const LOOPBACK = [iface('eth0', ['127.0.0.1'])];
const svc = (name: string, over: Partial<AgentService> = {}): AgentService => ({
  name, port: 443, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, source: 'agent', health: 'passing', ...over,
});
const local = (over: Partial<Instance> = {}) =>
  instance('local', { interfaces: LOOPBACK, agentServices: ['*'], agentTokenDigest: tokenDigest(LOCAL), ...over });
const hello = (credential: string): AgentMessage => ({ type: 'hello', version: 2, credential });

/** How long a disconnected agent's services stay served in these tests. */
const GRACE_MS = 60_000;

/** A server over `instances`, with every dispatched action recorded. */
async function serve(t: Test, instances: Instance[], opts: { policy?: AgentPolicy; limits?: Partial<AgentLimits>; clock?: FakeClock } = {}) {
  const store = new SnapshotStore(snapshotOf(instances));
  const dispatched: AgentAction[] = [];
  const log = memoryLogger();
  const agents = new AgentIngest({
    store: { snapshot: () => store.current, dispatch: (a) => (dispatched.push(a), store.dispatch(a)) },
    policy: () => opts.policy ?? { token: null, services: [] },
    graceMs: () => GRACE_MS,
    log,
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  const server = await startAgentServer({
    binds: [{ host: '127.0.0.1', port: 0 }],
    tls: await generateSelfSigned('localhost', []),
    log,
    limits: { ...AGENT_LIMITS, ...opts.limits },
    clock: opts.clock,
    agents,
  });
  // As the daemon stops: the ingest first (the connections closing below start no grace timer, which would keep
  // this process alive for GRACE_MS on the real clock), then the peers, then the server (it waits for them).
  t.teardown(() => {
    agents.stop();
    for (const p of peers) p.end();
    return server.close();
  });
  return { store, dispatched, log, server, port: server.ports[0]! };
}

const peers = new Set<Peer>();

/** A raw protocol peer: sends frames, collects the server's messages, knows when it was closed. */
class Peer {
  readonly got: ServerMessage[] = [];
  closed = false;
  readonly #socket: tls.TLSSocket;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.#socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const reader = new AgentFrameReader();
    this.#socket.on('data', (d: Buffer) => {
      for (const b of reader.push(d).bodies) {
        const m = decodeServerMessage(b);
        if (m.ok) this.got.push(m.message);
      }
    });
    this.#socket.on('error', () => undefined);
    this.#socket.on('close', () => (this.closed = true));
    this.ready = new Promise((resolve) => this.#socket.once('secureConnect', () => resolve()));
    peers.add(this);
  }

  async send(...messages: (AgentMessage | Buffer)[]): Promise<void> {
    await this.ready;
    this.#socket.write(Buffer.concat(messages.map((m) => (Buffer.isBuffer(m) ? m : encodeFrame(m)))));
  }

  /** The first message of `type` (waiting for it). */
  async first<T extends ServerMessage['type']>(type: T, pred: (m: Extract<ServerMessage, { type: T }>) => boolean = () => true) {
    return waitFor(() => this.got.find((m): m is Extract<ServerMessage, { type: T }> => m.type === type && pred(m as Extract<ServerMessage, { type: T }>)), {
      what: `a ${type} message`,
      timeoutMs: 5_000,
    });
  }

  end(): void {
    this.#socket.destroy();
  }
}

t.test('a wrong per-instance credential is refused, and the real agent keeps its session and services', async (t) => {
  const { store, server, port, log } = await serve(t, [local()]);
  const real = new Peer(port);
  t.teardown(() => real.end());
  await real.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  t.same((await real.first('welcome')).instance, 'default/local');
  await real.first('ack');

  // A shared-token-era peer that knows everything but the instance's own token, from the same address.
  for (const credential of [EVIL, `${LOCAL}x`, 'x'.repeat(1024)]) {
    const spoof = new Peer(port);
    await spoof.send(hello(credential), { type: 'state', seq: 1, services: [] });
    t.match((await spoof.first('error')).reason, /credential is not default\/local's user\.lexa\.agent\.token/);
    await waitFor(() => spoof.closed, { what: 'the spoofer closed' });
  }
  t.notOk(real.closed, 'the real agent is still connected');
  t.same(server.connected(), ['default/local']);
  t.same(store.current.serviceEndpoints('https').map((e) => e.instance.key), ['default/local'], 'its service is still served');
  t.notOk(log.lines.some((l) => l['msg'] === 'agent connection replaced by a newer one with the same credential'), 'nothing replaced it');
  t.equal(store.current.agents.get('default/local')?.connected, true);

  // An instance lexa has not issued a token to yet cannot be spoken for at all.
  const none = await serve(t, [local({ agentTokenDigest: undefined })]);
  const early = new Peer(none.port);
  await early.send(hello(LOCAL));
  t.match((await early.first('error')).reason, /default\/local has no user\.lexa\.agent\.token yet/);
});

t.test('an address two instances hold: the credential decides; one token on both is refused', async (t) => {
  // "evil" copied its neighbour's address onto its own interface. Before, the address alone bound, so both
  // agents were refused ("held by 2 instances") and the neighbour's services left DNS.
  const evil = instance('evil', { interfaces: LOOPBACK, agentServices: ['*'], agentTokenDigest: tokenDigest(EVIL) });
  const { server, port, store } = await serve(t, [local(), evil]);
  const real = new Peer(port);
  t.teardown(() => real.end());
  await real.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  t.equal((await real.first('welcome')).instance, 'default/local', 'the agent proving local\'s token is bound to local');
  const attacker = new Peer(port);
  t.teardown(() => attacker.end());
  await attacker.send(hello(EVIL));
  t.equal((await attacker.first('welcome')).instance, 'default/evil', 'the attacker speaks for its own instance only');
  const stranger = new Peer(port);
  await stranger.send(hello('credential-of-nobody-at-all-here'));
  t.match((await stranger.first('error')).reason, /not the user\.lexa\.agent\.token of any of the 2 instances holding 127\.0\.0\.1/);
  t.same(server.connected().sort(), ['default/evil', 'default/local']);
  t.notOk(real.closed, 'the real agent was never disconnected');
  t.same(store.current.serviceEndpoints('https').map((e) => e.instance.key), ['default/local']);

  // `lxc copy` copies the token: two holders proving the same credential are ambiguous, and refused.
  const twin = instance('twin', { interfaces: LOOPBACK, agentServices: ['*'], agentTokenDigest: tokenDigest(LOCAL) });
  const copied = await serve(t, [local(), twin]);
  const either = new Peer(copied.port);
  await either.send(hello(LOCAL));
  t.match((await either.first('error')).reason, /127\.0\.0\.1 is held by 2 instances with the same user\.lexa\.agent\.token/);
});

t.test('each state re-checks the binding: address lost or token rotated ends the session', async (t) => {
  const { store, port, dispatched } = await serve(t, [local()]);
  const a = new Peer(port);
  await a.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  await a.first('ack');
  store.dispatch({ type: 'instance', instance: local({ interfaces: [iface('eth0', ['10.0.0.9'])] }), at: 2 });
  await a.send({ type: 'state', seq: 2, services: [svc('https'), svc('evil')] });
  t.match((await a.first('error')).reason, /no longer bound to default\/local: no running instance holds 127\.0\.0\.1/);
  t.notOk(dispatched.some((d) => d.type === 'agent-services' && d.services.some((s) => s.name === 'evil')), 'the state after the address moved was not applied');

  store.dispatch({ type: 'instance', instance: local(), at: 3 });
  const b = new Peer(port);
  await b.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  await b.first('ack');
  // The operator rotates the token (lxc config set ... user.lexa.agent.token): the old credential stops counting.
  store.dispatch({ type: 'instance', instance: local({ agentTokenDigest: tokenDigest('a-rotated-token-for-local!') }), at: 4 });
  await b.send({ type: 'state', seq: 2, services: [svc('https'), svc('evil')] });
  t.match((await b.first('error')).reason, /no longer bound to default\/local: the credential is not/);
});

t.test('names outside the allow list are refused, reported in the ack, logged once; config changes re-check', async (t) => {
  const { store, port, log } = await serve(t, [local({ agentServices: ['https'] })]);
  const a = new Peer(port);
  t.teardown(() => a.end());
  await a.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https'), svc('http', { weight: 256 })] });
  const ack = await a.first('ack', (m) => m.seq === 1);
  t.same(ack.refused, [{ name: 'http', reason: "not in the instance's user.lexa.agent.services" }], 'the ack names the refused service and why');
  t.same(store.current.serviceEndpoints('https').length, 1, 'https (allowed) is served');
  t.same(store.current.serviceEndpoints('http'), [], 'http (not allowed) is not: no weight-256 takeover');
  await a.send({ type: 'state', seq: 2, services: [svc('https'), svc('http', { weight: 256 })] });
  await a.first('ack', (m) => m.seq === 2);
  t.equal(log.lines.filter((l) => l['msg'] === 'agent service refused').length, 1, 'logged once per instance and name');

  // The operator allows http: served at the instance's re-read, without the agent saying anything again.
  store.dispatch({ type: 'instance', instance: local({ agentServices: ['https', 'http'] }), at: 5 });
  t.same(store.current.serviceEndpoints('http').length, 1, 'allowed later: served');
  // ... and removes https: withdrawn at once.
  store.dispatch({ type: 'instance', instance: local({ agentServices: ['http'] }), at: 6 });
  t.same(store.current.serviceEndpoints('https'), [], 'removed from the list: withdrawn');
});

t.test('without user.lexa.agent.services the server default decides; SIGHUP re-checks stored states', async (t) => {
  let policy: AgentPolicy = { token: null, services: [] };
  const store0 = await serve(t, [local({ agentServices: undefined })], { policy: { get token() { return policy.token; }, get services() { return policy.services; } } });
  const a = new Peer(store0.port);
  t.teardown(() => a.end());
  await a.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  t.match((await a.first('ack')).refused?.[0]?.reason ?? '', /not in server\.agent\.services/);
  t.same(store0.store.current.serviceEndpoints('https'), [], 'default empty: nothing');
  policy = { token: null, services: ['https'] };
  store0.store.dispatch({ type: 'agent-default', services: policy.services, at: 7 });
  t.same(store0.store.current.serviceEndpoints('https').length, 1, 'the reloaded default admits it at once');
  // The shared token, when configured, is a second gate (read on every hello: SIGHUP applies it).
  policy = { token: 'the-shared-token-of-the-server', services: ['*'] };
  const b = new Peer(store0.port);
  await b.send(hello(LOCAL));
  t.match((await b.first('error')).reason, /wrong token/);
  const c = new Peer(store0.port);
  await c.send({ type: 'hello', version: 2, credential: LOCAL, token: 'the-shared-token-of-the-server' });
  t.equal((await c.first('welcome')).instance, 'default/local');
  c.end();
});

t.test('state messages are rate-limited: a burst is coalesced, the latest wins, nothing is lost', async (t) => {
  const clock = new FakeClock();
  const { store, port, dispatched } = await serve(t, [local()], { clock, limits: { stateBurst: 2, stateRefillMs: 200 } });
  const applied = () => dispatched.filter((d) => d.type === 'agent-services').length;
  const a = new Peer(port);
  t.teardown(() => a.end());
  const states = Array.from({ length: 20 }, (_, i): AgentMessage => ({ type: 'state', seq: i + 1, services: [svc('https', { port: 1000 + i })] }));
  // The ping is answered in order, after all 20 states were read: the pong says the burst has been taken in.
  await a.send(hello(LOCAL), ...states, { type: 'ping' });
  await a.first('pong');
  t.equal(applied(), 2, 'the bucket of 2 is spent; the other 18 wait while the clock stands still');
  t.equal(store.current.serviceEndpoints('https')[0]?.service.port, 1001, 'the second state is in force meanwhile');
  await clock.advance(199);
  t.equal(applied(), 2, 'no token before the refill period has passed');
  await clock.advance(1);
  await a.first('ack', (m) => m.seq === 20);
  t.equal(applied(), 3, '20 states in one burst published 3 snapshots (a bucket of 2, then the latest)');
  t.equal(store.current.serviceEndpoints('https')[0]?.service.port, 1019, 'the last state is the one in force');
  t.notOk(a.got.some((m) => m.type === 'ack' && m.seq > 2 && m.seq < 20), 'the states in between were coalesced, never applied');
});

t.test('timers on the clock: no hello, then silence, close the connection; services outlive it for grace', async (t) => {
  const clock = new FakeClock();
  const { store, port, dispatched } = await serve(t, [local()], { clock });

  const mute = new Peer(port);
  await mute.ready;
  await waitFor(() => clock.pending === 1, { what: 'the hello timer to be set' });
  await clock.advance(AGENT_LIMITS.helloTimeoutMs - 1);
  t.notOk(mute.got.some((m) => m.type === 'error'), 'not closed before the hello timeout');
  await clock.advance(1);
  t.match((await mute.first('error')).reason, /no hello in time/);

  const quiet = new Peer(port);
  await quiet.send(hello(LOCAL));
  await quiet.first('welcome');
  await clock.advance(AGENT_LIMITS.idleTimeoutMs - 1);
  t.notOk(quiet.got.some((m) => m.type === 'error'), 'not closed before the idle timeout');
  await clock.advance(1);
  t.match((await quiet.first('error')).reason, /silent for too long/);
  await waitFor(() => quiet.closed, { what: 'the silent agent closed' });

  const a = new Peer(port);
  await a.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  await a.first('ack');
  a.end();
  await waitFor(() => dispatched.some((d) => d.type === 'agent-services' && !d.connected), { what: 'the disconnect to be dispatched' });
  await clock.advance(GRACE_MS - 1);
  t.equal(store.current.serviceEndpoints('https').length, 1, 'still served within grace');
  await clock.advance(1);
  t.ok(dispatched.some((d) => d.type === 'agent-gone'), 'the agent is gone once grace ends');
  t.equal(store.current.serviceEndpoints('https').length, 0, 'its services leave with it');
});

t.test('a refused peer cannot write its own 64 KiB into the log', async (t) => {
  const { port, log } = await serve(t, [local()]);
  const huge = 'k'.repeat(60_000);
  for (const m of [{ type: 'hello', version: 2, credential: LOCAL, [huge]: 1 }, { type: huge }, { type: 'hello', version: huge, credential: LOCAL }]) {
    const p = new Peer(port);
    await p.send(frameOf(m));
    const reason = (await p.first('error')).reason;
    t.ok(reason.length < MAX_LOGGED_CHARS + 100, `the reason sent back is clipped (${reason.length} chars)`);
  }
  const lines = log.lines.filter((l) => l['msg'] === 'agent connection closed');
  t.equal(lines.length, 3);
  t.ok(lines.every((l) => JSON.stringify(l).length < 1000), `each log line stays short (longest ${Math.max(...lines.map((l) => JSON.stringify(l).length))} bytes)`);
});

/** A frame of any JSON value (encodeFrame takes only protocol messages). */
function frameOf(value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const f = Buffer.alloc(4 + body.length);
  f.writeUInt32BE(body.length, 0);
  body.copy(f, 4);
  return f;
}

t.test('one ingest for every agent listener: a reconnect through another bind replaces the older session, whose late close changes nothing', async (t) => {
  // Two binds are two listeners (servers/agent/descriptor.ts opens one per bind). An agent that reconnects through
  // the other one (its IPv6 address, say) while its old connection is still half-open must not have that old
  // connection's close mark it disconnected and, after grace, withdraw the services the new connection announces.
  const clock = new FakeClock();
  const store = new SnapshotStore(snapshotOf([local()]));
  const log = memoryLogger();
  const agents = new AgentIngest({ store: { snapshot: () => store.current, dispatch: (a) => store.dispatch(a) }, policy: () => ({ token: null, services: [] }), graceMs: () => GRACE_MS, log, clock });
  const tlsMaterial = await generateSelfSigned('localhost', []);
  const open = () => startAgentServer({ binds: [{ host: '127.0.0.1', port: 0 }], tls: tlsMaterial, log, limits: AGENT_LIMITS, agents, clock });
  const [one, two] = [await open(), await open()];
  t.teardown(async () => {
    for (const p of peers) p.end();
    await Promise.all([one.close(), two.close()]);
  });
  const old = new Peer(one.ports[0]!);
  await old.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https')] });
  await old.first('ack');
  const fresh = new Peer(two.ports[0]!);
  await fresh.send(hello(LOCAL), { type: 'state', seq: 1, services: [svc('https'), svc('api')] });
  await fresh.first('ack');
  await waitFor(() => old.closed, { what: 'the replaced connection closed' });
  await waitFor(() => one.connected().length === 0, { what: 'the first listener let its session go' });
  t.same(two.connected(), ['default/local']);
  t.equal(store.current.agents.get('default/local')?.connected, true, 'still connected after the old close');
  await clock.advance(GRACE_MS + 1);
  t.same(store.current.serviceEndpoints('api').map((e) => e.instance.key), ['default/local'], 'the new session\'s services outlive the old one\'s grace');
  t.same(store.current.serviceEndpoints('https').map((e) => e.instance.key), ['default/local']);
});
