import { Buffer } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import t from 'tap';
import { encodeFrame } from '../../src/agent/protocol.js';
import { memoryLogger } from '../../src/log/index.js';
import { AGENT_LIMITS, startAgentServer } from '../../src/servers/agent/index.js';
import { AgentIngest } from '../../src/streams/agents/ingest.js';
import { SnapshotStore, tokenDigest } from '../../src/streams/index.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { iface, instance, snapshotOf } from '../helpers/model.js';
import { testCertificate } from '../helpers/transport-stub.js';

// BACKPRESSURE on the agent endpoint, in process with a fixture snapshot: an admitted agent (the instance "flood"
// holds 127.0.0.5 and proves its token) floods pings and never reads its pongs. Before the fix lexa read every
// ping and queued a pong for each (19 bytes per 19 bytes sent, without end); it must stop reading instead, as the
// DNS stream transports do, and go on once the agent reads again.

const AGENT = '127.0.0.5';
const CREDENTIAL = 'the-instance-credential-of-flood';
/** Pings sent in one go: ~38 MB, four times what loopback's socket buffers took in both directions here (~9 MB). */
const PINGS = 2_000_000;

t.test('an agent that floods pings and never reads stops being read; reading again answers every ping', async (t) => {
  const cert = await testCertificate();
  const log = memoryLogger();
  const store = new SnapshotStore(
    snapshotOf([instance('flood', { interfaces: [iface('eth0', [AGENT])], agentServices: ['*'], agentTokenDigest: tokenDigest(CREDENTIAL) })]),
  );
  const server = await startAgentServer({
    binds: [{ host: '127.0.0.1', port: 0 }],
    tls: cert.tls,
    log,
    // Deadlines far past the test: only backpressure may stop the flood here.
    limits: { ...AGENT_LIMITS, idleTimeoutMs: 120_000, helloTimeoutMs: 120_000 },
    agents: new AgentIngest({ store: { snapshot: () => store.current, dispatch: (a) => store.dispatch(a) }, policy: () => ({ token: null, services: [] }), graceMs: () => 1_000, log }),
  });
  t.teardown(() => server.close());
  // The TCP socket under the agent's TLS: its libuv handle's writeQueueSize is what the kernel has not yet taken.
  const raw = net.connect({ host: '127.0.0.1', port: server.ports[0]!, localAddress: AGENT });
  const client = tls.connect({ socket: raw, rejectUnauthorized: false });
  client.on('error', () => undefined);
  t.teardown(() => client.destroy());
  await new Promise((resolve) => client.once('secureConnect', resolve));
  let received = 0;
  const counting = (d: Buffer) => (received += d.length);
  client.on('data', counting);
  client.write(encodeFrame({ type: 'hello', version: 2, credential: CREDENTIAL }));
  await waitFor(() => server.connected().includes('default/flood'), { what: 'the agent to be welcomed', intervalMs: 20 });
  client.off('data', counting);
  client.pause(); // never reads, for now
  const welcome = received;

  const ping = encodeFrame({ type: 'ping' });
  const flood = Buffer.concat(Array.from({ length: PINGS }, () => ping));
  client.write(flood);
  // Settled: no encrypted byte has left the agent for three looks in a row (lexa stopped reading, or read it all).
  const queued = () => (raw as unknown as { _handle: { writeQueueSize: number } | null })._handle?.writeQueueSize ?? 0;
  let last = -1;
  let still = 0;
  await waitFor(() => {
    still = queued() === last ? still + 1 : 0;
    last = queued();
    return still >= 3;
  }, { what: 'the flood to settle', intervalMs: 300, timeoutMs: 45_000 });
  const unsent = queued();
  t.ok(unsent > flood.length / 2, `lexa stopped reading: ${unsent} of ${flood.length} bytes of pings never left the agent`);

  // The agent reads again: every ping is answered, once.
  const pong = encodeFrame({ type: 'pong' }).length;
  client.on('data', counting);
  client.resume();
  await waitFor(() => received - welcome >= PINGS * pong, { what: 'every pong', timeoutMs: 60_000, intervalMs: 100 });
  t.equal(received - welcome, PINGS * pong, 'one pong per ping');
});
