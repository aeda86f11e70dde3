import type { Config } from '../config/index.js';
import { TRANSPORTS } from '../servers/registry.js';

/**
 * What a new configuration changes, split into what a running lexa applies at once (SIGHUP) and what only a
 * restart applies. Pure: the daemon applies `decideReload`'s configuration and logs both lists; it decides nothing
 * itself. The transports' keys (binds, certificates, limits) come from their descriptors (servers/registry.ts).
 */
export interface ReloadPlan {
  /** Keys applied live, e.g. "server.lxd.suffix". */
  readonly live: readonly string[];
  /** Keys whose new value waits for a restart (the running value stays). */
  readonly restart: readonly string[];
}

/** A plan, and the configuration to put in force: the new one with every value that waits for a restart kept. */
export interface ReloadDecision {
  readonly plan: ReloadPlan;
  readonly apply: Config;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Whether `c` serves zone transfers or sends NOTIFY (then zone serials are wired in at start: dns/serial.ts). */
export const transfersIn = (c: Config): boolean => c.dns.transfer.allow.length > 0 || c.dns.transfer.notify.length > 0;

/**
 * With transfers wired in at start, the zone's shape (suffix, TTLs) is fixed until a restart, so queries and
 * transfers never disagree on a serial's content.
 */
const ZONE_SHAPE_KEYS = ['server.lxd.suffix', 'server.dns.ttl', 'server.dns.negative_ttl'];

/** The plan alone (what `reload` returns and logs); see decideReload. */
export function planReload(running: Config, next: Config, started: Config = running): ReloadPlan {
  return decideReload(running, next, started).plan;
}

/**
 * Decides a reload from the configuration in force (`running`), the new one (`next`) and the one lexa started
 * with (`started`: what was wired in then). The only place reload policy is decided.
 */
export function decideReload(running: Config, next: Config, started: Config): ReloadDecision {
  const live: string[] = [];
  const restart: string[] = [];
  const check = (key: string, a: unknown, b: unknown, list: string[]) => {
    if (!same(a, b)) list.push(key);
  };
  const transfers = transfersIn(started);
  const zoneShape = transfers ? restart : live;
  check('server.log.level', running.log.level, next.log.level, live);
  // The REST app reads the datacenter name on every request (daemon.ts).
  check('server.consul.datacenter', running.consul.datacenter, next.consul.datacenter, live);
  check('server.lxd.suffix', running.lxd.suffix, next.lxd.suffix, zoneShape);
  check('server.dns.ttl', running.dns.ttl, next.dns.ttl, zoneShape);
  check('server.dns.negative_ttl', running.dns.negativeTtl, next.dns.negativeTtl, zoneShape);
  // The name server's addresses are zone content (ns.<suffix> A/AAAA): resolved, so a bind change that moves the
  // default shows here too.
  check('server.dns.ns_addresses', running.dns.nsAddresses, next.dns.nsAddresses, zoneShape);
  // The handler is rebuilt on every reload; the UDP ceiling and the rate limiter are handed to listeners as they open.
  check('server.dns.edns_udp_size', running.dns.ednsUdpSize, next.dns.ednsUdpSize, live);
  // A listener set reopens exactly the binds that changed (listener-set.ts).
  for (const t of TRANSPORTS) check(`${t.configPath}.bind`, t.enabled(running) && t.binds(running), t.enabled(next) && t.binds(next), live);
  // Each TLS transport's certificate: swapped into running listeners where the descriptor says they can take one.
  const certs = (c: Config, swapsLive: boolean) => TRANSPORTS.flatMap((t) => (t.tls !== null && t.tls.swapsLive === swapsLive ? [t.tls.settings(c)] : []));
  check('certificates', certs(running, true), certs(next, true), live);
  check('certificates', certs(running, false), certs(next, false), restart);
  // Who may transfer, the TSIG key (queries, transfers, NOTIFY) and the NOTIFY targets: swapped under the running
  // listeners; turning transfers on where they were off at start waits (the serials are not wired in).
  const transferFrozen = !transfers && transfersIn(next);
  check('server.dns.transfer', running.dns.transfer, next.dns.transfer, transferFrozen ? restart : live);
  // Running agent listeners read the token and the default allow list on every hello and state (daemon.ts):
  // agents connected with the old token stay connected.
  check('server.agent.token', running.agent?.token, next.agent?.token, live);
  check('server.agent.services', running.agent?.services, next.agent?.services, live);
  check('server.agent.issue_tokens', running.agent?.issueTokens, next.agent?.issueTokens, live);
  // The REST listeners reopen with it (the client CA file is re-read at every reload, so a changed file does too).
  check('server.tls.client_ca', running.rest.clientCa, next.rest.clientCa, live);

  check('server.lxd (endpoint)', running.lxd.endpoint, next.lxd.endpoint, restart);
  check('server.lxd.project', [running.lxd.project, running.lxd.allProjects], [next.lxd.project, next.lxd.allProjects], restart);
  check('server.lxd.resync_interval', running.lxd.resyncIntervalMs, next.lxd.resyncIntervalMs, restart);
  check('server.lxd.watchdog_timeout', running.lxd.watchdogMs, next.lxd.watchdogMs, restart);
  // Each site has its own reflector, started once: adding, removing, renaming or changing a site waits.
  check('server.lxd.name', running.sites.map((s) => s.name), next.sites.map((s) => s.name), restart);
  check('server.lxd (further sites)', running.sites.slice(1), next.sites.slice(1), restart);
  check('server.lxd.watch_leases', running.sites.map((s) => s.watchLeases), next.sites.map((s) => s.watchLeases), restart);
  check('server.dns.tcp_idle_timeout', running.dns.tcpIdleTimeoutMs, next.dns.tcpIdleTimeoutMs, restart);
  check('server.dns.max_tcp_connections', running.dns.maxTcpConnections, next.dns.maxTcpConnections, restart);
  check('server.dns.max_udp_reply', running.dns.maxUdpReply, next.dns.maxUdpReply, restart);
  check('server.dns.udp_receive_buffer', running.dns.udpReceiveBuffer, next.dns.udpReceiveBuffer, restart);
  check('server.dns.rate_limit', running.dns.rateLimit, next.dns.rateLimit, restart);
  // Each listener takes its limits when it opens; running ones keep theirs.
  const limits = (c: Config) => TRANSPORTS.map((t) => t.limits(c));
  check('limits', limits(running), limits(next), restart);
  check('server.log.out', running.log.out, next.log.out, restart);
  check('server.state_directory', running.stateDirectory, next.stateDirectory, restart);
  check('server.dns.reverse_zones', running.dns.reverseZones, next.dns.reverseZones, restart);
  // The grace is handed to the agent listeners when they open; running ones keep theirs.
  check('server.agent.grace', running.agent && running.agent.graceMs, next.agent && next.agent.graceMs, restart);

  // What waits for a restart keeps its running value. Limits, the UDP ceiling and the rate limit are not kept:
  // running listeners keep theirs, and listeners opened by this reload (new binds) take the new ones.
  const zoneOf = (c: Config) => ({ suffix: c.lxd.suffix, ttl: c.dns.ttl, negativeTtl: c.dns.negativeTtl, nsAddresses: c.dns.nsAddresses });
  const zone = zoneOf(transfers ? running : next);
  const apply: Config = {
    ...next,
    lxd: {
      ...next.lxd,
      suffix: zone.suffix,
      endpoint: running.lxd.endpoint,
      project: running.lxd.project,
      allProjects: running.lxd.allProjects,
      resyncIntervalMs: running.lxd.resyncIntervalMs,
      watchdogMs: running.lxd.watchdogMs,
    },
    sites: running.sites,
    dns: { ...next.dns, ttl: zone.ttl, negativeTtl: zone.negativeTtl, nsAddresses: zone.nsAddresses, reverseZones: running.dns.reverseZones, transfer: transferFrozen ? running.dns.transfer : next.dns.transfer },
    log: { ...next.log, out: running.log.out },
    stateDirectory: running.stateDirectory,
  };
  return { plan: { live, restart }, apply };
}
