import type { CatalogEntry, CatalogNode } from './catalog.js';
import type { Schema } from './filter.js';

/**
 * The JSON rows of Consul's HTTP API (the field names and shapes of Consul 1.x, which its client libraries decode),
 * built from catalog entries (catalog.ts), and the filter schema of each row (filter.ts).
 *
 * `CreateIndex` and `ModifyIndex` are a constant 1: a row's bytes must not move unless what it says moves, or every
 * blocking query would wake on every change. The index that matters is the response's X-Consul-Index.
 */
const ROW_INDEX = 1;

/** Consul's check of a node's liveness; here: the instance runs (stopped instances are not nodes at all). */
export const SERF_CHECK_ID = 'serfHealth';

/** `/v1/catalog/nodes` rows, and `Node` of a health row. */
export function nodeRow(node: CatalogNode, dc: string) {
  return {
    ID: node.id,
    Node: node.name,
    Address: node.address,
    Datacenter: dc,
    TaggedAddresses: taggedAddresses(node.ipv4, node.ipv6),
    Meta: { ...node.meta },
    CreateIndex: ROW_INDEX,
    ModifyIndex: ROW_INDEX,
  };
}

export const NODE_SCHEMA: Schema = { ID: 'value', Node: 'value', Address: 'value', Datacenter: 'value', TaggedAddresses: 'map', Meta: 'map' };

/** `Service` of a health row, and the values of `/v1/catalog/node/<node>`'s `Services`. */
export function serviceRow(e: CatalogEntry) {
  return {
    ID: e.id,
    Service: e.service.name,
    Tags: [...e.service.tags],
    Address: e.address,
    TaggedAddresses: serviceTaggedAddresses(e),
    Meta: serviceMeta(e),
    Port: e.service.port,
    Weights: weights(e),
    EnableTagOverride: false,
    CreateIndex: ROW_INDEX,
    ModifyIndex: ROW_INDEX,
  };
}

export const SERVICE_SCHEMA: Schema = {
  ID: 'value',
  Service: 'value',
  Tags: 'list',
  Address: 'value',
  Meta: 'map',
  Port: 'value',
  Weights: { Passing: 'value', Warning: 'value' },
  EnableTagOverride: 'value',
};

/** `/v1/catalog/service/<name>` rows (Consul's ServiceNode: node and service fields side by side). */
export function catalogServiceRow(e: CatalogEntry, dc: string) {
  return {
    ID: e.node.id,
    Node: e.node.name,
    Address: e.node.address,
    Datacenter: dc,
    TaggedAddresses: taggedAddresses(e.node.ipv4, e.node.ipv6),
    NodeMeta: { ...e.node.meta },
    ServiceKind: '',
    ServiceID: e.id,
    ServiceName: e.service.name,
    ServiceTags: [...e.service.tags],
    ServiceAddress: e.address,
    ServiceTaggedAddresses: serviceTaggedAddresses(e),
    ServiceWeights: weights(e),
    ServiceMeta: serviceMeta(e),
    ServicePort: e.service.port,
    ServiceEnableTagOverride: false,
    CreateIndex: ROW_INDEX,
    ModifyIndex: ROW_INDEX,
  };
}

export const CATALOG_SERVICE_SCHEMA: Schema = {
  ID: 'value',
  Node: 'value',
  Address: 'value',
  Datacenter: 'value',
  TaggedAddresses: 'map',
  NodeMeta: 'map',
  ServiceKind: 'value',
  ServiceID: 'value',
  ServiceName: 'value',
  ServiceTags: 'list',
  ServiceAddress: 'value',
  ServiceWeights: { Passing: 'value', Warning: 'value' },
  ServiceMeta: 'map',
  ServicePort: 'value',
  ServiceEnableTagOverride: 'value',
};

/** `/v1/health/service/<name>` rows: the node, the service, and its two checks (the node's and the service's). */
export function healthRow(e: CatalogEntry, dc: string) {
  const check = (id: string, name: string, status: string, output: string, service: boolean) => ({
    Node: e.node.name,
    CheckID: id,
    Name: name,
    Status: status,
    Notes: '',
    Output: output,
    ServiceID: service ? e.id : '',
    ServiceName: service ? e.service.name : '',
    ServiceTags: service ? [...e.service.tags] : [],
    Type: service ? 'lexa' : '',
    CreateIndex: ROW_INDEX,
    ModifyIndex: ROW_INDEX,
  });
  return {
    Node: nodeRow(e.node, dc),
    Service: serviceRow(e),
    Checks: [
      check(SERF_CHECK_ID, 'Serf Health Status', 'passing', `LXD reports ${e.node.name} running`, false),
      check(`service:${e.id}`, `Service '${e.service.name}' check`, e.health, e.output, true),
    ],
  };
}

export const HEALTH_SCHEMA: Schema = { Node: NODE_SCHEMA, Service: SERVICE_SCHEMA };

function weights(e: CatalogEntry) {
  return { Passing: e.service.weight, Warning: 1 };
}

function serviceMeta(e: CatalogEntry) {
  return { source: e.service.source, interface: e.iface.name, proto: e.service.proto };
}

/** Consul's node TaggedAddresses: `lan`/`wan` (the node's address) and the per-family ones. */
function taggedAddresses(ipv4: string | undefined, ipv6: string | undefined): Record<string, string> {
  const first = ipv4 ?? ipv6;
  return {
    ...(first === undefined ? {} : { lan: first, wan: first }),
    ...(ipv4 === undefined ? {} : { lan_ipv4: ipv4, wan_ipv4: ipv4 }),
    ...(ipv6 === undefined ? {} : { lan_ipv6: ipv6, wan_ipv6: ipv6 }),
  };
}

function serviceTaggedAddresses(e: CatalogEntry): Record<string, { Address: string; Port: number }> {
  const out: Record<string, { Address: string; Port: number }> = {};
  const v4 = e.iface.trustedIpv4[0];
  const v6 = e.iface.trustedIpv6[0];
  if (v4 !== undefined) out['lan_ipv4'] = { Address: v4, Port: e.service.port };
  if (v6 !== undefined) out['lan_ipv6'] = { Address: v6, Port: e.service.port };
  return out;
}
