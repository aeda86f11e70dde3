import t from 'tap';
import { defaultRule, restApp, servicePassing, traefikDocument } from '../../src/servers/rest/index.js';
import { NO_TRAEFIK_LABELS, parseTraefikKeys, Snapshot, toInstance, type Instance } from '../../src/streams/index.js';
import { lxdInstance as lxd } from '../helpers/fake-lxd.js';
import { deepFreeze, service, snapshotOf, instance, iface } from '../helpers/model.js';
import { traefikSchemaErrors } from '../helpers/traefik-schema.js';

// /traefik: user.traefik.* labels → the model (src/streams/model/traefik-labels.ts), and a snapshot → Traefik's dynamic
// configuration (src/servers/rest/traefik.ts). Everything here is built from LXD-shaped instances through the same
// toInstance the reflector uses; no LXD is involved.

type Doc = {
  http: { routers: Record<string, Record<string, unknown>>; services: Record<string, { loadBalancer: Record<string, unknown> & { servers: { url: string }[] } }> };
  tcp: { routers: Record<string, Record<string, unknown>>; services: Record<string, { loadBalancer: { servers: { address: string }[] } }> };
};

const inst = (name: string, v4: string | undefined, config: Record<string, string>, extra: { status?: string; v6?: string } = {}): Instance =>
  deepFreeze(toInstance(lxd(name, { v4, config, ...extra })));
const docOf = (instances: Instance[], suffix = 'lexa'): Doc => {
  const d = traefikDocument(snapshotOf(instances), suffix);
  return JSON.parse(d.body) as Doc;
};
const HTTP80 = { 'user.lexa.service.http.port': '80' };

t.test('labels: Traefik grammar, case-insensitive options, camelCase out, errors named by key', async (t) => {
  const svcs = [service('http', { port: 80 }), service('pg', { port: 5432 })];
  const p = parseTraefikKeys(
    {
      'user.traefik.http.routers.web.rule': 'Host(`app.example.com`) && PathPrefix(`/api`)',
      'user.traefik.http.routers.web.service': 'http',
      'user.traefik.http.routers.web.EntryPoints': 'web, websecure',
      'user.traefik.http.routers.web.middlewares': 'auth@file,compress@file',
      'user.traefik.http.routers.web.priority': '10',
      'user.traefik.http.routers.web.tls': 'true',
      'user.traefik.http.routers.web.tls.certresolver': 'le',
      'user.traefik.http.routers.web.tls.domains[0].main': 'example.com',
      'user.traefik.http.routers.web.tls.domains[0].sans': 'a.example.com,b.example.com',
      'user.traefik.http.services.HTTP.loadbalancer.server.scheme': 'https',
      'user.traefik.http.services.http.loadbalancer.passhostheader': 'false',
      'user.traefik.http.services.http.loadbalancer.healthcheck.path': '/health',
      'user.traefik.tcp.routers.db.rule': 'HostSNI(`db.example.com`)',
      'user.traefik.tcp.routers.db.service': 'pg',
      'user.traefik.tcp.routers.db.tls.passthrough': 'true',
      'user.lexa.service.http.port': '80',
    },
    svcs,
  );
  t.same(p.errors, []);
  t.same(p.traefik.http.routers['web'], {
    rule: 'Host(`app.example.com`) && PathPrefix(`/api`)',
    service: 'http',
    entryPoints: ['web', 'websecure'],
    middlewares: ['auth@file', 'compress@file'],
    priority: 10,
    tls: { certResolver: 'le', domains: [{ main: 'example.com', sans: ['a.example.com', 'b.example.com'] }] },
  });
  t.same(p.traefik.http.services['http'], { scheme: 'https', loadBalancer: { passHostHeader: false, healthCheck: { path: '/health' } } });
  t.same(p.traefik.tcp.routers['db'], { rule: 'HostSNI(`db.example.com`)', service: 'pg', tls: { passthrough: true } });
  t.equal(p.traefik.enabled, true);

  const bad = parseTraefikKeys(
    {
      'user.traefik.enable': 'maybe',
      'user.traefik.http.routers.r1.rule': 'Host(`x`)', // two tcp services and no `service`: ambiguous
      'user.traefik.http.routers.r2.service': 'nope',
      'user.traefik.http.routers.r3.service': 'http',
      'user.traefik.http.routers.r3.priority': 'high',
      'user.traefik.http.routers.r3.colour': 'blue',
      'user.traefik.http.routers.bad@name.rule': 'x',
      'user.traefik.http.services.http.loadbalancer.server.port': '8080',
      'user.traefik.http.services.http.loadbalancer.server.scheme': 'gopher',
      'user.traefik.http.middlewares.auth.basicauth.users': 'u:p',
      'user.traefik.udp.routers.u.service': 'dns',
      'user.traefik.tcp.routers.t.service': 'dns',
    },
    [...svcs, service('dns', { proto: 'udp', port: 53 })],
  );
  const byKey = (k: string) => bad.errors.filter((e) => e.startsWith(`${k}: `));
  t.match(byKey('user.traefik.enable'), [/must be true or false/]);
  t.match(byKey('user.traefik.http.routers.r1.service'), [/missing, and the instance offers several tcp services \(http, pg\); router "r1" ignored/]);
  t.match(byKey('user.traefik.http.routers.r2.service'), [/no service "nope" on this instance \(declare user.lexa.service.nope.port\)/]);
  t.match(byKey('user.traefik.http.routers.r3.priority'), [/"high" is not a whole number/]);
  t.match(byKey('user.traefik.http.routers.r3.colour'), [/unknown option "colour"/]);
  t.match(byKey('user.traefik.http.routers.bad@name.rule'), [/not a router name/]);
  t.match(byKey('user.traefik.http.services.http.loadbalancer.server.port'), [/the port comes from user.lexa.service.http.port/]);
  t.match(byKey('user.traefik.http.services.http.loadbalancer.server.scheme'), [/must be http, https or h2c/]);
  t.match(byKey('user.traefik.http.middlewares.auth.basicauth.users'), [/refer to them as <name>@file/]);
  t.match(byKey('user.traefik.udp.routers.u.service'), [/udp routing is not served/]);
  t.match(byKey('user.traefik.tcp.routers.t.service'), [/"dns" is udp only/]);
  t.equal(bad.errors.length, 11, bad.errors.join('\n'));
  t.same(Object.keys(bad.traefik.http.routers), ['r3'], 'a router with a bad option keeps its good ones; unresolvable routers are dropped');
  t.same(bad.traefik.http.routers['r3'], { service: 'http' });

  t.equal(parseTraefikKeys({ 'user.traefik.enable': 'FALSE' }, []).traefik.enabled, false);
  t.same(parseTraefikKeys(null, []).errors, []);
  const one = parseTraefikKeys({ 'user.traefik.http.routers.r.rule': 'Host(`a`)' }, [service('http')]);
  t.same(one.traefik.http.routers['r'], { rule: 'Host(`a`)', service: 'http' }, "a router's service defaults to the one tcp service");
  t.same(toInstance(lxd('x', { config: { 'user.traefik.http.routers.r.nope': '1' } })).configErrors.length, 2, 'errors reach the instance (reflector logs them)');
});

t.test('no labels: one HTTP service per lexa tcp service, with the documented default rule', async (t) => {
  const doc = docOf([
    inst('web-2', '10.0.0.12', HTTP80),
    inst('web-1', '10.0.0.11', { ...HTTP80, 'user.lexa.service.dns.port': '53', 'user.lexa.service.dns.proto': 'udp' }),
    inst('plain', '10.0.0.13', {}),
  ]);
  t.same(doc, {
    http: {
      routers: { http: { rule: 'Host(`http.service.lexa`)', service: 'http' } },
      services: { http: { loadBalancer: { servers: [{ url: 'http://10.0.0.11:80' }, { url: 'http://10.0.0.12:80' }] } } },
    },
    tcp: { routers: {}, services: {} },
  });
  t.equal(defaultRule('http', 'example.internal'), 'Host(`http.service.example.internal`)');
  t.same(traefikSchemaErrors(doc), []);
});

t.test('labelled HTTP and TCP routing; IPv6-only servers in brackets; schema-valid', async (t) => {
  const labels = {
    ...HTTP80,
    'user.lexa.service.pg.port': '5432',
    'user.traefik.http.routers.app.rule': 'Host(`app.example.com`)',
    'user.traefik.http.routers.app.service': 'http',
    'user.traefik.http.routers.app.tls': 'true',
    'user.traefik.http.services.http.loadbalancer.server.scheme': 'https',
    'user.traefik.http.services.http.loadbalancer.healthcheck.path': '/healthz',
    'user.traefik.tcp.routers.db.service': 'pg',
    'user.traefik.tcp.services.pg.loadbalancer.proxyprotocol.version': '2',
  };
  const doc = docOf([inst('a', '10.0.0.1', labels), inst('b', undefined, labels, { v6: 'fd42::b' })]);
  t.same(doc, {
    http: {
      routers: { app: { rule: 'Host(`app.example.com`)', service: 'http', tls: {} } },
      services: {
        http: { loadBalancer: { healthCheck: { path: '/healthz' }, servers: [{ url: 'https://10.0.0.1:80' }, { url: 'https://[fd42::b]:80' }] } },
      },
    },
    tcp: {
      routers: { db: { rule: 'HostSNI(`*`)', service: 'pg' } },
      services: { pg: { loadBalancer: { proxyProtocol: { version: 2 }, servers: [{ address: '10.0.0.1:5432' }, { address: '[fd42::b]:5432' }] } } },
    },
  }, 'pg is TCP only (no default HTTP router for it), http is HTTP; routers declared by two instances alike are one');
  t.same(traefikSchemaErrors(doc), []);
});

t.test('only running, enabled instances with an address, and passing services', async (t) => {
  const base = snapshotOf([
    inst('up', '10.0.0.1', HTTP80),
    inst('down', '10.0.0.2', HTTP80, { status: 'Stopped' }),
    inst('off', '10.0.0.3', { ...HTTP80, 'user.traefik.enable': 'false' }),
    inst('noaddr', undefined, HTTP80),
    deepFreeze(instance('sick', { interfaces: [iface('eth0', ['10.0.0.4'])] })),
    deepFreeze(instance('well', { interfaces: [iface('eth0', ['10.0.0.5'])], traefik: { ...NO_TRAEFIK_LABELS, agents: true } })),
  ]);
  // Services their agents announce: one failing its checks, one passing.
  const agentHttp = (health: 'passing' | 'critical') => ({ ...service('http', { port: 80 }), source: 'agent' as const, health });
  const snap = base
    .withAgent('default/sick', { session: 's1', connected: true, services: [agentHttp('critical')], defaultServices: ['*'], at: 1 })
    .withAgent('default/well', { session: 's2', connected: true, services: [agentHttp('passing')], defaultServices: ['*'], at: 1 });
  const doc = JSON.parse(traefikDocument(snap, 'lexa').body) as Doc;
  t.same(doc.http.services['http']?.loadBalancer.servers, [{ url: 'http://10.0.0.1:80' }, { url: 'http://10.0.0.5:80' }]);
  t.equal(servicePassing(agentHttp('critical')), false, 'a critical agent service is not passing');
  t.equal(servicePassing(service('http')), true, 'a config service has no checks: passing');
  const none = docOf([inst('down', '10.0.0.2', HTTP80, { status: 'Stopped' })]);
  t.same(none, { http: { routers: {}, services: {} }, tcp: { routers: {}, services: {} } }, 'no servers: neither service nor router (the schema wants ≥ 1 server)');
  t.same(traefikSchemaErrors(none), []);
});

t.test('conflicting declarations leave the router out and say so; others stay', async (t) => {
  const a = inst('a', '10.0.0.1', { ...HTTP80, 'user.traefik.http.routers.web.rule': 'Host(`a.example`)' });
  const b = inst('b', '10.0.0.2', { ...HTTP80, 'user.traefik.http.routers.web.rule': 'Host(`b.example`)' });
  const c = inst('c', '10.0.0.3', { ...HTTP80, 'user.traefik.http.routers.other.rule': 'Host(`c.example`)' });
  const d = traefikDocument(snapshotOf([a, b, c]), 'lexa');
  const doc = JSON.parse(d.body) as Doc;
  t.same(Object.keys(doc.http.routers), ['other']);
  t.equal(doc.http.services['http']?.loadBalancer.servers.length, 3);
  t.same(d.problems, ['http router "web" is declared differently by default/a and default/b; left out']);
});

t.test('byte-stable: the same configuration gives the same bytes whatever the order of instances and keys', async (t) => {
  const cfgs: Record<string, string>[] = [
    { ...HTTP80, 'user.traefik.http.routers.r.rule': 'Host(`x`)', 'user.traefik.http.routers.r.entrypoints': 'web', 'user.traefik.http.routers.r.tls': 'true', 'user.traefik.http.routers.r.tls.certresolver': 'le' },
    { ...HTTP80, 'user.traefik.http.routers.r.tls.certresolver': 'le', 'user.traefik.http.routers.r.tls': 'true', 'user.traefik.http.routers.r.entrypoints': 'web', 'user.traefik.http.routers.r.rule': 'Host(`x`)' },
  ];
  const build = (order: number[], cfg: Record<string, string>) => {
    let snap = Snapshot.empty().withList([], [], false, 1);
    // Addresses in another order than the names, so sorting by instance is not enough.
    for (const i of order) snap = snap.withInstance(inst(`n${i}`, `10.0.${50 - i}.1`, cfg));
    return traefikDocument(snap, 'lexa').body;
  };
  const first = build([1, 2, 3, 10, 20], cfgs[0]!);
  t.equal(build([20, 3, 10, 1, 2], cfgs[1]!), first);
  t.equal(build([10, 1, 20, 2, 3], cfgs[0]!), first);
  t.match(first, /^\{"http":\{"routers":\{"r":\{"entryPoints":\["web"\],"rule":"Host\(`x`\)","service":"http","tls":\{"certResolver":"le"\}\}\}/);
  const urls = [...first.matchAll(/http:\/\/([\d.]+):80/g)].map((m) => m[1]);
  t.same(urls, ['10.0.30.1', '10.0.40.1', '10.0.47.1', '10.0.48.1', '10.0.49.1'], 'servers sorted');
  t.same(traefikSchemaErrors(JSON.parse(first)), []);
});

t.test('the schema check can fail: what it rejects', async (t) => {
  t.not(traefikSchemaErrors({ http: { routers: { r: { rule: 'x' } } } }).length, 0, 'router without service');
  t.not(traefikSchemaErrors({ http: { services: { s: { loadBalancer: { servers: [] } } } } }).length, 0, 'no servers');
  t.not(traefikSchemaErrors({ http: { routers: { r: { rule: 'x', service: 's', entrypoints: ['web'] } } } }).length, 0, 'lower-case option');
  t.not(traefikSchemaErrors({ tcp: { services: { s: { loadBalancer: { servers: [{ url: 'x' }] } } } } }).length, 0, 'tcp server needs address');
});

t.test('GET /traefik on the app: 503 before the first list, cached per snapshot, problems logged once per change', async (t) => {
  const lines: string[] = [];
  const log = { warn: (_m: string, f?: Record<string, unknown>) => void lines.push(String(f?.['problem'])) } as never;
  let snap = Snapshot.empty();
  const app = restApp({ suffix: 'lexa', snapshot: () => snap, log });
  const server = app.listen(0, '127.0.0.1');
  t.teardown(() => void server.close());
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/traefik`;
  t.equal((await fetch(url)).status, 503);
  const a = inst('a', '10.0.0.1', { ...HTTP80, 'user.traefik.http.routers.web.rule': 'Host(`a`)' });
  const b = inst('b', '10.0.0.2', { ...HTTP80, 'user.traefik.http.routers.web.rule': 'Host(`b`)' });
  snap = snapshotOf([a, b]);
  const r1 = await fetch(url);
  t.equal(r1.status, 200);
  t.match(r1.headers.get('content-type'), /application\/json/);
  const body = await r1.text();
  t.equal(await (await fetch(url)).text(), body);
  t.equal(lines.length, 1, 'logged once, not per poll');
  snap = snap.withConnected(true);
  await fetch(url);
  t.equal(lines.length, 1, 'an unchanged conflict is not logged again');
  t.equal((await fetch(url, { method: 'POST' })).status, 405);
});

t.test('an agent service joins /traefik only where the instance opts in with user.traefik.enable=true', async (t) => {
  // The attack: a container whose agent may announce `http` (it is allowed, it serves DNS) must not join the load
  // balancer of another application's config-declared `http` unless its operator said so in its own LXD config.
  const app = inst('app', '10.0.0.1', HTTP80);
  const intruder = inst('intruder', '10.0.0.9', { 'user.lexa.agent.services': 'http' });
  const opted = inst('opted', '10.0.0.7', { 'user.lexa.agent.services': 'http', 'user.traefik.enable': 'true' });
  const http = { ...service('http', { port: 80 }), source: 'agent' as const, health: 'passing' as const };
  const snap = snapshotOf([app, intruder, opted])
    .withAgent('default/intruder', { session: 's1', connected: true, services: [http], defaultServices: [], at: 1 })
    .withAgent('default/opted', { session: 's2', connected: true, services: [http], defaultServices: [], at: 1 });
  t.same(snap.serviceEndpoints('http').map((e) => e.instance.name).sort(), ['app', 'intruder', 'opted'], 'all three serve http in DNS');
  const doc = JSON.parse(traefikDocument(snap, 'lexa').body) as Doc;
  t.same(doc.http.services['http']?.loadBalancer.servers, [{ url: 'http://10.0.0.1:80' }, { url: 'http://10.0.0.7:80' }], 'the agent service without the opt-in stays out');
  t.equal(intruder.traefik.agents, false, 'absent user.traefik.enable: config services only');
  t.equal(inst('off', '10.0.0.3', { 'user.traefik.enable': 'false' }).traefik.agents, false, 'enable=false: nothing');
});
