import type { Config } from '../config/index.js';

/**
 * What a new configuration changes, split into what a running lexa applies at once (SIGHUP) and what only a
 * restart applies. Pure: the daemon acts on it, and logs both lists.
 */
export interface ReloadPlan {
  /** Keys applied live, e.g. "server.lxd.suffix". */
  readonly live: readonly string[];
  /** Keys whose new value waits for a restart (the running value stays). */
  readonly restart: readonly string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export function planReload(old: Config, next: Config): ReloadPlan {
  const live: string[] = [];
  const restart: string[] = [];
  const check = (key: string, a: unknown, b: unknown, list: string[]) => {
    if (!same(a, b)) list.push(key);
  };
  check('server.log.level', old.log.level, next.log.level, live);
  check('server.lxd.suffix', old.lxd.suffix, next.lxd.suffix, live);
  check('server.dns.ttl', old.dns.ttl, next.dns.ttl, live);
  check('server.dns.negative_ttl', old.dns.negativeTtl, next.dns.negativeTtl, live);
  // The handler is rebuilt on every reload; the UDP ceiling and the rate limiter are handed to listeners as they open.
  check('server.dns.edns_udp_size', old.dns.ednsUdpSize, next.dns.ednsUdpSize, live);
  const listeners = (c: Config) => ({
    dns: c.dns.enabled && c.dns.binds,
    dot: c.dns.dot.enabled && c.dns.dot.binds,
    doh: c.dns.doh.enabled && c.dns.doh.binds,
    quic: c.dns.quic.enabled && c.dns.quic.binds,
    tls: c.rest.enabled && c.rest.binds,
    metrics: c.metrics.enabled && c.metrics.binds,
    agent: c.agent !== null && c.agent.binds,
  });
  const [a, b] = [listeners(old), listeners(next)];
  for (const k of Object.keys(a) as (keyof typeof a)[])
    check(k === 'dns' ? 'server.dns.bind' : k === 'tls' || k === 'metrics' || k === 'agent' ? `server.${k}.bind` : `server.dns.${k}.bind`, a[k], b[k], live);
  const certs = (c: Config) => ({ rest: c.rest.tls, dot: [c.dns.dot.tls, c.dns.dot.hostname], doh: [c.dns.doh.tls, c.dns.doh.hostname], quic: [c.dns.quic.tls, c.dns.quic.hostname], agent: c.agent && [c.agent.tls, c.agent.hostname] });
  check('certificates', certs(old), certs(next), live);
  // Who may transfer, the TSIG key (queries, transfers, NOTIFY) and the NOTIFY targets: the daemon swaps them
  // under the running listeners (it defers them only when transfers were off at start).
  check('server.dns.transfer', old.dns.transfer, next.dns.transfer, live);
  // Running agent listeners read the token and the default allow list on every hello and state (daemon.ts):
  // agents connected with the old token stay connected.
  check('server.agent.token', old.agent?.token, next.agent?.token, live);
  check('server.agent.services', old.agent?.services, next.agent?.services, live);
  check('server.agent.issue_tokens', old.agent?.issueTokens, next.agent?.issueTokens, live);
  // The REST listeners reopen with it (the daemon re-reads the file at every reload, so a changed CA file does too).
  check('server.tls.client_ca', old.rest.clientCa, next.rest.clientCa, live);

  check('server.lxd (endpoint)', old.lxd.endpoint, next.lxd.endpoint, restart);
  check('server.lxd.project', [old.lxd.project, old.lxd.allProjects], [next.lxd.project, next.lxd.allProjects], restart);
  check('server.lxd.resync_interval', old.lxd.resyncIntervalMs, next.lxd.resyncIntervalMs, restart);
  check('server.lxd.watchdog_timeout', old.lxd.watchdogMs, next.lxd.watchdogMs, restart);
  check('server.dns.tcp_idle_timeout', old.dns.tcpIdleTimeoutMs, next.dns.tcpIdleTimeoutMs, restart);
  check('server.dns.max_tcp_connections', old.dns.maxTcpConnections, next.dns.maxTcpConnections, restart);
  check('server.dns.max_udp_reply', old.dns.maxUdpReply, next.dns.maxUdpReply, restart);
  check('server.dns.rate_limit', old.dns.rateLimit, next.dns.rateLimit, restart);
  // Each listener takes its limits when it opens; running ones keep theirs.
  const limits = (c: Config) => [c.dns.limits, c.dns.dot.limits, c.dns.doh.limits, c.dns.quic.limits, c.rest.limits, c.agent?.limits];
  check('limits', limits(old), limits(next), restart);
  check('server.log.out', old.log.out, next.log.out, restart);
  check('server.state_directory', old.stateDirectory, next.stateDirectory, restart);
  check('server.dns.reverse_zones', old.dns.reverseZones, next.dns.reverseZones, restart);
  // The grace is handed to the agent listeners when they open; running ones keep theirs.
  check('server.agent.grace', old.agent && old.agent.graceMs, next.agent && next.agent.graceMs, restart);
  return { live, restart };
}
