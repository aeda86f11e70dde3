import { execFile, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Agent } from 'node:https';
import { join } from 'node:path';
import Consul from 'consul';
import t from 'tap';
import { curl, startLexa, type TestLexa } from '../helpers/lexa.js';
import { deleteByPrefix, launch, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';

// lexa's Consul API read by two Consul client libraries no one here wrote, against the real LXD: Debian's
// python3-consul (scripts/catalog-peers.sh installs it) and the npm `consul` client. Both read the catalog, one
// service, its passing health, and make a blocking query that returns when THAT service changes (a key changed,
// a container stopped) and not when another one does.
const PREFIX = 'cc-';
const PYTHON = '/usr/bin/python3'; // Debian's python3-consul is installed for the system python
const SCRIPT = join(import.meta.dirname, 'python-consul.py');

async function cleanup(): Promise<void> {
  await deleteByPrefix(PREFIX);
}
t.before(cleanup);
t.teardown(cleanup);

interface HealthRow {
  Node: { Node: string; Address: string; Meta: Record<string, string> };
  Service: { ID: string; Service: string; Tags: string[]; Address: string; Port: number; Meta: Record<string, string> };
  Checks: { CheckID: string; Status: string }[];
}

/** `/v1/health/service/<name>?passing` through curl: this test's own view of lexa, beside the clients'. */
async function passing(lexa: TestLexa, service: string): Promise<HealthRow[]> {
  const r = await curl(`${lexa.restUrl}/v1/health/service/${service}?passing`);
  if (r.status !== 200) throw new Error(`health answered ${r.status}: ${r.body}`);
  return r.json<HealthRow[]>();
}

function python(...args: string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, [SCRIPT, ...args], { timeout: 90_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`python-consul ${args.join(' ')}: ${stderr || err.message}`)) : resolve(JSON.parse(stdout) as Record<string, unknown>),
    );
  });
}

/** Whether process `pid` holds an established TCP connection to local port `port` (`ss`): its request is in. */
function connected(pid: number, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile('ss', ['-Htnp', 'state', 'established', `dport = :${port}`], (err, stdout) => resolve(!err && stdout.includes(`pid=${pid},`)));
  });
}

const restPort = (lexa: TestLexa) => Number(new URL(lexa.restUrl).port);

t.test('python3-consul and npm consul read the catalog and block on one service', async (t) => {
  await Promise.all([
    launch(`${PREFIX}web-1`, { config: { 'user.lexa.service.ccweb.port': '80', 'user.lexa.service.ccweb.tags': 'blue' } }),
    launch(`${PREFIX}web-2`, { config: { 'user.lexa.service.ccweb.port': '80' } }),
    launch(`${PREFIX}db-1`, { config: { 'user.lexa.service.ccdb.port': '5432' } }),
  ]);
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(async () => (await passing(lexa, 'ccweb')).length === 2 && (await passing(lexa, 'ccdb')).length === 1, { what: 'both services with addresses', timeoutMs: 20_000 });
  // Each container's IPv6 address (SLAAC, then vouched for) arrives a second or two after its IPv4 and changes its
  // rows (TaggedAddresses): wait for all of them, so that the watches below see only the changes the test makes.
  const hasIpv6 = (name: string) => (lexa.daemon.store.current.instances.get(`default/${name}`)?.interfaces[0]?.trustedIpv6.length ?? 0) > 0;
  await waitFor(() => [`${PREFIX}web-1`, `${PREFIX}web-2`, `${PREFIX}db-1`].every(hasIpv6), { what: 'every container\'s IPv6 address', timeoutMs: 20_000 });

  // python3-consul: the catalog, one service, its passing health.
  const read = await python('read', String(restPort(lexa)), 'ccweb');
  t.same((read['services'] as Record<string, string[]>)['ccweb'], ['blue'], 'catalog.services(): name → tags');
  t.same((read['services'] as Record<string, string[]>)['ccdb'], []);
  const nodes = read['service'] as { Node: string; ServiceAddress: string; ServicePort: number; NodeMeta: Record<string, string> }[];
  t.same(nodes.map((n) => [n.Node, n.ServicePort]), [[`${PREFIX}web-1`, 80], [`${PREFIX}web-2`, 80]], 'catalog.service(): one row per instance');
  t.match(nodes[0], { ServiceAddress: /^10\.99\.0\.\d+$/, NodeMeta: { project: 'default', type: 'container' } });
  const health = read['passing'] as HealthRow[];
  t.same(health.map((h) => h.Checks.map((c) => [c.CheckID, c.Status])), [
    [['serfHealth', 'passing'], [`service:${PREFIX}web-1:ccweb:80:tcp`, 'passing']],
    [['serfHealth', 'passing'], [`service:${PREFIX}web-2:ccweb:80:tcp`, 'passing']],
  ], 'health.service(passing=True): both, with their checks');
  t.match(read['index'], /^\d+$/, 'the X-Consul-Index the library returns');
  t.match(read['leader'], /^127\.0\.0\.1:\d+$/, 'status.leader()');

  // npm consul: the same reads.
  const consul = new Consul({ host: '127.0.0.1', port: restPort(lexa), secure: true, agent: new Agent({ rejectUnauthorized: false, keepAlive: true }) });
  t.teardown(() => consul.destroy());
  t.match(await consul.agent.self(), { Config: { Datacenter: 'lexa' } }, 'agent.self()');
  t.match(await consul.catalog.service.list(), { ccweb: ['blue'], ccdb: [] }, 'catalog.service.list()');
  const blue = (await consul.health.service({ service: 'ccweb', passing: true, filter: 'Service.Tags contains blue' })) as HealthRow[];
  t.same(blue.map((h) => h.Node.Node), [`${PREFIX}web-1`], 'health.service() with a filter');

  // python3-consul blocks on ccdb. A change to ccweb must not wake it; the change to ccdb must.
  const dbIndex = String((await python('read', String(restPort(lexa)), 'ccdb'))['index']);
  const child = spawn(PYTHON, [SCRIPT, 'block', String(restPort(lexa)), 'ccdb', dbIndex], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.teardown(() => void child.kill());
  await waitFor(() => connected(child.pid!, restPort(lexa)), { what: 'python-consul to send its blocking query' });
  await lxc('config', 'set', `${PREFIX}web-1`, 'user.lexa.service.ccweb.tags', 'green');
  await waitFor(async () => (await passing(lexa, 'ccweb')).some((h) => h.Service.Tags.includes('green')), { what: 'lexa to see web-1 turn green' });
  t.equal(child.exitCode, null, 'the ccdb watcher still waits after ccweb changed');
  await lxc('config', 'set', `${PREFIX}db-1`, 'user.lexa.service.ccdb.tags', 'primary');
  t.equal(await exited, 0);
  const woke = JSON.parse(out) as { index: string; passing: HealthRow[] };
  t.same(woke.passing.map((h) => h.Service.Tags), [['primary']], 'woken by the ccdb change, with it (not by ccweb: that answer would lack the tag)');
  t.ok(BigInt(woke.index) > BigInt(dbIndex), 'a larger index');

  // npm consul blocks on ccweb. A stopped ccdb container must not wake it; a stopped ccweb one must.
  // The library's types omit its blocking options (index, wait) and ctx.includeResponse (for the index header).
  type WithResponse = [{ headers: Record<string, string> }, HealthRow[]];
  const healthService = consul.health.service.bind(consul.health) as unknown as (o: Record<string, unknown>) => Promise<WithResponse>;
  const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
  const [res] = await healthService({ service: 'ccweb', passing: true, ctx });
  const webIndex = res.headers['x-consul-index']!;
  let settled = false;
  const blocking = healthService({ service: 'ccweb', passing: true, index: webIndex, wait: '60s', ctx }).finally(() => (settled = true));
  await waitFor(() => connected(process.pid, restPort(lexa)), { what: 'the npm client to send its blocking query' });
  await lxc('stop', '--force', `${PREFIX}db-1`);
  await waitFor(async () => (await passing(lexa, 'ccdb')).length === 0, { what: 'ccdb to leave with its container' });
  t.equal(settled, false, 'the ccweb watcher still waits after ccdb left');
  await lxc('stop', '--force', `${PREFIX}web-2`);
  const [after, rows] = await blocking;
  t.same(rows.map((h) => h.Node.Node), [`${PREFIX}web-1`], 'woken by web-2 stopping, without it');
  t.ok(BigInt(after.headers['x-consul-index']!) > BigInt(webIndex), 'a larger index');
});
