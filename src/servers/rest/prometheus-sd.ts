import type { View } from '../../streams/index.js';
import { allEntries, serviceEntries, type CatalogEntry } from './consul/catalog.js';

/**
 * Prometheus HTTP service discovery (`http_sd_configs`), served at `GET /prometheus[?service=<name>][&health=any]`:
 *
 *   [{"targets":["10.99.0.5:9100"],"labels":{"__meta_lexa_service":"metrics","__meta_lexa_instance":"web-1",...}}]
 *
 * one target group per service endpoint (the catalog's entries, consul/catalog.ts), with these labels, which
 * Prometheus drops after relabelling unless a rule keeps them:
 *   __meta_lexa_service    the service name          __meta_lexa_instance   the instance's name
 *   __meta_lexa_project    its LXD project           __meta_lexa_location   its cluster member ("none" standalone)
 *   __meta_lexa_interface  the service's interface   __meta_lexa_proto      tcp or udp
 *   __meta_lexa_tags       the tags as ",a,b," (Consul SD's shape, ",," without tags)
 *   __meta_lexa_health     passing or critical       __meta_lexa_source     config or agent
 *   __meta_lexa_node       the Consul node name (name, or name.project outside the default project)
 *
 * Passing endpoints only, unless `health=any`. The target is the interface's first address LXD vouches for
 * (IPv4 before IPv6, bracketed) and the service's port. Byte-stable: groups sorted by service, node, port and
 * proto; the same snapshot content gives the same bytes. `[]` when nothing matches.
 */
export interface PrometheusQuery {
  /** Lower-cased service name, or null for every service. */
  readonly service: string | null;
  /** Whether critical endpoints are included. */
  readonly anyHealth: boolean;
}

export function prometheusDocument(snap: View, q: PrometheusQuery): string {
  const entries = q.service === null ? allEntries(snap) : serviceEntries(snap, q.service);
  const groups = entries
    .filter((e) => q.anyHealth || e.health === 'passing')
    .sort((a, b) => cmp(a.service.name, b.service.name) || cmp(a.node.name, b.node.name) || cmp(a.id, b.id))
    .map(groupOf);
  return JSON.stringify(groups);
}

function groupOf(e: CatalogEntry) {
  const host = e.address.includes(':') ? `[${e.address}]` : e.address;
  return {
    targets: [`${host}:${e.service.port}`],
    labels: {
      __meta_lexa_service: e.service.name,
      __meta_lexa_instance: e.instance.name,
      __meta_lexa_node: e.node.name,
      __meta_lexa_project: e.node.meta.project,
      __meta_lexa_location: e.node.meta.location,
      __meta_lexa_interface: e.iface.name,
      __meta_lexa_proto: e.service.proto,
      __meta_lexa_tags: `,${e.service.tags.join(',')},`,
      __meta_lexa_health: e.health,
      __meta_lexa_source: e.service.source,
      // The site (docs/sites.md) of a named site's instance; an unnamed site's instances carry none.
      ...(e.instance.site === undefined ? {} : { __meta_lexa_site: e.instance.site }),
    },
  };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
