import { siteZone, type Instance, type View } from '../../streams/index.js';

/**
 * The `/containers/` document, in the original lexa's shape so existing Traefik transformers keep working:
 *   {"hosts":[{"name":"<host>.<suffix>","interfaces":{"ipv4":[{"eth0":"..."}],"ipv6":[...]},"services":[...]|null}]}
 * Additions that break nobody: `project` and `location` on a host, and `site` for an instance of a named site
 * (whose name is then `<host>.<site>.<suffix>`, docs/sites.md); `priority`, `weight`, `interface`, `source` and
 * `health` on a service.
 *
 * `services` lists what DNS serves: config services, and the agent's passing ones (a critical service is not
 * listed, as it is not in DNS). `source` is `config` (a `user.lexa.service.*` key) or `agent`; `health` is
 * `passing` for an agent service (its checks pass, or it has none and its agent is connected or within grace) and
 * `unchecked` for a config service, which nothing checks.
 */
export interface HostDoc {
  name: string;
  site?: string;
  /** `user.lexa.alias` names, as the instance gives them (docs/sites.md); absent when it gives none. */
  aliases?: string[];
  project: string;
  location: string;
  interfaces: { ipv4: Record<string, string>[]; ipv6: Record<string, string>[] };
  services: ServiceDoc[] | null;
}

export interface ServiceDoc {
  name: string;
  port: number;
  proto: string;
  tags: string[];
  interface: string;
  priority: number;
  weight: number;
  source: 'config' | 'agent';
  health: 'passing' | 'unchecked';
}

export function hostDoc(inst: Instance, suffix: string): HostDoc {
  const ipv4: Record<string, string>[] = [];
  const ipv6: Record<string, string>[] = [];
  for (const iface of inst.interfaces) {
    for (const a of iface.ipv4) ipv4.push({ [iface.name]: a });
    for (const a of iface.ipv6) ipv6.push({ [iface.name]: a });
  }
  const services = inst.services.map((s) => ({
    name: s.name,
    port: s.port,
    proto: s.proto,
    tags: [...s.tags],
    interface: s.interface ?? inst.interfaces[0]?.name ?? '',
    priority: s.priority,
    weight: s.weight,
    source: s.source,
    health: s.source === 'agent' ? ('passing' as const) : ('unchecked' as const),
  }));
  return {
    name: `${inst.name}.${siteZone(inst, suffix)}`,
    ...(inst.site === undefined ? {} : { site: inst.site }),
    ...(inst.aliases === undefined ? {} : { aliases: [...inst.aliases] }),
    project: inst.project,
    location: inst.location,
    interfaces: { ipv4, ipv6 },
    services: services.length > 0 ? services : null,
  };
}

/** Running instances sorted by name (then project), as the document lists them. */
export function hostsOf(snapshot: View): Instance[] {
  return [...snapshot.running()].sort((a, b) => cmp(a.name, b.name) || cmp(a.project, b.project) || cmp(a.site ?? '', b.site ?? ''));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
