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
// that watches the real LXD: announcement, health checks, grace, server restart, and the trust rules: the
// per-instance credential lexa writes into the instance and the agent reads from the real /dev/lxd/sock, the
// allow list in user.lexa.agent.services, and an address copied onto a neighbour's interface.
const PREFIX = 'sa-it-';
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
  service {
    name   = "http"
    port   = 80
    weight = 256
  }
}
`;
/** What the operator allows these agents: not http (a weight-256 takeover of another application's service). */
const ALLOWED = 'https,ctl';
/** B's token is set by the operator (lexa must keep it); A's is left to lexa to issue. */
const B_TOKEN = randomBytes(24).toString('base64url');
const credentialOf = async (name: string) => (await lxc('config', 'get', name, 'user.lexa.agent.token')).trim();

t.test('agents in real containers feed DNS and REST; checks, grace, restarts, and trust', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  const material = await generateSelfSigned('lexa-agent', [{ host: BRIDGE, port: 0 }]);
  writeFileSync(join(certDir, 'agent.crt'), material.cert);
  writeFileSync(join(certDir, 'agent.key'), material.key, { mode: 0o600 });
  const launched = Date.now();
  await Promise.all([launchAgentContainer(A), launchAgentContainer(B)]);
  const launchMs = since(launched);
  await lxc('config', 'set', B, 'user.lexa.agent.services', ALLOWED);
  // key=value: a base64url token may begin with '-', which lxc would read as a flag.
  await lxc('config', 'set', B, `user.lexa.agent.token=${B_TOKEN}`);
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
  t.equal(await credentialOf(A), '', `${A} may not run an agent yet: no token`);
  const allowedAt = Date.now();
  await lxc('config', 'set', A, 'user.lexa.agent.services', ALLOWED);
  const tokenA = await waitFor(async () => (await credentialOf(A)) || undefined, { what: `lexa to issue ${A} its token`, timeoutMs: 10_000 });
  t.match(tokenA, /^lexa_[A-Za-z0-9_-]{43}$/, `lexa wrote ${A} a random user.lexa.agent.token (lexa_ and 32 bytes, base64url) ${since(allowedAt)} ms after the operator allowed it an agent`);
  t.equal(await credentialOf(B), B_TOKEN, `the operator's token on ${B} is kept`);

  for (const c of [A, B]) {
    await writeIn(c, '/etc/lexa/agent-ca.crt', ca);
    await startHttpd(c, 443);
  }
  const started = Date.now();
  await Promise.all([startAgent(A, agentHcl(server)), startAgent(B, agentHcl(server))]);
  const ask = () => dig(lexa.dnsPort);
  const srvTargets = async () => (await ask()('_https._tcp.service.lexa', 'SRV')).answer.map((l) => l.split(' ').at(-1)!).sort();
  const ours = (targets: readonly string[]) => targets.filter((x) => x.includes(PREFIX));
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
  ], '/containers/ shows source and health; http (not allowed) is not there');
  t.same(ours((await ask()('_http._tcp.service.lexa', 'SRV')).answer), [], 'http, not in user.lexa.agent.services, is not served');
  // The agent's log is JSON lines (fields in any order): the refusal line names http and why.
  const refusal = (line: string) => {
    try {
      const l = JSON.parse(line) as { msg?: string; refused?: unknown };
      return l.msg === 'services refused by the server' && /http.*not in the instance's user\.lexa\.agent\.services/.test(JSON.stringify(l.refused));
    } catch {
      return false;
    }
  };
  await waitFor(async () => (await agentLog(A)).split('\n').some(refusal), { what: 'the agent to log the refusal' });
  t.pass('the agent was told, and logged it');
  t.equal(lexa.log.lines.filter((l) => l['msg'] === 'agent service refused' && l['instance'] === `default/${A}`).length, 1, 'the server logged it once');
  // The operator allows http on A: served at LXD's next event, the agent says nothing new.
  let at = Date.now();
  await lxc('config', 'set', A, 'user.lexa.agent.services', `${ALLOWED},http`);
  await waitFor(async () => (await ask()('_http._tcp.service.lexa', 'SRV')).answer.some((l) => l.includes(A)), { what: 'http allowed on A' });
  t.pass(`allowed by the operator: in DNS ${since(at)} ms after lxc config set`);
  await lxc('config', 'set', A, 'user.lexa.agent.services', ALLOWED);
  await waitFor(async () => !(await ask()('_http._tcp.service.lexa', 'SRV')).answer.some((l) => l.includes(A)), { what: 'http withdrawn from A' });
  t.pass('and withdrawn when the operator takes the name off the list');

  // The check fails: https leaves DNS and REST; it passes again: https returns.
  at = Date.now();
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
  const hello = (credential: string, token = TOKEN) => ({ type: 'hello', version: 2, credential, token });
  const claim = await rawPeer(A, server, [{ ...hello(tokenA), instance: `default/${B}` }]);
  t.ok(refusedFrom(claim), `a hello claiming ${B} is refused: ${claim.trim()}`);
  const asA = await rawPeer(A, server, [
    hello(tokenA),
    { type: 'state', seq: 1, services: [{ name: 'spoof', port: 1, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, health: 'passing' }] },
  ]);
  t.match(asA, new RegExp(`"instance":"default/${A}"`), 'a connection from A is bound to A, whatever it sends');
  const spoof = (await ask()('_spoof._tcp.service.lexa', 'SRV')).answer;
  t.notOk(spoof.some((l) => l.includes(B)), `A cannot register a service on ${B}`);
  t.ok((await srvTargets()).includes(`eth0.if.${B}.lexa.`), `${B}'s services are untouched`);
  const noToken = await rawPeer(A, server, [hello(tokenA, 'not-the-token-not-the-token')]);
  t.match(noToken, /wrong token/, 'wrong shared token: refused');
  const leaked = await rawPeer(A, server, [hello(B_TOKEN)]);
  t.match(leaked, new RegExp(`the credential is not default/${A}'s user\\.lexa\\.agent\\.token`), `${B}'s token (leaked) from ${A}'s address: refused`);
  const oldAgent = await rawPeer(A, server, [{ type: 'hello', version: 1, token: TOKEN }]);
  t.match(oldAgent, /unsupported version 1 \(this server speaks 2: upgrade the agent\)/, 'an agent of the shared-token era is told to upgrade');
  const fromHost = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: BRIDGE, port, rejectUnauthorized: false });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
    s.on('secureConnect', () => s.write(encode(hello(tokenA))));
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
  const sessionB = lexa.daemon.store.current.agents.get(`default/${B}`)?.session;
  const sharedOut = await rawPeer(A, server, [hello(tokenA)], shared);
  t.match(sharedOut, new RegExp(`no running instance holds ${shared.replace(/\./g, '\\.')}`), 'a connection from an address the containers gave themselves is refused, even with a valid credential');
  t.ok(lexa.log.lines.some((l) => String(l['reason']).includes(`no running instance holds ${shared}`)), 'and the server logged why');
  t.ok(lexa.daemon.store.current.agents.get(`default/${B}`)?.connected, `${B}'s own agent stays connected`);
  t.equal(lexa.daemon.store.current.agents.get(`default/${B}`)?.session, sessionB, `${B}'s session is the same one: never replaced or dropped`);
  t.ok((await srvTargets()).includes(`eth0.if.${B}.lexa.`), `${B}'s services are still served`);

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
