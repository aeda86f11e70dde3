import t from 'tap';
import type { AgentState } from '../../src/streams/model/model.js';
import { renderConsul, type ConsulQuery } from '../../src/servers/rest/consul/render.js';
import { prometheusDocument } from '../../src/servers/rest/prometheus-sd.js';
import { fold } from '../../src/streams/index.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// The catalog mapping (docs/catalog.md) as hermetic cases: instances → Consul nodes, lexa services → Consul
// service instances with their checks, and the Prometheus SD document, from hand-built snapshots.

const web1 = instance('web-1', {
  location: 'node-1',
  interfaces: [iface('eth0', ['10.99.0.11'], ['fd42:99::11']), iface('eth1', ['10.100.0.11'])],
  services: [service('web', { port: 80, tags: ['blue', 'app'], weight: 3 }), service('metrics', { port: 9100, interface: 'eth1' })],
  agentServices: ['*'],
});
const web2 = instance('web-2', { interfaces: [iface('eth0', ['10.99.0.12'])], services: [service('web', { port: 80, tags: ['green'] })] });
const db1 = instance('db-1', { project: 'prod', type: 'virtual-machine', interfaces: [iface('eth0', [], ['fd42:99::21'])], services: [service('db', { port: 5432, proto: 'tcp' }), service('db', { port: 5432, proto: 'udp' })] });
const stopped = instance('old-1', { running: false, interfaces: [iface('eth0', ['10.99.0.99'])], services: [service('web', { port: 80 })] });
// web-1's agent announces "cache" with a failing check: not served (DNS), but listed by the catalog as critical.
const agent: AgentState = {
  session: 's1',
  connected: true,
  at: 0,
  defaultServices: [],
  services: [{ ...service('cache', { port: 6379 }), source: 'agent', health: 'critical' }, { ...service('queue', { port: 5672 }), source: 'agent', health: 'passing' }],
};
const snap = () => snapshotOf([web1, web2, db1, stopped]).withAgent('default/web-1', agent, 1);

const base = { dc: 'lexa', tags: [], nodeMeta: [], filter: null, passing: false } as const;
const render = (q: ConsulQuery) => JSON.parse(renderConsul(q, snap())) as unknown;

t.test('catalog/services: every served or critical service of a running instance, with the union of its tags', (t) => {
  t.same(render({ kind: 'services', dc: 'lexa', nodeMeta: [], filter: null }), {
    cache: [],
    db: [],
    metrics: [],
    queue: [],
    web: ['app', 'blue', 'green'],
  });
  t.same(render({ kind: 'services', dc: 'lexa', nodeMeta: [['project', 'prod']], filter: null }), { db: [] }, 'node-meta narrows to a project');
  t.same(render({ kind: 'services', dc: 'lexa', nodeMeta: [], filter: 'ServiceTags contains green' }), { web: ['green'] }, 'a filter narrows the rows before the union');
  t.end();
});

t.test('catalog/service/<name>: one row per endpoint, Consul ServiceNode fields', (t) => {
  const rows = render({ kind: 'service', name: 'web', ...base }) as Record<string, unknown>[];
  t.equal(rows.length, 2, 'the stopped instance is no node');
  t.match(rows[0], {
    Node: 'web-1',
    Address: '10.99.0.11',
    Datacenter: 'lexa',
    TaggedAddresses: { lan: '10.99.0.11', lan_ipv4: '10.99.0.11', lan_ipv6: 'fd42:99::11' },
    NodeMeta: { location: 'node-1', project: 'default', type: 'container' },
    ServiceID: 'web-1:web:80:tcp',
    ServiceName: 'web',
    ServiceTags: ['blue', 'app'],
    ServiceAddress: '10.99.0.11',
    ServicePort: 80,
    ServiceWeights: { Passing: 3, Warning: 1 },
    ServiceMeta: { source: 'config', interface: 'eth0', proto: 'tcp' },
  });
  t.match(rows[0], { ID: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/ }, 'a UUID node ID');
  t.equal(rows[1]!['Node'], 'web-2');
  const metrics = render({ kind: 'service', name: 'metrics', ...base }) as Record<string, unknown>[];
  t.equal(metrics[0]!['ServiceAddress'], '10.100.0.11', 'the service address is its interface\'s');
  t.equal(metrics[0]!['Address'], '10.99.0.11', 'the node address is the primary interface\'s');
  const db = render({ kind: 'service', name: 'db', ...base }) as Record<string, unknown>[];
  t.same(db.map((r) => [r['Node'], r['ServiceID'], r['Address']]), [
    ['db-1.prod', 'db-1.prod:db:5432:tcp', 'fd42:99::21'],
    ['db-1.prod', 'db-1.prod:db:5432:udp', 'fd42:99::21'],
  ], 'outside the default project a node is name.project; tcp and udp are two IDs');
  t.same(render({ kind: 'service', name: 'nope', ...base }), [], 'an unknown service is []');
  t.same((render({ kind: 'service', name: 'web', ...base, tags: ['green'] }) as unknown[]).length, 1, 'tag');
  t.same((render({ kind: 'service', name: 'web', ...base, tags: ['blue', 'green'] }) as unknown[]).length, 0, 'every tag must match');
  t.end();
});

t.test('health/service/<name>: serfHealth and the service check; passing leaves critical out', (t) => {
  const [cache] = render({ kind: 'health', name: 'cache', ...base }) as { Node: Record<string, unknown>; Service: Record<string, unknown>; Checks: Record<string, unknown>[] }[];
  t.match(cache?.Node, { Node: 'web-1', Address: '10.99.0.11', Meta: { project: 'default' } });
  t.match(cache?.Service, { ID: 'web-1:cache:6379:tcp', Service: 'cache', Port: 6379, Meta: { source: 'agent' } });
  t.match(cache?.Checks, [
    { CheckID: 'serfHealth', Status: 'passing', ServiceID: '' },
    { CheckID: 'service:web-1:cache:6379:tcp', Status: 'critical', ServiceName: 'cache', Output: /agent in web-1 reports a check failing/ },
  ]);
  t.same(render({ kind: 'health', name: 'cache', ...base, passing: true }), [], '?passing: the critical one is left out');
  const queue = render({ kind: 'health', name: 'queue', ...base, passing: true }) as { Checks: { Status: string }[] }[];
  t.same(queue.map((r) => r.Checks.map((c) => c.Status)), [['passing', 'passing']], 'a passing agent service');
  const web = render({ kind: 'health', name: 'web', ...base, passing: true }) as { Checks: { Output: string }[] }[];
  t.match(web[0]?.Checks[1]?.Output, /lexa runs no check/, 'a config service says nothing checks it');
  t.same((render({ kind: 'health', name: 'web', ...base, filter: 'Node.Node == "web-2"' }) as unknown[]).length, 1, 'filter on Node.Node');
  t.same((render({ kind: 'health', name: 'web', ...base, filter: 'Service.Tags contains blue and Node.Meta.location == node-1' }) as unknown[]).length, 1);
  t.end();
});

t.test('catalog/nodes and catalog/node/<node>', (t) => {
  const nodes = render({ kind: 'nodes', dc: 'lexa', nodeMeta: [], filter: null }) as Record<string, unknown>[];
  t.same(nodes.map((n) => n['Node']), ['db-1.prod', 'web-1', 'web-2'], 'running instances, sorted');
  t.same((render({ kind: 'nodes', dc: 'lexa', nodeMeta: [['type', 'virtual-machine']], filter: null }) as unknown[]).length, 1, 'node-meta');
  t.same((render({ kind: 'nodes', dc: 'lexa', nodeMeta: [], filter: 'Meta.project != default' }) as unknown[]).length, 1, 'filter on Meta');
  const node = render({ kind: 'node', dc: 'lexa', name: 'web-1', filter: null }) as { Node: Record<string, unknown>; Services: Record<string, unknown> };
  t.equal(node.Node['Node'], 'web-1');
  t.same(Object.keys(node.Services), ['web-1:cache:6379:tcp', 'web-1:metrics:9100:tcp', 'web-1:queue:5672:tcp', 'web-1:web:80:tcp']);
  t.equal(renderConsul({ kind: 'node', dc: 'lexa', name: 'DB-1.prod', filter: null }, snap()).includes('"Node":"db-1.prod"'), true, 'names are case-insensitive');
  t.equal(renderConsul({ kind: 'node', dc: 'lexa', name: 'old-1', filter: null }, snap()), 'null', 'a stopped instance: null, as Consul answers an unknown node');
  t.end();
});

t.test('renderings are byte-stable: the same content in another order gives the same bytes', (t) => {
  const other = snapshotOf([db1, stopped, web2, web1]).withAgent('default/web-1', agent, 2);
  for (const q of [
    { kind: 'services', dc: 'lexa', nodeMeta: [], filter: null },
    { kind: 'health', name: 'web', ...base },
    { kind: 'nodes', dc: 'lexa', nodeMeta: [], filter: null },
  ] as ConsulQuery[])
    t.equal(renderConsul(q, other), renderConsul(q, snap()), q.kind);
  t.equal(prometheusDocument(other, { service: null, anyHealth: true }), prometheusDocument(snap(), { service: null, anyHealth: true }), 'prometheus');
  t.end();
});

t.test('Prometheus SD: a target group per endpoint with __meta_lexa_* labels; passing only unless asked', (t) => {
  const all = JSON.parse(prometheusDocument(snap(), { service: null, anyHealth: false })) as { targets: string[]; labels: Record<string, string> }[];
  t.same(all.map((g) => g.targets[0]), ['[fd42:99::21]:5432', '[fd42:99::21]:5432', '10.100.0.11:9100', '10.99.0.11:5672', '10.99.0.11:80', '10.99.0.12:80'], 'sorted by service, node, ID; IPv6 bracketed; no critical cache');
  t.same(all.find((g) => g.labels['__meta_lexa_instance'] === 'web-1' && g.labels['__meta_lexa_service'] === 'web')?.labels, {
    __meta_lexa_service: 'web',
    __meta_lexa_instance: 'web-1',
    __meta_lexa_node: 'web-1',
    __meta_lexa_project: 'default',
    __meta_lexa_location: 'node-1',
    __meta_lexa_interface: 'eth0',
    __meta_lexa_proto: 'tcp',
    __meta_lexa_tags: ',blue,app,',
    __meta_lexa_health: 'passing',
    __meta_lexa_source: 'config',
  });
  const any = JSON.parse(prometheusDocument(snap(), { service: 'cache', anyHealth: true })) as { labels: Record<string, string> }[];
  t.same(any.map((g) => g.labels['__meta_lexa_health']), ['critical'], 'health=any includes critical');
  t.equal(prometheusDocument(snap(), { service: 'cache', anyHealth: false }), '[]', 'nothing passing: []');
  t.equal(prometheusDocument(snapshotOf([]), { service: null, anyHealth: false }), '[]');
  t.end();
});

t.test('a config service its server-side check withholds is listed critical, with the check output; ?passing and /prometheus leave it out', (t) => {
  const check = { kind: 'http' as const, path: '/health', intervalMs: 10_000, timeoutMs: 2_000, failuresBeforeCritical: 1, successBeforePassing: 1 };
  const api = (n: number) => instance(`api-${n}`, { interfaces: [iface('eth0', [`10.99.0.${40 + n}`])], services: [service('api', { port: 8080, check })] });
  const result = (n: number, status: 'passing' | 'critical', output: string) => ({
    type: 'check' as const,
    key: `default/api-${n}`,
    service: 'api',
    result: { target: `http://10.99.0.${40 + n}:8080/health`, status, output, at: 5 },
    at: 5,
  });
  let s = snapshotOf([api(1), api(2)]);
  s = fold(s, result(1, 'passing', 'HTTP GET http://10.99.0.41:8080/health: 200'));
  s = fold(s, result(2, 'critical', 'HTTP GET http://10.99.0.42:8080/health: 503'));
  t.same(s.serviceEndpoints('api').map((e) => e.instance.name), ['api-1'], 'DNS serves the passing one only');
  const rows = JSON.parse(renderConsul({ kind: 'health', name: 'api', ...base }, s)) as { Node: { Node: string }; Checks: { CheckID: string; Status: string; Output: string }[] }[];
  t.same(rows.map((r) => r.Node.Node), ['api-1', 'api-2'], 'both are listed');
  const serviceCheck = (r: (typeof rows)[number]) => r.Checks.find((c) => c.CheckID.startsWith('service:'))!;
  t.match(serviceCheck(rows[0]!), { Status: 'passing', Output: 'HTTP GET http://10.99.0.41:8080/health: 200' });
  t.match(serviceCheck(rows[1]!), { Status: 'critical', Output: 'HTTP GET http://10.99.0.42:8080/health: 503' });
  const passing = JSON.parse(renderConsul({ kind: 'health', name: 'api', ...base, passing: true }, s)) as unknown[];
  t.equal(passing.length, 1, '?passing leaves the withheld one out');
  const groups = JSON.parse(prometheusDocument(s, { service: 'api', anyHealth: false })) as { labels: Record<string, string> }[];
  t.same(groups.map((g) => g.labels['__meta_lexa_instance']), ['api-1'], '/prometheus serves the passing one only');
  const nodeRows = JSON.parse(renderConsul({ kind: 'node', dc: 'lexa', name: 'api-2', filter: null }, s)) as { Services: Record<string, unknown> };
  t.ok(Object.keys(nodeRows.Services).some((id) => id.startsWith('api-2:api:')), 'the node lists its withheld service too');
  t.end();
});
