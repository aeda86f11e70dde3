import t from 'tap';
import { renderConsul, type ConsulQuery } from '../../src/servers/rest/consul/render.js';
import { prometheusDocument } from '../../src/servers/rest/prometheus-sd.js';
import type { Instance } from '../../src/streams/model/model.js';
import { Federation } from '../../src/streams/state/federation.js';
import { iface, instance, service, snapshotOf } from '../helpers/model.js';

// The Consul catalog over sites (docs/sites.md, docs/catalog.md): each named site is a datacenter of its own to a
// Consul client (`?dc=<site>`), the configured datacenter holds them all; node names read as DNS names do, so two
// sites' `web` are two nodes; Node.Meta and /prometheus carry the site. Hand-built sites, no LXD.
const at = (site: string, name: string, ip: string, over: Partial<Instance> = {}): Instance =>
  instance(name, { key: `${site}/default/${name}`, site, interfaces: [iface('eth0', [ip])], services: [service('http', { port: 80 })], ...over });
const view = new Federation(
  [
    { name: 'home', snapshot: snapshotOf([at('home', 'web', '10.99.0.10'), at('home', 'api', '10.99.0.11', { project: 'prod', key: 'home/prod/api' })]) },
    { name: 'rack', snapshot: snapshotOf([at('rack', 'web', '10.77.0.20')]) },
  ],
  1,
);
const render = <T>(q: ConsulQuery) => JSON.parse(renderConsul(q, view)) as T;
const health = (site: string | null) => ({ kind: 'health' as const, dc: site ?? 'lexa', site, name: 'http', tags: [], nodeMeta: [], filter: null, passing: false });

t.test('each site is a datacenter; the configured one holds every site', async (t) => {
  t.same(render({ kind: 'datacenters', dc: 'lexa', sites: ['home', 'rack'] }), ['lexa', 'home', 'rack']);
  type Row = { Node: { Node: string; Datacenter: string; Meta: Record<string, string> }; Service: { Address: string } };
  const all = render<Row[]>(health(null));
  t.same(all.map((r) => r.Node.Node), ['api.prod.home', 'web.home', 'web.rack'], "node names read as the instances' DNS names");
  t.same(all.map((r) => r.Node.Meta['site']), ['home', 'home', 'rack'], 'Node.Meta carries the site');
  const rack = render<Row[]>(health('rack'));
  t.same(rack.map((r) => [r.Node.Node, r.Node.Datacenter, r.Service.Address]), [['web.rack', 'rack', '10.77.0.20']], '?dc=rack: that site alone');
  t.same(render<Record<string, string[]>>({ kind: 'services', dc: 'home', site: 'home', nodeMeta: [], filter: null }), { http: [] });
  type NodeDoc = { Node: { Node: string } } | null;
  t.equal(render<NodeDoc>({ kind: 'node', dc: 'lexa', site: null, name: 'web.rack', filter: null })?.Node.Node, 'web.rack');
  t.equal(render<NodeDoc>({ kind: 'node', dc: 'home', site: 'home', name: 'web.rack', filter: null }), null, "another site's node is not in ?dc=home");
  const groups = JSON.parse(prometheusDocument(view, { service: 'http', anyHealth: false })) as { labels: Record<string, string> }[];
  t.same(groups.map((g) => g.labels['__meta_lexa_site']), ['home', 'home', 'rack'], '/prometheus labels the site');
});
