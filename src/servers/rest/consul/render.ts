import type { Instance, View } from '../../../streams/index.js';
import { allEntries, instanceEntries, instanceOfNode, nodeOf, nodesOf, serviceEntries, type CatalogEntry } from './catalog.js';
import { matches, parseFilter, type Filter, type Schema } from './filter.js';
import { CATALOG_SERVICE_SCHEMA, catalogServiceRow, healthRow, HEALTH_SCHEMA, NODE_SCHEMA, nodeRow, SERVICE_SCHEMA, serviceRow } from './rows.js';

/**
 * One Consul read, as the route parsed it: everything its answer depends on besides the snapshot. It is also the
 * blocking-query document's key (JSON), so two clients asking the same thing share one document and one index,
 * and a change that leaves an answer's bytes alone wakes none of its watchers.
 */
export type ConsulQuery =
  | { readonly kind: 'self'; readonly dc: string; readonly node: string; readonly version: string }
  | { readonly kind: 'leader' | 'peers'; readonly address: string }
  | { readonly kind: 'datacenters'; readonly dc: string; readonly sites: readonly string[] }
  | { readonly kind: 'services' | 'nodes'; readonly dc: string; readonly site?: Scope; readonly nodeMeta: readonly Pair[]; readonly filter: string | null }
  | {
      readonly kind: 'service' | 'health';
      readonly dc: string;
      readonly site?: Scope;
      readonly name: string;
      readonly tags: readonly string[];
      readonly nodeMeta: readonly Pair[];
      readonly filter: string | null;
      /** Only `health`: leave out entries with a critical check. */
      readonly passing: boolean;
    }
  | { readonly kind: 'node'; readonly dc: string; readonly site?: Scope; readonly name: string; readonly filter: string | null };

/**
 * The site a read is limited to (`?dc=<site>`: Consul clients see each named site as a datacenter), or null: the
 * configured datacenter, every site.
 */
export type Scope = string | null;

/** Whether `inst` is in `scope`. */
const inScope = (scope: Scope | undefined, inst: Instance) => scope == null || inst.site === scope;

/** A `node-meta=key:value` condition. */
export type Pair = readonly [key: string, value: string];

/**
 * The Consul API version lexa's answers follow (field names and shapes): what `/v1/agent/self` reports as
 * `Config.Version`, since clients compare it against the versions that introduced what they use.
 */
export const CONSUL_API_VERSION = '1.17.0';

/** The schema a query's `filter` is checked against and evaluated on (the rows it filters). */
export function schemaOf(kind: ConsulQuery['kind']): Schema | undefined {
  switch (kind) {
    case 'services':
    case 'service':
      return CATALOG_SERVICE_SCHEMA;
    case 'health':
      return HEALTH_SCHEMA;
    case 'nodes':
      return NODE_SCHEMA;
    case 'node':
      return SERVICE_SCHEMA;
    default:
      return undefined;
  }
}

/**
 * The JSON body answering `q` from `snap`: a pure function, byte-stable (rows sorted by node then service ID,
 * object keys in a fixed order). The filter must have been checked against `schemaOf(q.kind)` already (the route
 * answers 400 before any document exists).
 */
export function renderConsul(q: ConsulQuery, snap: View): string {
  switch (q.kind) {
    case 'self':
      return JSON.stringify({
        Config: { Datacenter: q.dc, NodeName: q.node, NodeID: '', Revision: 'lexa', Server: false, Version: CONSUL_API_VERSION },
        Member: { Name: q.node, Addr: '', Port: 0, Tags: { dc: q.dc, role: 'node' }, Status: 1 },
        Meta: { 'lexa-version': q.version },
      });
    case 'leader':
      return JSON.stringify(q.address);
    case 'peers':
      return JSON.stringify([q.address]);
    case 'datacenters':
      return JSON.stringify([q.dc, ...q.sites]);
    case 'services': {
      const keep = rowTest(q.filter, 'services');
      const tags = new Map<string, Set<string>>();
      for (const e of allEntries(snap)) {
        if (!inScope(q.site, e.instance) || !metaMatches(q.nodeMeta, e) || (q.filter !== null && !keep(catalogServiceRow(e, q.dc)))) continue;
        let set = tags.get(e.service.name);
        if (set === undefined) tags.set(e.service.name, (set = new Set()));
        for (const t of e.service.tags) set.add(t);
      }
      const out: Record<string, string[]> = {};
      for (const name of [...tags.keys()].sort()) out[name] = [...tags.get(name)!].sort();
      return JSON.stringify(out);
    }
    case 'nodes': {
      const keep = rowTest(q.filter, 'nodes');
      const rows = nodesOf(snap, (i) => inScope(q.site, i))
        .filter((n) => q.nodeMeta.every(([k, v]) => (n.meta as Record<string, string>)[k] === v))
        .map((n) => nodeRow(n, q.dc))
        .filter(keep);
      return JSON.stringify(rows);
    }
    case 'node': {
      const inst = instanceOfNode(snap, q.name);
      if (inst === undefined || !inScope(q.site, inst)) return 'null';
      const keep = rowTest(q.filter, 'node');
      const services: Record<string, ReturnType<typeof serviceRow>> = {};
      for (const e of instanceEntries(snap, inst)) {
        const row = serviceRow(e);
        if (keep(row)) services[e.id] = row;
      }
      return JSON.stringify({ Node: nodeRow(nodeOf(inst), q.dc), Services: services });
    }
    case 'service':
    case 'health': {
      const keep = rowTest(q.filter, q.kind);
      const rows: unknown[] = [];
      for (const e of serviceEntries(snap, q.name)) {
        if ((q.passing && e.health !== 'passing') || !inScope(q.site, e.instance)) continue;
        if (!q.tags.every((t) => e.service.tags.includes(t)) || !metaMatches(q.nodeMeta, e)) continue;
        const row = q.kind === 'service' ? catalogServiceRow(e, q.dc) : healthRow(e, q.dc);
        if (keep(row)) rows.push(row);
      }
      return JSON.stringify(rows);
    }
  }
}

function metaMatches(pairs: readonly Pair[], e: CatalogEntry): boolean {
  return pairs.every(([k, v]) => (e.node.meta as Record<string, string>)[k] === v);
}

function rowTest(filter: string | null, kind: ConsulQuery['kind']): (row: unknown) => boolean {
  if (filter === null) return () => true;
  const parsed: Filter = parseFilter(filter, schemaOf(kind)!);
  return (row) => matches(parsed, row);
}

/**
 * What the answer to `q` is made of, for Documents' `depends`: parts of the snapshot that persistent structures
 * keep (by identity) while unrelated parts change, so a watcher of one service or node costs nothing when another
 * changes. Undefined for the reads over everything (`services`, `nodes`): they are rendered on every change.
 * The parts must cover everything renderConsul reads for `q`: a service's endpoints (its instances, their
 * interfaces and served services), the agent states and check states that can add a critical entry for it.
 */
export function consulDependencies(q: ConsulQuery, snap: View): readonly unknown[] | undefined {
  switch (q.kind) {
    case 'self':
    case 'leader':
    case 'peers':
    case 'datacenters':
      return [];
    case 'services':
    case 'nodes':
      return undefined;
    case 'node': {
      const inst = instanceOfNode(snap, q.name);
      return inst === undefined ? [undefined] : [inst, snap.agents.get(inst.key), snap.checks.get(inst.key)];
    }
    case 'service':
    case 'health': {
      const parts: unknown[] = [snap.serviceEndpoints(q.name)];
      const named = (services: readonly { readonly name: string }[] | undefined) => services?.some((s) => s.name.toLowerCase() === q.name) === true;
      for (const [key, agent] of snap.agents) if (named(agent.services)) parts.push(key, agent, snap.instances.get(key));
      for (const [key, checks] of snap.checks) {
        const inst = snap.instances.get(key);
        if (named(inst?.declared)) parts.push(key, inst, checks);
      }
      return parts;
    }
  }
}
