import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { generateSelfSigned } from '../../src/tls/index.js';
import { dig } from '../helpers/dig.js';
import { agentLog, ipv4Of, killAgent, launchAgentContainer, rawPeer, startAgent, startHttpd, stopHttpd, writeIn } from '../helpers/agent-container.js';
import { hosts, since, startLexa, type TestLexa } from '../helpers/lexa.js';
import { deleteByPrefix, lxc, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// The lexa agent running inside real busybox containers (node bind-mounted read-only), talking to a lexa server
// that watches the real LXD: announcement, health checks, grace, server restart, and the trust rules.
const PREFIX = 'agt-it-';
const A = `${PREFIX}a`;
const B = `${PREFIX}b`;
const BRIDGE = '10.99.0.1';
const TOKEN = randomBytes(24).toString('hex');
const GRACE_MS = 2_000;

/** The server's certificate files: configured, so a restarted server presents the same one the agents trust. */
const certDir = mkdtempSync(join(tmpdir(), 'lexa-agent-cert-'));
const serverBlock = (port: number) =>
  `  agent {\n    bind {\n      host = "${BRIDGE}"\n      port = ${port}\n    }\n    token = "${TOKEN}"\n    grace = "${GRACE_MS / 1000}s"\n` +
  `    certificate = "${join(certDir, 'agent.crt')}"\n    key = "${join(certDir, 'agent.key')}"\n  }\n`;

const agentHcl = (server: string, token = TOKEN) => `agent {
  server = "${server}"
  token  = "${token}"
  ca     = "/etc/lexa/agent-ca.crt"
  service {
    name = "https"
    port = 443
    tags = ["app", "blue"]
    check {
      tcp      = "127.0.0.1:443"
      interval = "500ms"
      timeout  = "300ms"
    }
  }
  service {
    name = "ctl"
    port = 9000
    proto = "udp"
  }
}
`;

t.test('agents in real containers feed DNS and REST; checks, grace, restarts, and trust', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  const material = await generateSelfSigned('lexa-agent', [{ host: BRIDGE, port: 0 }]);
  writeFileSync(join(certDir, 'agent.crt'), material.cert);
  writeFileSync(join(certDir, 'agent.key'), material.key, { mode: 0o600 });
  const launched = Date.now();
  await Promise.all([launchAgentContainer(A), launchAgentContainer(B)]);
  const launchMs = since(launched);
  const [ipA, ipB] = await Promise.all([ipv4Of(A), ipv4Of(B)]);
  t.pass(`two agent containers launched (node, dist, node_modules bind-mounted) in ${launchMs} ms; ${A}=${ipA} ${B}=${ipB}`);

  let lexa: TestLexa = await startLexa(`    socket = "${LXD_SOCKET}"`, serverBlock(0));
  const first = lexa;
  let firstClosed = false;
  t.teardown(() => (firstClosed ? undefined : first.close()));
  const port = lexa.daemon.ports.agent[0]!;
  const server = `${BRIDGE}:${port}`;
  const ca = material.cert;
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });

  for (const c of [A, B]) {
    await writeIn(c, '/etc/lexa/agent-ca.crt', ca);
    await startHttpd(c, 443);
  }
  const started = Date.now();
  await Promise.all([startAgent(A, agentHcl(server)), startAgent(B, agentHcl(server))]);
  const ask = () => dig(lexa.dnsPort);
  const srvTargets = async () => (await ask()('_https._tcp.service.lexa', 'SRV')).answer.map((l) => l.split(' ').at(-1)!).sort();
  const ours = (targets: string[]) => targets.filter((x) => x.includes(PREFIX));
  await waitFor(async () => ours(await srvTargets()).length === 2, { what: 'both agents\' https in SRV', timeoutMs: 20_000 });
  t.pass(`declared services in DNS ${since(started)} ms after the agents started (node start, config parse, TLS, first check)`);

  const srv = await ask()('_https._tcp.service.lexa', 'SRV');
  t.same(ours(srv.answer.map((l) => l.split(' ').at(-1)!)).sort(), [`eth0.if.${A}.lexa.`, `eth0.if.${B}.lexa.`]);
  t.ok(srv.answer.filter((l) => l.includes(PREFIX)).every((l) => / SRV 1 255 443 /.test(l)), 'priority 1, weight 1 → 255, port 443');
  t.ok(srv.additional.some((l) => l.startsWith(`eth0.if.${A}.lexa.`) && l.endsWith(ipA)), `additionals carry ${A}'s address`);
  t.ok((await ask()('https.service.lexa', 'A')).answer.some((l) => l.endsWith(ipA)), 'A record of the service');
  t.ok((await ask()('blue.https.service.lexa', 'A')).answer.some((l) => l.endsWith(ipB)), 'tag filter');
  t.ok((await ask()('_ctl._udp.service.lexa', 'SRV')).answer.some((l) => l.includes(`${A}.lexa.`)), 'a service without checks is passing');
  t.ok((await ask()('_https._app.service.lexa', 'SRV')).answer.some((l) => l.includes(`${B}.lexa.`)), 'SRV by tag');
  const docA = (await hosts(lexa.restUrl)).get(`${A}.lexa`);
  t.same(docA?.services?.map((s) => [s.name, s.proto, s.port, s.source, s.health]), [
    ['https', 'tcp', 443, 'agent', 'passing'],
    ['ctl', 'udp', 9000, 'agent', 'passing'],
  ], '/containers/ shows source and health');

  // The check fails: https leaves DNS and REST; it passes again: https returns.
  let at = Date.now();
  await stopHttpd(A);
  await waitFor(async () => !(await srvTargets()).includes(`eth0.if.${A}.lexa.`), { what: `${A} to leave SRV after its check failed` });
  t.pass(`failing check: left DNS ${since(at)} ms after httpd stopped (interval 500 ms)`);
  t.notOk((await hosts(lexa.restUrl)).get(`${A}.lexa`)?.services?.some((s) => s.name === 'https'), 'and left /containers/');
  t.ok((await srvTargets()).includes(`eth0.if.${B}.lexa.`), `${B} is untouched`);
  at = Date.now();
  await startHttpd(A, 443);
  await waitFor(async () => (await srvTargets()).includes(`eth0.if.${A}.lexa.`), { what: `${A} back in SRV` });
  t.pass(`passing check: back in DNS ${since(at)} ms after httpd restarted`);

  // The agent dies without a word: its services stay for grace, then leave.
  at = Date.now();
  await killAgent(B);
  await waitFor(() => lexa.daemon.store.current.agents.get(`default/${B}`)?.connected === false, { what: 'the server to notice', timeoutMs: 20_000 });
  const noticed = since(at);
  t.ok((await srvTargets()).includes(`eth0.if.${B}.lexa.`), `within grace ${B} is still served`);
  await waitFor(async () => !(await srvTargets()).includes(`eth0.if.${B}.lexa.`), { what: `${B} to leave after grace`, timeoutMs: 10_000 });
  const gone = since(at);
  t.ok(gone - noticed >= GRACE_MS - 200, `left ${gone} ms after the kill: disconnect seen at ${noticed} ms, then grace ${GRACE_MS} ms`);
  await startAgent(B);
  await waitFor(async () => (await srvTargets()).includes(`eth0.if.${B}.lexa.`), { what: `${B} back after its agent restarted`, timeoutMs: 20_000 });

  // The server restarts (new process state, same port): agents reconnect and re-announce by themselves.
  await lexa.close();
  firstClosed = true;
  at = Date.now();
  lexa = await startLexa(`    socket = "${LXD_SOCKET}"`, serverBlock(port));
  const restarted = lexa;
  t.teardown(() => restarted.close());
  await waitFor(async () => ours(await srvTargets()).length === 2, { what: 'both agents back after the server restart', timeoutMs: 30_000 });
  t.pass(`server restart: both containers' services back ${since(at)} ms later without operator action`);

  // Trust. A's hello naming B is refused (the protocol has no instance field); A's state lands on A only.
  const refusedFrom = (out: string) => /"type":"error"/.test(out);
  const claim = await rawPeer(A, server, [{ type: 'hello', version: 1, token: TOKEN, instance: `default/${B}` }]);
  t.ok(refusedFrom(claim), `a hello claiming ${B} is refused: ${claim.trim()}`);
  const asA = await rawPeer(A, server, [
    { type: 'hello', version: 1, token: TOKEN },
    { type: 'state', seq: 1, services: [{ name: 'spoof', port: 1, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, health: 'passing' }] },
  ]);
  t.match(asA, new RegExp(`"instance":"default/${A}"`), 'a connection from A is bound to A, whatever it sends');
  const spoof = (await ask()('_spoof._tcp.service.lexa', 'SRV')).answer;
  t.notOk(spoof.some((l) => l.includes(B)), `A cannot register a service on ${B}`);
  t.ok((await srvTargets()).includes(`eth0.if.${B}.lexa.`), `${B}'s services are untouched`);
  const noToken = await rawPeer(A, server, [{ type: 'hello', version: 1, token: 'not-the-token-not-the-token' }]);
  t.match(noToken, /wrong token/, 'wrong token: refused');
  const fromHost = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: BRIDGE, port, rejectUnauthorized: false });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.on('secureConnect', () => s.write(encode({ type: 'hello', version: 1, token: TOKEN })));
  });
  t.match(fromHost, new RegExp(`no running instance holds ${BRIDGE.replace(/\./g, '\\.')}`), 'the host itself (an address no instance holds) is refused');

  // An address the containers only gave themselves binds nothing (LXD vouches for it on no NIC: see
  // trusted-addresses.test.ts): give both the same extra address, let lexa re-read them; it is held by nobody.
  const shared = '10.99.0.250';
  for (const c of [A, B]) await lxc('exec', c, '--', 'ip', 'addr', 'add', `${shared}/24`, 'dev', 'eth0');
  for (const c of [A, B]) await lxc('config', 'set', c, 'user.lexa-test.touch', String(Date.now()));
  const reported = (c: string) => lexa.daemon.store.current.instances.get(`default/${c}`)?.interfaces[0]?.ipv4.includes(shared);
  await waitFor(() => reported(A) && reported(B), { what: 'lexa to see the shared address' });
  t.same(lexa.daemon.store.current.holders(shared), [], 'held by nobody');
  // Both containers would answer the host's ARP for the shared address; an ARP request from A first makes the host's
  // neighbour entry point at A, so the server's reply reaches the container that connected.
  await lxc('exec', A, '--', 'arping', '-c', '1', '-I', 'eth0', '-s', shared, BRIDGE);
  const sharedOut = await rawPeer(A, server, [{ type: 'hello', version: 1, token: TOKEN }], shared);
  t.match(sharedOut, new RegExp(`no running instance holds ${shared.replace(/\./g, '\\.')}`), 'a connection from an address the containers gave themselves is refused');
  t.ok(lexa.log.lines.some((l) => String(l['reason']).includes(`no running instance holds ${shared}`)), 'and the server logged why');
  t.ok(lexa.daemon.store.current.agents.get(`default/${B}`)?.connected, `${B}'s own agent stays connected`);

  // A stopped instance loses its agent services at once.
  at = Date.now();
  await lxc('stop', '--force', A);
  await waitFor(async () => !(await srvTargets()).includes(`eth0.if.${A}.lexa.`), { what: `${A} gone on stop` });
  t.ok(since(at) < GRACE_MS + 1000, `stopped: its services left at once (${since(at)} ms), not after grace`);
  t.ok(lexa.daemon.store.current.agents.has(`default/${B}`), `${B} keeps its agent`);
  if (t.passing() === false) t.comment(`agent logs:\n${await agentLog(B)}`);
});

function encode(m: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(m));
  const f = Buffer.alloc(4 + body.length);
  f.writeUInt32BE(body.length, 0);
  body.copy(f, 4);
  return f;
}
