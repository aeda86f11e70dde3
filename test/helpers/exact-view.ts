// The fault tests' one comparison: LXD's truth (a fresh `/1.0/instances?recursion=2` and the services the instances
// declare) against lexa's view (REST `/containers/` and what DNS answers with the real dig), exactly, as a printed
// diff. Names, addresses, services and cluster locations; nothing else, and nothing less.

import { execFile } from 'node:child_process';
import { curl, type HostDoc } from './lexa.js';
import { parse } from './dig.js';

/** One host as both sides are reduced to: what a client of lexa relies on. Lists are sorted. */
export interface HostView {
  location: string;
  /** `<interface>=<address>` (DNS carries no interface: its side compares the addresses only). */
  ipv4: string[];
  ipv6: string[];
  /** `<name> <proto>:<port> tags=<tag,...>` (DNS carries no tags: its side compares `<name> <proto>:<port>`). */
  services: string[];
}

/** Host views by fully-qualified name (`<host>.<zone>`). */
export type View = Map<string, HostView>;

/** Where one LXD's instances are named: `<host>.<zone>`, zone `lexa` or `<site>.lexa` for a named site. */
export interface Source {
  /** `lxc query <path>` against that daemon. */
  query(path: string): Promise<string>;
  zone: string;
  /**
   * Which of its instances the comparison covers (default: all). For a daemon other tests also use, where only
   * this test's own instances hold still; lexa's names outside every source's cover are left out of its side too.
   */
  covers?: (instance: string) => boolean;
}

/** Whether `fqdn` (`<host>.<zone>`) is an instance name some source covers. */
function covered(sources: readonly Source[], fqdn: string): boolean {
  return sources.some((s) => {
    if (!fqdn.endsWith(`.${s.zone}`)) return false;
    const host = fqdn.slice(0, -s.zone.length - 1);
    return !host.includes('.') && (s.covers?.(host) ?? true);
  });
}

function onlyCovered(sources: readonly Source[], view: View): View {
  return new Map([...view].filter(([name]) => covered(sources, name)));
}

/** The parts of a recursion=2 instance this reads. */
interface LxdInstance {
  name: string;
  status: string;
  location: string;
  expanded_config: Record<string, string>;
  state: { network: Record<string, { addresses: { family: string; address: string; scope: string }[] }> | null } | null;
}

const SERVICE_PORT = /^user\.lexa\.service\.([^.]+)\.port$/;

/**
 * LXD's truth for one source: every Running instance, its global addresses per interface (loopback aside), its
 * `user.lexa.service.<name>.port` services with their proto and tags. Read fresh on every call.
 */
export async function lxdTruth(source: Source): Promise<View> {
  const list = JSON.parse(await source.query('/1.0/instances?recursion=2')) as LxdInstance[];
  const view: View = new Map();
  for (const i of list) {
    if (i.status !== 'Running' || !(source.covers?.(i.name) ?? true)) continue;
    const ipv4: string[] = [];
    const ipv6: string[] = [];
    for (const [iface, net] of Object.entries(i.state?.network ?? {})) {
      if (iface === 'lo') continue;
      for (const a of net.addresses) {
        if (a.scope !== 'global') continue;
        (a.family === 'inet' ? ipv4 : ipv6).push(`${iface}=${a.address}`);
      }
    }
    const services: string[] = [];
    for (const [key, port] of Object.entries(i.expanded_config)) {
      const svc = SERVICE_PORT.exec(key)?.[1];
      if (svc === undefined) continue;
      const cfg = (k: string) => i.expanded_config[`user.lexa.service.${svc}.${k}`];
      const tags = (cfg('tags') ?? '').split(',').map((s) => s.trim()).filter(Boolean).sort().join(',');
      for (const proto of (cfg('proto') ?? 'tcp').split(',')) services.push(`${svc} ${proto.trim()}:${Number(port)} tags=${tags}`);
    }
    view.set(`${i.name}.${source.zone}`, { location: i.location, ipv4: ipv4.sort(), ipv6: ipv6.sort(), services: services.sort() });
  }
  return view;
}

/** Every source's truth in one view (federation: each site's hosts under its own zone). */
export async function truthOf(sources: readonly Source[]): Promise<View> {
  const view: View = new Map();
  for (const s of sources) for (const [k, v] of await lxdTruth(s)) view.set(k, v);
  return view;
}

/** Whether every Running instance has its IPv4 and its SLAAC IPv6 (LXD's own picture has stopped moving). */
export function addressed(view: View): boolean {
  return [...view.values()].every((h) => h.ipv4.length > 0 && h.ipv6.length > 0);
}

/** lexa's `/containers/` as a View. */
export async function restView(restUrl: string): Promise<View> {
  const res = await curl(`${restUrl}/containers/`);
  if (res.status !== 200) throw new Error(`/containers/ answered ${res.status}: ${res.body}`);
  const view: View = new Map();
  for (const h of res.json<{ hosts: HostDoc[] }>().hosts) {
    const pairs = (list: Record<string, string>[]) => list.flatMap((o) => Object.entries(o).map(([k, v]) => `${k}=${v}`)).sort();
    view.set(h.name, {
      location: h.location,
      ipv4: pairs(h.interfaces.ipv4),
      ipv6: pairs(h.interfaces.ipv6),
      services: (h.services ?? []).map((s) => `${s.name} ${s.proto}:${s.port} tags=${[...s.tags].sort().join(',')}`).sort(),
    });
  }
  return view;
}

/**
 * What lexa's DNS answers, asked with one dig run: A and AAAA for every host name in `names`, SRV
 * `_<svc>._<proto>.service.<zone>` for every service in `services` (`<zone> <svc> <proto>`). A name answering
 * NXDOMAIN is absent from the view; any other failure (SERVFAIL, a timeout) throws, naming the question.
 */
export async function dnsView(port: number, names: Iterable<string>, services: Iterable<string>): Promise<View> {
  const questions: [string, string][] = [];
  for (const n of names) questions.push([n, 'A'], [n, 'AAAA']);
  for (const s of services) {
    const [zone, svc, proto] = s.split(' ') as [string, string, string];
    questions.push([`_${svc}._${proto}.service.${zone}`, 'SRV']);
  }
  if (questions.length === 0) return new Map();
  const out = await digMany(port, questions);
  const replies = out.split(/^;; Got answer:$/m).slice(1).map(parse);
  if (replies.length !== questions.length) throw new Error(`dig gave ${replies.length} replies to ${questions.length} questions:\n${out}`);
  const view: View = new Map();
  const host = (name: string) => view.get(name) ?? view.set(name, { location: '', ipv4: [], ipv6: [], services: [] }).get(name)!;
  questions.forEach(([name, type], k) => {
    const r = replies[k]!;
    if (r.status === 'NXDOMAIN' && type !== 'SRV') return;
    if (r.status !== 'NOERROR' && !(r.status === 'NXDOMAIN' && type === 'SRV')) throw new Error(`${name} ${type}: ${r.status}\n${r.raw}`);
    for (const line of r.answer) {
      const f = line.split(' ');
      if (f[3] === 'A' || f[3] === 'AAAA') (f[3] === 'A' ? host(name).ipv4 : host(name).ipv6).push(f[4]!);
      if (f[3] === 'SRV') {
        // `_<svc>._<proto>.service.<zone>. ttl IN SRV prio weight port <if>.if.<host>.<zone>.`
        const [svc, proto] = name.split('.').slice(0, 2).map((l) => l.slice(1)) as [string, string];
        const target = f[7]!.replace(/\.$/, '').split('.if.')[1]!;
        host(target).services.push(`${svc} ${proto}:${f[6]}`);
      }
    }
  });
  for (const h of view.values()) for (const list of [h.ipv4, h.ipv6, h.services]) list.sort();
  return view;
}

function digMany(port: number, questions: readonly [string, string][]): Promise<string> {
  const args = ['@127.0.0.1', '-p', String(port), '+norecurse', '+time=5', '+tries=2', ...questions.flat()];
  return new Promise((resolve, reject) => {
    execFile('dig', args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`dig exited ${String(err.code ?? err.signal)}: ${stderr}\n${stdout.slice(-2000)}`)) : resolve(stdout));
  });
}

/** What DNS can show of a host: addresses without interfaces, services without tags, no location. */
export function asDns(view: View): View {
  const out: View = new Map();
  for (const [name, h] of view) {
    out.set(name, {
      location: '',
      ipv4: h.ipv4.map((a) => a.slice(a.indexOf('=') + 1)).sort(),
      ipv6: h.ipv6.map((a) => a.slice(a.indexOf('=') + 1)).sort(),
      services: h.services.map((s) => s.slice(0, s.lastIndexOf(' '))).sort(),
    });
  }
  return out;
}

/** Lines naming every difference: `- <name> <json>` only LXD has it so, `+ <name> <json>` only lexa. Empty: equal. */
export function diffViews(expected: View, actual: View): string[] {
  const lines: string[] = [];
  for (const name of [...new Set([...expected.keys(), ...actual.keys()])].sort()) {
    const e = expected.get(name);
    const a = actual.get(name);
    const es = e && JSON.stringify(e);
    const as = a && JSON.stringify(a);
    if (es === as) continue;
    if (es) lines.push(`- ${name} ${es}`);
    if (as) lines.push(`+ ${name} ${as}`);
  }
  return lines;
}

/** The outcome of one exact comparison: the differences of each of lexa's faces against LXD (both empty: equal). */
export interface Comparison {
  rest: string[];
  dns: string[];
  /** The truth it was compared with, for the test's message. */
  truth: View;
}

/**
 * One exact comparison, read now: LXD's truth from `sources`, lexa's REST view and its DNS answers for every name
 * either side knows plus `alsoAsk` (names that existed once: they must answer NXDOMAIN). DNS service questions
 * cover every service name either side or `alsoServices` (`<zone> <svc> <proto>`) knows.
 */
export async function compare(
  lexa: { restUrl: string; dnsPort: number },
  sources: readonly Source[],
  alsoAsk: Iterable<string> = [],
  alsoServices: Iterable<string> = [],
): Promise<Comparison> {
  const truth = await truthOf(sources);
  const rest = onlyCovered(sources, await restView(lexa.restUrl));
  const names = new Set([...truth.keys(), ...rest.keys(), ...alsoAsk]);
  const services = new Set(alsoServices);
  for (const [name, h] of [...truth, ...rest]) {
    const zone = name.slice(name.indexOf('.') + 1);
    for (const s of h.services) {
      const [svc, protoPort] = s.split(' ') as [string, string];
      services.add(`${zone} ${svc} ${protoPort.split(':')[0]}`);
    }
  }
  const dns = onlyCovered(sources, await dnsView(lexa.dnsPort, names, services));
  return { rest: diffViews(truth, rest), dns: diffViews(asDns(truth), dns), truth };
}

/** The comparison as text for a failure message. */
export function describeComparison(c: Comparison): string {
  const part = (what: string, lines: string[]) => (lines.length === 0 ? `${what}: equal` : `${what}:\n  ${lines.join('\n  ')}`);
  return `${part('REST /containers/ vs LXD', c.rest)}\n${part('DNS vs LXD', c.dns)}`;
}

/** How often the settle loop compares while it measures when lexa first agreed (a figure, never the verdict). */
const MEASURE_EVERY_MS = 400;

export interface Settled {
  /** The verdict: the first comparison at or after `from + boundMs`. */
  comparison: Comparison;
  /** When lexa was first seen equal to LXD, in ms after `from`: the measured settle time (null: not before the bound). */
  firstEqualMs: number | null;
}

/**
 * Waits for LXD's own picture to stop moving (every Running instance addressed), measures when lexa first agrees
 * with it, then at `from + boundMs` makes the one comparison that decides. The bound is the test's stated settle
 * bound; the measured time is what the documentation reports.
 */
export async function compareAfterSettle(
  lexa: { restUrl: string; dnsPort: number },
  sources: readonly Source[],
  opts: { from: number; boundMs: number; alsoAsk?: Iterable<string>; alsoServices?: Iterable<string> },
): Promise<Settled> {
  const deadline = opts.from + opts.boundMs;
  const alsoAsk = [...(opts.alsoAsk ?? [])];
  const alsoServices = [...(opts.alsoServices ?? [])];
  let firstEqualMs: number | null = null;
  while (Date.now() < deadline && firstEqualMs === null) {
    const truth = await truthOf(sources).catch(() => undefined);
    if (truth !== undefined && addressed(truth)) {
      const c = await compare(lexa, sources, alsoAsk, alsoServices).catch(() => undefined);
      if (c !== undefined && c.rest.length === 0 && c.dns.length === 0 && addressed(c.truth)) firstEqualMs = Date.now() - opts.from;
    }
    await new Promise((r) => setTimeout(r, MEASURE_EVERY_MS));
  }
  const left = deadline - Date.now();
  if (left > 0) await new Promise((r) => setTimeout(r, left));
  return { comparison: await compare(lexa, sources, alsoAsk, alsoServices), firstEqualMs };
}
