import type { Service } from './model.js';

/**
 * Traefik routing declared in LXD config keys, in Traefik's own label grammar (the Docker provider's
 * `traefik.http.routers.<r>.rule` and so on) behind LXD's `user.` prefix. Keys on profiles and instances merge key
 * by key in LXD's `expanded_config`, the instance winning, exactly as lexa's service keys do:
 *
 *   user.traefik.enable                                   = false     leave this instance out of /traefik
 *   user.traefik.enable                                   = true      also route its agent's services (below)
 *   user.traefik.http.routers.<r>.rule                    = Host(`app.example.com`)
 *   user.traefik.http.routers.<r>.service                 = http      a user.lexa.service name (or `x@file`)
 *   user.traefik.http.routers.<r>.entrypoints             = web,websecure
 *   user.traefik.http.routers.<r>.middlewares             = auth@file
 *   user.traefik.http.routers.<r>.priority / .tls / .tls.certresolver / .tls.options / .tls.domains[0].main ...
 *   user.traefik.http.services.<s>.loadbalancer.server.scheme = https
 *   user.traefik.http.services.<s>.loadbalancer.passhostheader / .healthcheck.path / .sticky.cookie.name ...
 *   user.traefik.tcp.routers.<r>.rule                     = HostSNI(`*`)
 *   user.traefik.tcp.services.<s>.loadbalancer.proxyprotocol.version = 2
 *
 * A Traefik service is a lexa service (`user.lexa.service.<s>.*`): its servers are every running instance offering
 * it, so the port always comes from the lexa declaration and `loadbalancer.server.port` is rejected. Option names are
 * case-insensitive (as Traefik's labels are) and come out in the camelCase of Traefik's dynamic configuration.
 * Middleware definitions are not taken from labels: define them in another Traefik provider and refer to them as
 * `<name>@file`.
 *
 * Parsing is total: a bad key becomes an error naming it and only that option (or router) is left out.
 */
export const TRAEFIK_PREFIX = 'user.traefik.';

export type Json = string | number | boolean | readonly Json[] | { readonly [k: string]: Json };
export type JsonObject = { readonly [k: string]: Json };

/** A router's options in Traefik's JSON shape; `service` is always set, `rule` is filled in by the reader. */
export type RouterLabels = JsonObject;

export interface ServiceLabels {
  /** URL scheme of an HTTP service's servers (`loadbalancer.server.scheme`); undefined means http. */
  readonly scheme: 'http' | 'https' | 'h2c' | undefined;
  /** `loadBalancer` options other than servers, in Traefik's JSON shape. */
  readonly loadBalancer: JsonObject;
}

export interface TraefikSection {
  readonly routers: Readonly<Record<string, RouterLabels>>;
  /** Keyed by lower-cased lexa service name. */
  readonly services: Readonly<Record<string, ServiceLabels>>;
}

export interface TraefikLabels {
  /** False when `user.traefik.enable` is false: the instance contributes nothing to /traefik. */
  readonly enabled: boolean;
  /**
   * True only when `user.traefik.enable` is explicitly true: then the instance's agent services (those its allow
   * list admits) join /traefik too. Absent, only its config services do: an agent speaks for code inside the
   * container, and joining a load balancer is the operator's decision, made in the instance's own LXD config.
   */
  readonly agents: boolean;
  readonly http: TraefikSection;
  readonly tcp: TraefikSection;
}

export interface ParsedTraefik {
  readonly traefik: TraefikLabels;
  /** One message per rejected key, naming it. */
  readonly errors: string[];
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'flag';
interface Option {
  readonly path: readonly string[];
  readonly kind: Kind;
}

const opt = (path: string, kind: Kind): Option => ({ path: path.split('.'), kind });

/** Router options shared by HTTP and TCP routers: label suffix (lower case) → JSON path and value kind. */
const ROUTER_COMMON: Record<string, Option> = {
  rule: opt('rule', 'string'),
  rulesyntax: opt('ruleSyntax', 'string'),
  entrypoints: opt('entryPoints', 'list'),
  middlewares: opt('middlewares', 'list'),
  service: opt('service', 'string'),
  priority: opt('priority', 'int'),
  tls: opt('tls', 'flag'),
  'tls.certresolver': opt('tls.certResolver', 'string'),
  'tls.options': opt('tls.options', 'string'),
};
const HTTP_ROUTER: Record<string, Option> = ROUTER_COMMON;
const TCP_ROUTER: Record<string, Option> = { ...ROUTER_COMMON, 'tls.passthrough': opt('tls.passthrough', 'bool') };

/** Load-balancer options, after `loadbalancer.`. */
const HTTP_SERVICE: Record<string, Option> = {
  passhostheader: opt('passHostHeader', 'bool'),
  serverstransport: opt('serversTransport', 'string'),
  'responseforwarding.flushinterval': opt('responseForwarding.flushInterval', 'string'),
  'healthcheck.path': opt('healthCheck.path', 'string'),
  'healthcheck.method': opt('healthCheck.method', 'string'),
  'healthcheck.scheme': opt('healthCheck.scheme', 'string'),
  'healthcheck.hostname': opt('healthCheck.hostname', 'string'),
  'healthcheck.port': opt('healthCheck.port', 'int'),
  'healthcheck.interval': opt('healthCheck.interval', 'string'),
  'healthcheck.timeout': opt('healthCheck.timeout', 'string'),
  'healthcheck.followredirects': opt('healthCheck.followRedirects', 'bool'),
  'sticky.cookie': opt('sticky.cookie', 'flag'),
  'sticky.cookie.name': opt('sticky.cookie.name', 'string'),
  'sticky.cookie.secure': opt('sticky.cookie.secure', 'bool'),
  'sticky.cookie.httponly': opt('sticky.cookie.httpOnly', 'bool'),
  'sticky.cookie.samesite': opt('sticky.cookie.sameSite', 'string'),
};
const TCP_SERVICE: Record<string, Option> = {
  serverstransport: opt('serversTransport', 'string'),
  'proxyprotocol.version': opt('proxyProtocol.version', 'int'),
};

/** Router and service names: what Traefik accepts in a label segment, without its reserved `@` and `.`. */
const NAME = /^[A-Za-z0-9_-]{1,63}$/;
const SCHEMES = new Set(['http', 'https', 'h2c']);
const DOMAIN_KEY = /^tls\.domains\[(\d{1,2})\]\.(main|sans)$/;

/**
 * Reads every `user.traefik.*` key of `config`. `services` are the instance's lexa services, to which routers and
 * service options must refer. Never throws.
 */
export function parseTraefikKeys(
  config: Readonly<Record<string, string>> | undefined | null,
  services: readonly Service[],
): ParsedTraefik {
  // Most instances declare no key: they share one frozen value instead of holding four empty objects each.
  if (!Object.keys(config ?? {}).some((key) => key.toLowerCase().startsWith(TRAEFIK_PREFIX))) return { traefik: NO_TRAEFIK_LABELS, errors: [] };
  const errors: string[] = [];
  let enabled = true;
  let agents = false;
  const raw = {
    http: { routers: new Map<string, Map<string, [string, string]>>(), services: new Map<string, Map<string, [string, string]>>() },
    tcp: { routers: new Map<string, Map<string, [string, string]>>(), services: new Map<string, Map<string, [string, string]>>() },
  };
  // Sorted, so errors and the order options are applied in do not depend on LXD's key order.
  for (const key of Object.keys(config ?? {}).sort()) {
    if (!key.toLowerCase().startsWith(TRAEFIK_PREFIX)) continue;
    const value = String(config![key]).trim();
    const rest = key.slice(TRAEFIK_PREFIX.length);
    if (rest.toLowerCase() === 'enable') {
      const b = bool(value);
      if (b === undefined) errors.push(`${key}: "${value}" must be true or false`);
      else [enabled, agents] = [b, b];
      continue;
    }
    const m = /^(http|tcp)\.(routers|services)\.([^.]+)\.(.+)$/i.exec(rest);
    if (!m) {
      const why = /^(http|tcp)\.middlewares\./i.test(rest)
        ? 'middlewares are not defined from labels; define them in another Traefik provider and refer to them as <name>@file'
        : /^udp\./i.test(rest)
          ? 'udp routing is not served; /traefik carries http and tcp'
          : 'expected user.traefik.enable or user.traefik.<http|tcp>.<routers|services>.<name>.<option>';
      errors.push(`${key}: ${why}`);
      continue;
    }
    const proto = m[1]!.toLowerCase() as 'http' | 'tcp';
    const what = m[2]!.toLowerCase() as 'routers' | 'services';
    const name = m[3]!;
    if (!NAME.test(name)) {
      errors.push(`${key}: "${name}" is not a ${what === 'routers' ? 'router' : 'service'} name (letters, digits, - and _)`);
      continue;
    }
    const id = what === 'services' ? name.toLowerCase() : name;
    const table = raw[proto][what];
    let fields = table.get(id);
    if (!fields) table.set(id, (fields = new Map()));
    fields.set(m[4]!.toLowerCase(), [key, value]);
  }

  const lexaTcp = [...new Set(services.filter((s) => s.proto === 'tcp').map((s) => s.name))];
  const lexaAll = new Set(services.map((s) => s.name));
  const refersTo = (key: string, target: string): boolean => {
    if (target.includes('@')) return true;
    const t = target.toLowerCase();
    if (lexaTcp.includes(t)) return true;
    errors.push(
      lexaAll.has(t)
        ? `${key}: service "${target}" is udp only; Traefik is given tcp services`
        : `${key}: no service "${target}" on this instance (declare user.lexa.service.${t}.port)`,
    );
    return false;
  };

  const section = (proto: 'http' | 'tcp'): TraefikSection => {
    const routers: Record<string, RouterLabels> = {};
    for (const [name, fields] of [...raw[proto].routers].sort(byKey)) {
      const table = proto === 'http' ? HTTP_ROUTER : TCP_ROUTER;
      const doc = build(fields, table, errors, true);
      const serviceKey = fields.get('service')?.[0] ?? `${TRAEFIK_PREFIX}${proto}.routers.${name}.service`;
      let service = typeof doc['service'] === 'string' ? doc['service'] : undefined;
      if (service === undefined) {
        if (lexaTcp.length !== 1) {
          errors.push(
            `${serviceKey}: missing, and the instance offers ${lexaTcp.length === 0 ? 'no tcp service' : `several tcp services (${lexaTcp.join(', ')})`}; router "${name}" ignored`,
          );
          continue;
        }
        service = lexaTcp[0]!;
      } else if (!refersTo(serviceKey, service)) continue;
      doc['service'] = service.includes('@') ? service : service.toLowerCase();
      routers[name] = doc;
    }
    const svcs: Record<string, ServiceLabels> = {};
    for (const [name, fields] of [...raw[proto].services].sort(byKey)) {
      const first = fields.values().next().value![0];
      if (!refersTo(first, name)) continue;
      const lb = new Map<string, [string, string]>();
      let scheme: ServiceLabels['scheme'];
      for (const [field, [key, value]] of fields) {
        if (!field.startsWith('loadbalancer.')) {
          errors.push(`${key}: unknown service option (known: loadbalancer.<option>)`);
          continue;
        }
        const sub = field.slice('loadbalancer.'.length);
        if (sub === 'server.port') {
          errors.push(`${key}: the port comes from user.lexa.service.${name}.port; option ignored`);
        } else if (sub === 'server.scheme' && proto === 'http') {
          const s = value.toLowerCase();
          if (SCHEMES.has(s)) scheme = s as ServiceLabels['scheme'];
          else errors.push(`${key}: "${value}" must be http, https or h2c`);
        } else lb.set(sub, [key, value]);
      }
      svcs[name] = { scheme, loadBalancer: build(lb, proto === 'http' ? HTTP_SERVICE : TCP_SERVICE, errors, false) };
    }
    return { routers, services: svcs };
  };

  return { traefik: { enabled, agents, http: section('http'), tcp: section('tcp') }, errors };
}

/** Turns `field → [key, value]` into a JSON object by `table`; unknown or malformed fields become errors. */
function build(
  fields: ReadonlyMap<string, [string, string]>,
  table: Record<string, Option>,
  errors: string[],
  domains: boolean,
): Record<string, Json> {
  const out: Record<string, Json> = {};
  const flags: string[][] = [];
  for (const [field, [key, value]] of fields) {
    const dm = domains ? DOMAIN_KEY.exec(field) : null;
    if (dm) {
      const doms = ensure(out, ['tls']);
      const list = (Array.isArray(doms['domains']) ? doms['domains'] : (doms['domains'] = [])) as Record<string, Json>[];
      const i = Number(dm[1]);
      while (list.length <= i) list.push({});
      list[i]![dm[2]!] = dm[2] === 'sans' ? splitList(value) : value;
      continue;
    }
    const o = table[field];
    if (!o) {
      errors.push(`${key}: unknown option "${field}" (known: ${Object.keys(table).join(', ')})`);
      continue;
    }
    let v: Json | undefined;
    switch (o.kind) {
      case 'string':
        v = value;
        if (value === '') errors.push(`${key}: empty value`);
        break;
      case 'list':
        v = splitList(value);
        break;
      case 'int':
        v = /^\d{1,9}$/.test(value) ? Number(value) : undefined;
        if (v === undefined) errors.push(`${key}: "${value}" is not a whole number`);
        break;
      case 'bool':
        v = bool(value);
        if (v === undefined) errors.push(`${key}: "${value}" must be true or false`);
        break;
      case 'flag': {
        const b = bool(value);
        if (b === undefined) errors.push(`${key}: "${value}" must be true or false`);
        // `tls=true` asks for an (empty) TLS section; `false` leaves it out unless sub-options ask for it.
        else if (b) flags.push([...o.path]);
        continue;
      }
    }
    if (v === undefined || v === '') continue;
    const parent = ensure(out, o.path.slice(0, -1));
    parent[o.path[o.path.length - 1]!] = v;
  }
  for (const path of flags) ensure(out, path);
  // Domains listed with gaps (domains[0] and domains[2]) keep their positions; empty entries are dropped.
  const tls = out['tls'];
  if (tls && typeof tls === 'object' && !Array.isArray(tls) && Array.isArray((tls as Record<string, Json>)['domains'])) {
    const t = tls as Record<string, Json>;
    t['domains'] = (t['domains'] as Record<string, Json>[]).filter((d) => Object.keys(d).length > 0);
  }
  return out;
}

function ensure(obj: Record<string, Json>, path: readonly string[]): Record<string, Json> {
  let cur = obj;
  for (const p of path) {
    const next = cur[p];
    if (next && typeof next === 'object' && !Array.isArray(next)) cur = next as Record<string, Json>;
    else cur = (cur[p] = {}) as Record<string, Json>;
  }
  return cur;
}

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function bool(value: string): boolean | undefined {
  const v = value.toLowerCase();
  return v === 'true' ? true : v === 'false' ? false : undefined;
}

function byKey<T>([a]: [string, T], [b]: [string, T]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The labels of an instance that declares no `user.traefik.*` key. */
export const NO_TRAEFIK_LABELS: TraefikLabels = Object.freeze({
  enabled: true,
  agents: false,
  http: Object.freeze({ routers: Object.freeze({}), services: Object.freeze({}) }),
  tcp: Object.freeze({ routers: Object.freeze({}), services: Object.freeze({}) }),
});
