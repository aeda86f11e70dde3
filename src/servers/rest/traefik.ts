import { endpointsOf, type AgentService, type Instance, type Json, type JsonObject, type Service, type View } from '../../streams/index.js';

/**
 * The Traefik HTTP provider document served at `GET /traefik`: Traefik's dynamic configuration
 *
 *   {"http":{"routers":{...},"services":{"<s>":{"loadBalancer":{"servers":[{"url":"http://10.0.0.5:80"}]}}}},
 *    "tcp":{"routers":{...},"services":{"<s>":{"loadBalancer":{"servers":[{"address":"10.0.0.5:5432"}]}}}}}
 *
 * built from one snapshot, by these rules:
 * - A Traefik service is a lexa tcp service (`user.lexa.service.<s>`): its servers are every running instance
 *   offering it whose service is passing, one server per instance, at the first IPv4 of the service's interface (else
 *   its first IPv6, bracketed). A service with no such server is left out (Traefik's schema wants at least one).
 * - It is a TCP service when the instance refers to it from a `user.traefik.tcp.*` key, and an HTTP service when it
 *   refers to it from a `user.traefik.http.*` key or from no tcp key at all.
 * - Routers come from `user.traefik.<http|tcp>.routers.<r>.*`. An instance with no HTTP router gets, for each of
 *   its HTTP services, the default router named after the service with the rule DEFAULT_RULE gives
 *   (``Host(`<service>.service.<suffix>`)``, the DNS name that answers with the same instances). A TCP router
 *   without a rule gets ``HostSNI(`*`)`` (every connection: the only rule a non-TLS TCP router can have).
 * - Instances with `user.traefik.enable=false` contribute nothing. An agent's services (already limited to the
 *   instance's allow list) count only for instances with `user.traefik.enable=true` set explicitly: without it, a
 *   container's agent could join the load balancer of another application just by announcing its service name.
 * - Several instances may declare the same router or service options (a profile does that): identical
 *   declarations are one; different ones are a conflict and the router (or service) is left out, named in
 *   `problems`, as Traefik's Docker provider does. A router whose service is left out is left out too.
 *
 * - With `site` (`GET /traefik?site=<name>`), only that named site's instances contribute: a Traefik that serves
 *   one site's traffic polls its own site's servers. Without it, every site's instances make one provider, and a
 *   service offered in several sites load-balances over all of them (docs/sites.md). The default rules stay
 *   unqualified either way: they name what clients type, not where the servers are.
 *
 * Contract: a pure function of the snapshot, the suffix and the site. The body is byte-stable: object keys are sorted at
 * every level and servers are sorted, so an equal configuration always serialises to the same bytes (Traefik
 * compares what it polls and reloads routers only when the bytes change).
 */
export interface TraefikDocument {
  readonly body: string;
  /** Conflicts found, one sentence each; empty when all is well. */
  readonly problems: readonly string[];
}

/** The rule of the router lexa makes for an HTTP service when the instance declares no HTTP router. */
export function defaultRule(service: string, suffix: string): string {
  return `Host(\`${service}.service.${suffix}\`)`;
}

/** Rule of a TCP router that declares none: every connection on its entry points. */
export const DEFAULT_TCP_RULE = 'HostSNI(`*`)';

type Proto = 'http' | 'tcp';

/** One router or service options object as declared, with the instances that declared it. */
interface Declared {
  readonly json: string;
  readonly value: JsonObject;
  readonly from: string[];
  conflict: string | undefined;
}

interface Backend {
  /** host:port strings ("10.0.0.5:80", "[fd42::5]:80"). */
  readonly servers: Set<string>;
  options: Declared | undefined;
}

/**
 * Whether a service counts as up. Snapshots serve only passing agent services already; this keeps the document
 * right for any instance handed to it.
 */
export function servicePassing(service: Service): boolean {
  // An agent's services carry the health its checks gave; config services withheld by their server-side checks
  // are not in a snapshot's services at all (streams/model/agents.ts), so any config service here is served.
  return service.source !== 'agent' || (service as AgentService).health === 'passing';
}

export function traefikDocument(snap: View, suffix: string, site?: string): TraefikDocument {
  const problems: string[] = [];
  const routers: Record<Proto, Map<string, Declared>> = { http: new Map(), tcp: new Map() };
  const backends: Record<Proto, Map<string, Backend>> = { http: new Map(), tcp: new Map() };
  const backend = (proto: Proto, name: string): Backend => {
    let b = backends[proto].get(name);
    if (!b) backends[proto].set(name, (b = { servers: new Set(), options: undefined }));
    return b;
  };

  const instances = [...snap.running()].filter((i) => site === undefined || i.site === site).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const inst of instances) {
    const t = inst.traefik;
    if (!t.enabled) continue;
    const viaTcp = referenced(t.tcp.routers, t.tcp.services);
    const viaHttp = referenced(t.http.routers, t.http.services);
    const httpHere = new Set<string>();
    for (const ep of endpointsOf(inst)) {
      if (ep.service.proto !== 'tcp' || (ep.service.source === 'agent' && !t.agents)) continue;
      const name = ep.service.name.toLowerCase();
      const asTcp = viaTcp.has(name);
      const asHttp = viaHttp.has(name) || !asTcp;
      if (asHttp) httpHere.add(name);
      // Only an address LXD vouches for may receive the load balancer's traffic (NetInterface).
      const host = serverHost(ep.iface.trustedIpv4, ep.iface.trustedIpv6);
      if (host === undefined || !servicePassing(ep.service)) continue;
      const hostPort = `${host}:${ep.service.port}`;
      if (asTcp) backend('tcp', name).servers.add(hostPort);
      if (asHttp) backend('http', name).servers.add(hostPort);
    }

    for (const proto of ['http', 'tcp'] as const) {
      for (const [name, labels] of Object.entries(t[proto].services)) {
        const b = backend(proto, name);
        const value: Record<string, Json> = { ...labels.loadBalancer };
        if (labels.scheme !== undefined) value['scheme'] = labels.scheme;
        b.options = declare(b.options, value, inst, `${proto} service "${name}"`, problems);
      }
      for (const [name, r] of Object.entries(t[proto].routers)) {
        const value = r['rule'] === undefined ? { ...r, rule: proto === 'tcp' ? DEFAULT_TCP_RULE : defaultRule(String(r['service']), suffix) } : r;
        routers[proto].set(name, declare(routers[proto].get(name), value, inst, `${proto} router "${name}"`, problems));
      }
    }
    if (Object.keys(t.http.routers).length === 0) {
      for (const name of httpHere) {
        const value = { rule: defaultRule(name, suffix), service: name };
        routers.http.set(name, declare(routers.http.get(name), value, inst, `http router "${name}"`, problems));
      }
    }
  }

  const doc: Record<Proto, { routers: Record<string, Json>; services: Record<string, Json> }> = {
    http: { routers: {}, services: {} },
    tcp: { routers: {}, services: {} },
  };
  for (const proto of ['http', 'tcp'] as const) {
    for (const [name, b] of backends[proto]) {
      if (b.servers.size === 0 || b.options?.conflict !== undefined) continue;
      const { scheme = 'http', ...options } = (b.options?.value ?? {}) as Record<string, Json>;
      const servers: Json[] = [...b.servers]
        .sort()
        .map((hp): JsonObject => (proto === 'http' ? { url: `${String(scheme)}://${hp}` } : { address: hp }));
      doc[proto].services[name] = { loadBalancer: { ...options, servers } };
    }
    for (const [name, r] of routers[proto]) {
      if (r.conflict !== undefined) continue;
      const service = String(r.value['service']);
      if (!service.includes('@') && doc[proto].services[service] === undefined) continue;
      doc[proto].routers[name] = r.value;
    }
  }
  return { body: stableStringify(doc), problems };
}

/** Lexa service names an instance's routers and service options refer to. */
function referenced(routers: Readonly<Record<string, JsonObject>>, services: Readonly<Record<string, unknown>>): Set<string> {
  const out = new Set(Object.keys(services));
  for (const r of Object.values(routers)) {
    const s = r['service'];
    if (typeof s === 'string' && !s.includes('@')) out.add(s);
  }
  return out;
}

/** Merges one instance's declaration into what earlier instances declared; a different one is a conflict. */
function declare(prev: Declared | undefined, value: JsonObject, inst: Instance, what: string, problems: string[]): Declared {
  const json = stableStringify(value);
  if (prev === undefined) return { json, value, from: [inst.key], conflict: undefined };
  prev.from.push(inst.key);
  if (prev.json !== json && prev.conflict === undefined) {
    prev.conflict = `${what} is declared differently by ${prev.from[0]} and ${inst.key}; left out`;
    problems.push(prev.conflict);
  }
  return prev;
}

/** The address one server of an instance is reached at: its first IPv4, else its first IPv6 in brackets. */
function serverHost(ipv4: readonly string[], ipv6: readonly string[]): string | undefined {
  if (ipv4[0] !== undefined) return ipv4[0];
  if (ipv6[0] !== undefined) return `[${ipv6[0]}]`;
  return undefined;
}

/** JSON with object keys sorted at every level (arrays keep their order). */
export function stableStringify(value: Json): string {
  if (Array.isArray(value)) return `[${value.map((v) => stableStringify(v as Json)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, Json>;
    const keys = Object.keys(obj).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k]!)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
