import { checkOf, checkTarget, declaredServices, siteZone, type CheckResult, type Instance, type InstanceChecks, type Service, type ServiceCheck, type View } from '../../streams/index.js';

/**
 * The `/containers/` document, in the original lexa's shape so existing Traefik transformers keep working:
 *   {"hosts":[{"name":"<host>.<suffix>","interfaces":{"ipv4":[{"eth0":"..."}],"ipv6":[...]},"services":[...]|null}]}
 * Additions that break nobody: `project` and `location` on a host, and `site` for an instance of a named site
 * (whose name is then `<host>.<site>.<suffix>`, docs/sites.md); `priority`, `weight`, `interface`, `source` and
 * `health` on a service.
 *
 * `services` lists what DNS serves: config services (those with a server-side check only while it lets them be
 * served), and the agent's passing ones (a critical service is not listed, as it is not in DNS). `source` is
 * `config` (a `user.lexa.service.*` key) or `agent`; `health` is `passing` for an agent service (its checks pass,
 * or it has none and its agent is connected or within grace) and for a config service whose server-side check
 * passes, and `unchecked` for a config service nothing checks (no check, or one lexa cannot run from this host).
 *
 * `checks` (only on hosts declaring server-side checks) lists every such check, served or not, with its state:
 * how an operator sees why a service left DNS.
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
  checks?: CheckDoc[];
}

/** One server-side check's state as the REST API shows it. */
export interface CheckDoc {
  service: string;
  /** The declaration: `tcp`, `http:<path>` or `https:<path>`. */
  check: string;
  /** What is checked (`address:port` or the URL); null while the service's interface has no address LXD vouches for. */
  target: string | null;
  /** `critical` until the first run, and whenever the thresholds say so. */
  status: CheckResult['status'];
  output: string;
  /** When the run that set this status and output finished (ISO 8601); null before the first. */
  at: string | null;
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

/** `checks`: the instance's server-side check states (Snapshot.checks), which decide `health` and `checks`. */
export function hostDoc(inst: Instance, suffix: string, checks?: InstanceChecks): HostDoc {
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
    health: serviceHealth(s, checks),
  }));
  const declared = checksDoc(inst, checks);
  return {
    name: `${inst.name}.${siteZone(inst, suffix)}`,
    ...(inst.site === undefined ? {} : { site: inst.site }),
    ...(inst.aliases === undefined ? {} : { aliases: [...inst.aliases] }),
    project: inst.project,
    location: inst.location,
    interfaces: { ipv4, ipv6 },
    services: services.length > 0 ? services : null,
    ...(declared.length > 0 ? { checks: declared } : {}),
  };
}

/** A served service's health: passing when an agent or a server-side check says so, else unchecked. */
export function serviceHealth(s: Service, checks: InstanceChecks | undefined): 'passing' | 'unchecked' {
  if (s.source === 'agent') return 'passing';
  return s.check !== undefined && checkOf(checks, s.name)?.status === 'passing' ? 'passing' : 'unchecked';
}

/** The declaration as its key spells it. */
export function checkText(check: ServiceCheck): string {
  return check.kind === 'tcp' ? 'tcp' : `${check.kind}:${check.path ?? '/'}`;
}

/** Every server-side check `inst` declares (one per service name), in declaration order, with its state. */
export function checksDoc(inst: Instance, checks: InstanceChecks | undefined): CheckDoc[] {
  const out: CheckDoc[] = [];
  const seen = new Set<string>();
  for (const s of declaredServices(inst)) {
    const name = s.name.toLowerCase();
    if (s.check === undefined || seen.has(name)) continue;
    seen.add(name);
    const target = checkTarget(inst, s)?.target ?? null;
    const result = checkOf(checks, name);
    const current = result !== undefined && result.target === target ? result : undefined;
    out.push({
      service: name,
      check: checkText(s.check),
      target,
      status: current?.status ?? 'critical',
      output: current?.output ?? (target === null ? 'not run: the interface has no address LXD vouches for' : 'waiting for its first run'),
      at: current === undefined ? null : new Date(current.at).toISOString(),
    });
  }
  return out;
}

/** Running instances sorted by name (then project), as the document lists them. */
export function hostsOf(snapshot: View): Instance[] {
  return [...snapshot.running()].sort((a, b) => cmp(a.name, b.name) || cmp(a.project, b.project) || cmp(a.site ?? '', b.site ?? ''));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
