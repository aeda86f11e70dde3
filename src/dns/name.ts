import { isAtOrBelow, reverseLabels } from './reverse.js';

/**
 * The name grammar of lexa's zone: a query name → the typed form it has. Pure and cheap; it knows nothing of
 * the snapshot, so whether a form names anything (a running host, an offered service) is the resolver's question.
 *
 * Names are case-insensitive (every label in a form is lower-cased) and a trailing dot is ignored. Below the
 * suffix, with suffix `lexa` (it may have several labels):
 *
 *   lexa                                 apex
 *   <host>.lexa                          host {pattern: host}
 *   if.<host>.lexa, interface.<host>...  ifaceParent {host}     (the empty non-terminal above the interfaces)
 *   <if>.if.<host>.lexa                  iface {iface, host}    (`interface` is a synonym of `if`)
 *   service.lexa                         serviceParent {host: 'service'}
 *   _<x>.service.lexa                    serviceParent {host: null}
 *   <svc>.service.lexa                   service {svc}
 *   <tag>.<svc>.service.lexa             service {svc, tag}     (unless both labels start with `_`)
 *   _<svc>._<proto|tag>.service.lexa     srv {svc, protoOrTag}  (the `_` stripped from both)
 *   cluster.<host>.lexa                  cluster {host}
 *   <member>.cluster.<host>.lexa         member {member, host}
 *   <site>.lexa                          siteApex               (with named sites; see "Sites" below)
 *   any other name below lexa            none                   (in the zone, names nothing: NXDOMAIN)
 *   a name not at or below lexa          outside
 *
 * Precedence: a name of 2 or 3 labels whose last is `service` always takes a service form, so the service forms
 * shadow the host forms below a host named `service` (`cluster.service.lexa` is service `cluster`;
 * `a.if.service.lexa` is tag `a` of service `if`); 4 labels or more ending in `service` are `none`. A host named
 * `service` still answers at `service.lexa` itself: `serviceParent.host` says so.
 *
 * Host labels (`host`, and the host of `iface`, `ifaceParent`, `cluster`, `member`) are patterns: `*` anywhere
 * matches any run of characters, and a bare `*` matches every running instance. Interface, service, tag and
 * member labels are literal.
 *
 * Sites (docs/sites.md): with named sites, a site's label just before the suffix scopes every form above to that
 * site (`web.rack1.lexa` is host `web` of site `rack1`, with `site: 'rack1'`), and `<site>.lexa` itself is
 * `siteApex` (an empty non-terminal). The last label is a site whenever it is a configured site's name: a site
 * label shadows a host of the same name at `<name>.lexa` (that host still answers as `<name>.<its site>.lexa`).
 * Site names cannot be the grammar's own words (`service`, `if`, `interface`, `cluster`): config/sites.ts.
 *
 * Projects: a name that is `none` by the table above may still name an instance of an LXD project:
 * `parseProjectName` reads its last label (before the site label, if any) as a project, scoping the host forms
 * to it (`web.p1.lexa`, `eth0.if.web.p1.rack.lexa`, `cluster.web.p1.lexa`). So a project label is read only
 * where the name would otherwise name nothing: every form above wins over it, and names without a project label
 * are exactly as before projects were named.
 */
export type NameForm = BaseForm & { readonly site?: string; readonly project?: string };

type BaseForm =
  | { readonly kind: 'outside' }
  | { readonly kind: 'apex' }
  | { readonly kind: 'host'; readonly pattern: string }
  | { readonly kind: 'ifaceParent'; readonly host: string }
  | { readonly kind: 'iface'; readonly iface: string; readonly host: string }
  /**
   * The empty non-terminals `service` and `_<x>.service`. `host` is the host that also owns the name and answers
   * at it when running (`service` for `service.<suffix>`), null for `_<x>.service`.
   */
  | { readonly kind: 'serviceParent'; readonly host: string | null }
  | { readonly kind: 'service'; readonly svc: string; readonly tag?: string }
  | { readonly kind: 'srv'; readonly svc: string; readonly protoOrTag: string }
  | { readonly kind: 'cluster'; readonly host: string }
  | { readonly kind: 'member'; readonly member: string; readonly host: string }
  | { readonly kind: 'siteApex' }
  | { readonly kind: 'none' };

/**
 * The forms of a name in one of lexa's reverse zones (`zone` is the one that holds it):
 *
 *   <zone>                               reverseApex
 *   <labels>.<zone> spelling an address  ptr {ip}          (e.g. 5.0.99.10.in-addr.arpa → 10.99.0.5)
 *   a valid beginning of one             reverseParent     (an empty non-terminal, or a name with no address)
 *   labels that cannot be an address     none
 *   in no reverse zone                   outside
 *
 * With nested zones, the longest (most specific) one holds the name.
 */
export type ReverseForm =
  | { readonly kind: 'outside' }
  | { readonly kind: 'reverseApex'; readonly zone: string }
  | { readonly kind: 'ptr'; readonly zone: string; readonly ip: string }
  | { readonly kind: 'reverseParent'; readonly zone: string }
  | { readonly kind: 'none'; readonly zone: string };

/**
 * The form of `qname` among the reverse zones `zones` (lower-case, no trailing dot, e.g. `0.99.10.in-addr.arpa`);
 * `qname` is taken as asked.
 */
export function parseReverseName(qname: string, zones: readonly string[]): ReverseForm {
  const lname = lowerName(qname);
  let zone: string | undefined;
  for (const z of zones) if (isAtOrBelow(lname, z) && (zone === undefined || z.length > zone.length)) zone = z;
  if (zone === undefined) return { kind: 'outside' };
  if (lname === zone) return { kind: 'reverseApex', zone };
  const found = reverseLabels(zone, lname.slice(0, lname.length - zone.length - 1).split('.'));
  switch (found.kind) {
    case 'address':
      return { kind: 'ptr', zone, ip: found.ip };
    case 'partial':
      return { kind: 'reverseParent', zone };
    case 'none':
      return { kind: 'none', zone };
  }
}

const OUTSIDE: BaseForm = Object.freeze({ kind: 'outside' });
const APEX: BaseForm = Object.freeze({ kind: 'apex' });
const NONE: BaseForm = Object.freeze({ kind: 'none' });
const SERVICE_ENT: BaseForm = Object.freeze({ kind: 'serviceParent', host: null });

/**
 * The form of `qname` in the zone `suffix`. `suffix` must already be lower-cased with no dot at either end (the
 * resolver normalises it once per options object); `qname` is taken as asked. `sites`: the configured site
 * names (lower-case); empty for the one unnamed site, whose names carry no site label.
 */
export function parseName(qname: string, suffix: string, sites: ReadonlySet<string> = NO_SITES): NameForm {
  const lname = lowerName(qname);
  if (lname === suffix) return APEX;
  const cut = lname.length - suffix.length - 1;
  if (cut < 0 || lname[cut] !== '.' || !lname.endsWith(suffix)) return OUTSIDE;
  // A name that is the suffix behind an empty label (`.lexa`) is the apex, as an empty relative name.
  if (cut === 0) return APEX;
  const labels = lname.slice(0, cut).split('.');
  if (sites.size === 0) return relative(labels);
  const site = labels[labels.length - 1]!;
  if (!sites.has(site)) return relative(labels);
  if (labels.length === 1) return { kind: 'siteApex', site };
  const form = relative(labels.slice(0, -1));
  return form.kind === 'none' ? NONE : { ...form, site };
}

const NO_SITES: ReadonlySet<string> = new Set();

/**
 * The keys under which `qname` (inside the suffix, below the apex) may be an alias (`user.lexa.alias`, see
 * streams/model/aliases.ts): `absolute`, the whole name with a trailing dot; `relative`, the labels below the
 * suffix, or below a site label (then `site` names it), as a host name would be.
 */
export function aliasKeys(qname: string, suffix: string, sites: ReadonlySet<string> = NO_SITES): { absolute: string; relative: string; site?: string } {
  const lname = lowerName(qname);
  const labels = lname.slice(0, lname.length - suffix.length - 1).split('.');
  const site = labels.length > 1 && sites.has(labels[labels.length - 1]!) ? labels.pop() : undefined;
  const relative = labels.join('.');
  return site === undefined ? { absolute: `${lname}.`, relative } : { absolute: `${lname}.`, relative, site };
}

/**
 * The project reading of a name `parseName` found `none` (see "Projects" above; only such a name may be passed):
 * the host forms of the labels before the project label, with `project` set; `none` when those labels are no
 * host form either. Service forms are not scoped by project (a service name already spans projects).
 * `hostRuns(host)` (optional): whether a running instance has that lower-cased host name; a host that none has
 * makes the reading `none` at once, as it would answer NXDOMAIN anyway.
 */
export function parseProjectName(qname: string, suffix: string, sites: ReadonlySet<string> = NO_SITES, hostRuns?: (host: string) => boolean): NameForm {
  const lname = lowerName(qname);
  let labels = lname.slice(0, lname.length - suffix.length - 1).split('.');
  const site = sites.size > 0 && sites.has(labels[labels.length - 1]!) ? labels.pop() : undefined;
  const project = labels.pop();
  if (project === undefined || labels.length === 0) return NONE;
  // Every project-scoped form ends in its host label (`web`, `cluster.web`, `eth0.if.web`, `c1.cluster.web`): with
  // `hostRuns`, a name whose host no running instance has (and is no pattern) is no name, without building its form.
  const host = labels[labels.length - 1]!;
  if (hostRuns !== undefined && !host.includes('*') && !hostRuns(host)) return NONE;
  const scoped = relative(labels);
  if (scoped.kind !== 'host' && scoped.kind !== 'iface' && scoped.kind !== 'cluster' && scoped.kind !== 'member') return NONE;
  return site === undefined ? { ...scoped, project } : { ...scoped, project, site };
}

/** The form of the labels below the suffix (at least one; lower-cased). */
function relative(labels: readonly string[]): BaseForm {
  const n = labels.length;
  const l0 = labels[0]!;
  if (n >= 2 && labels[n - 1] === 'service') {
    if (n === 2) return l0.startsWith('_') ? SERVICE_ENT : { kind: 'service', svc: l0 };
    if (n === 3) {
      const l1 = labels[1]!;
      if (l0.startsWith('_') && l1.startsWith('_')) return { kind: 'srv', svc: l0.slice(1), protoOrTag: l1.slice(1) };
      return { kind: 'service', svc: l1, tag: l0 };
    }
    return NONE;
  }
  switch (n) {
    case 1:
      return l0 === 'service' ? { kind: 'serviceParent', host: 'service' } : { kind: 'host', pattern: l0 };
    case 2: {
      const l1 = labels[1]!;
      if (l0 === 'cluster') return { kind: 'cluster', host: l1 };
      if (isIf(l0)) return { kind: 'ifaceParent', host: l1 };
      return NONE;
    }
    case 3: {
      const l1 = labels[1]!;
      const l2 = labels[2]!;
      if (isIf(l1)) return { kind: 'iface', iface: l0, host: l2 };
      if (l1 === 'cluster') return { kind: 'member', member: l0, host: l2 };
      return NONE;
    }
    default:
      return NONE;
  }
}

function isIf(label: string): boolean {
  return label === 'if' || label === 'interface';
}

/** Lower-cased, without one trailing dot (the root `.` stays `.`). */
function lowerName(name: string): string {
  const lower = name.toLowerCase();
  return lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
