import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { generateSelfSigned } from '../../src/tls/index.js';
import { ipv4Of, launchAgentContainer, startAgent, startHttpd, stopHttpd, writeIn } from '../helpers/agent-container.js';
import { runtime, slots } from '../helpers/haproxy.js';
import { since, startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, lxc, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// The original README's HAProxy SRV backend (_https._tcp.service.lexa in examples/haproxy/haproxy.cfg, run as is)
// fed by lexa agents in real containers (examples/agent/agent.hcl, run as is but for the port): a failing health
// check takes a container out of HAProxy's rotation, a passing one brings it back.
const ROOT = join(import.meta.dirname, '..', '..');
const PREFIX = 'hap-agt-';
const NAMES = [`${PREFIX}1`, `${PREFIX}2`];
const BRIDGE = '10.99.0.1';
const BACKEND = 'ha_lxd_rfc2782';

t.test('HAProxy rotation follows agent health checks', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  await Promise.all(NAMES.map((n) => launchAgentContainer(n)));
  const ips = await Promise.all(NAMES.map((n) => ipv4Of(n)));

  const dir = mkdtempSync(join(tmpdir(), 'lexa-hap-agent-'));
  const token = randomBytes(24).toString('hex');
  const cert = await generateSelfSigned('lexa-agent', [{ host: BRIDGE, port: 0 }]);
  writeFileSync(join(dir, 'agent.crt'), cert.cert);
  writeFileSync(join(dir, 'agent.key'), cert.key, { mode: 0o600 });
  writeFileSync(join(dir, 'agent.token'), `${token}\n`, { mode: 0o600 });
  const lexa = await startLexa(
    `    socket = "${LXD_SOCKET}"`,
    `  agent {\n    bind {\n      host = "${BRIDGE}"\n      port = 0\n    }\n    token_file = "${join(dir, 'agent.token')}"\n` +
      `    certificate = "${join(dir, 'agent.crt')}"\n    key = "${join(dir, 'agent.key')}"\n    grace = "5s"\n  }\n`,
  );
  t.teardown(() => lexa.close());
  const example = readFileSync(join(ROOT, 'examples', 'agent', 'agent.hcl'), 'utf8');
  const hcl = example.replace('10.99.0.1:18500', `${BRIDGE}:${lexa.daemon.ports.agent[0]}`);
  t.not(hcl, example, 'the example names the server address the test replaces');
  for (const n of NAMES) {
    // The operator allows these agents https; lexa issues each its token, which the agent reads from devlxd.
    await lxc('config', 'set', n, 'user.lexa.agent.services', 'https');
    await writeIn(n, '/etc/lexa/agent.token', `${token}\n`);
    await writeIn(n, '/etc/lexa/agent-ca.crt', cert.cert);
    await startHttpd(n, 443);
    await startAgent(n, hcl);
  }

  const admin = join(dir, 'admin.sock');
  const haproxy = spawn('haproxy', ['-f', join(ROOT, 'examples', 'haproxy', 'haproxy.cfg'), '-db'], {
    env: { ...process.env, LEXA_DNS: `127.0.0.1:${lexa.dnsPort}`, HAPROXY_ADMIN: admin, HAPROXY_BIND: '127.0.0.1:18082' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let haLog = '';
  haproxy.stdout.on('data', (d) => (haLog += d));
  haproxy.stderr.on('data', (d) => (haLog += d));
  t.teardown(() => void haproxy.kill('SIGKILL'));
  await waitFor(() => runtime(admin, 'show info').then((s) => s.includes('Name: HAProxy')), { what: `HAProxy to start (${haLog})` });

  const inRotation = async () => (await slots(admin, BACKEND)).filter((s) => ips.some((ip) => s === `${ip}:443`));
  await waitFor(async () => (await inRotation()).length === 2, { what: `${BACKEND} to hold both agent containers`, timeoutMs: 30_000 });
  t.same(await inRotation(), ips.map((ip) => `${ip}:443`).sort(), `${BACKEND} holds both containers on port 443`);

  let at = Date.now();
  await stopHttpd(NAMES[0]!);
  await waitFor(async () => (await inRotation()).join() === `${ips[1]}:443`, { what: `${NAMES[0]} out of rotation`, timeoutMs: 20_000 });
  t.pass(`failing check: ${NAMES[0]} out of HAProxy's rotation ${since(at)} ms after its httpd stopped`);
  at = Date.now();
  await startHttpd(NAMES[0]!, 443);
  await waitFor(async () => (await inRotation()).length === 2, { what: `${NAMES[0]} back in rotation`, timeoutMs: 20_000 });
  t.pass(`passing check: back in rotation ${since(at)} ms after its httpd restarted`);
});
