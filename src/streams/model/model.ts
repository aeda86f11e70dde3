import type { TraefikLabels } from './traefik-labels.js';

/**
 * The discovery model: what lexa knows about LXD, independent of LXD's wire format and of any protocol that
 * serves it. Every value here is treated as immutable once it is part of a Snapshot; readers must not modify
 * what they get.
 */

/** Transport protocol a service is offered on. */
export type ServiceProto = 'tcp' | 'udp';

/** Where a service declaration came from: `user.lexa.service.*` keys, or the lexa agent inside the instance. */
export type ServiceSource = 'config' | 'agent';

/** An agent service's health (Consul's words): critical until its checks pass; only passing ones are served. */
export type ServiceHealth = 'passing' | 'critical';

/**
 * A service an instance offers.
 *
 * `weight` is the operator's relative weight (1..256). DNS SRV answers encode it as `256 * weight - 1`, so HAProxy's
 * `srv_weight / 256 + 1` mapping gives back exactly `weight`, and RFC 2782 clients see the same ratios.
 */
export interface Service {
  readonly name: string;
  readonly port: number;
  readonly proto: ServiceProto;
  readonly tags: readonly string[];
  /** Interface the service listens on; null means the instance's primary interface. */
  readonly interface: string | null;
  /** RFC 2782 priority, 0..65535; lower is preferred. */
  readonly priority: number;
  /** Relative weight 1..256, see above. */
  readonly weight: number;
  readonly source: ServiceSource;
  /**
   * The check lexa itself runs against this service from the host (`user.lexa.service.<name>.check`); config
   * services only. Absent: nothing lexa runs checks it, and it is served while its instance runs.
   */
  readonly check?: ServiceCheck;
}

/** What a server-side check does: open a TCP connection, or GET a path over HTTP or HTTPS (2xx/3xx pass). */
export type CheckKind = 'tcp' | 'http' | 'https';

/** A server-side check as declared in `user.lexa.service.<name>.check*` keys (check-keys.ts), defaults applied. */
export interface ServiceCheck {
  readonly kind: CheckKind;
  /** The path GET asks for (`/` unless declared); null for tcp. */
  readonly path: string | null;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failures that turn a served service critical (the agent's `failures_before_critical`). */
  readonly failuresBeforeCritical: number;
  /** Consecutive successes that make a critical service passing (the agent's `success_before_passing`). */
  readonly successBeforePassing: number;
}

/**
 * A server-side check's state: `passing` and `critical` as Consul says them; `unreachable` when lexa cannot run the
 * check from this host at all (checks/reach.ts): such a service is served, as if it declared no check, and the
 * output says why.
 */
export type CheckStatus = 'passing' | 'critical' | 'unreachable';

/** The last published state of one server-side check (checks/checker.ts). */
export interface CheckResult {
  /** What was checked: `address:port` for tcp, the URL for http(s). A result for another target does not count. */
  readonly target: string;
  readonly status: CheckStatus;
  /** One line saying what the last run that changed anything saw, e.g. `HTTP GET http://10.99.0.5:80/: 200`. */
  readonly output: string;
  /**
   * Epoch ms of the run that produced this status and output. Runs that change neither are not published, so
   * documents and blocking queries move only when a check's state does.
   */
  readonly at: number;
}

/** An instance's check states by lower-cased service name; kept beside the instance in the snapshot, as agents are. */
export type InstanceChecks = Readonly<Record<string, CheckResult>>;

/**
 * One network interface inside an instance, with its global-scope addresses in the order LXD lists them.
 *
 * `ipv4`/`ipv6` are every address the instance reports: its own say, answered only under its own names
 * (`<host>`, `<if>.if.<host>`). `trustedIpv4`/`trustedIpv6` are the subset LXD vouches for (trust.ts): the only
 * addresses that may name a service (`<svc>.service`, SRV additionals, `/traefik`, `/services`), answer a PTR or
 * bind an agent, since those are names and bindings other instances' traffic relies on.
 */
export interface NetInterface {
  readonly name: string;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
  readonly trustedIpv4: readonly string[];
  readonly trustedIpv6: readonly string[];
}

/** LXD's instance status string, e.g. "Running", "Stopped", "Frozen", "Error". */
export type InstanceStatus = string;

export interface Instance {
  /** Unique key: `<project>/<name>`, or `<site>/<project>/<name>` in a named site. */
  readonly key: string;
  readonly name: string;
  /**
   * The site (a named `lxd` block) the instance belongs to; absent for the one unnamed site of a one-site
   * configuration, whose names carry no site label (docs/sites.md).
   */
  readonly site?: string;
  readonly project: string;
  readonly type: 'container' | 'virtual-machine' | string;
  readonly status: InstanceStatus;
  /** True only for status "Running"; only running instances answer in DNS and REST. */
  readonly running: boolean;
  /** Cluster member the instance runs on; "none" (LXD's own value) when LXD is not clustered. */
  readonly location: string;
  /**
   * Interfaces, primary first: NICs that LXD manages (ordered by device name), then any other interface the
   * instance reports; loopback is never listed. `interfaces[0]` is what `<host>.<suffix>` answers with.
   */
  readonly interfaces: readonly NetInterface[];
  readonly services: readonly Service[];
  /**
   * The config services as LXD declares them, checked or not, when any declares a check: `services` then holds
   * only those whose check lets them be served (served.ts). Absent on an instance as read from LXD (its
   * `services` are exactly its config services) and on instances without checks.
   */
  readonly declared?: readonly Service[];
  /**
   * Traefik routing declared in `user.traefik.*` keys (Traefik's label grammar), already checked against
   * `services`; see traefik-labels.ts.
   */
  readonly traefik: TraefikLabels;
  /**
   * Problems found while reading `user.lexa.*` and `user.traefik.*` keys (each one names the key), and interfaces
   * whose names cannot be DNS labels (dns-label.ts). Empty when all is well.
   */
  readonly configErrors: readonly string[];
  /**
   * LXD profiles the instance uses, in LXD's order. Editing a profile emits `profile-updated` for the profile
   * only, so this is how the users to re-read are found.
   */
  readonly profiles: readonly string[];
  /**
   * The service names this instance's agent may announce (`user.lexa.agent.services` on the instance or one of its
   * profiles; `*` allows any); undefined when the key is absent, and then the server's default applies (agents.ts).
   */
  readonly agentServices?: readonly string[];
  /**
   * SHA-256 (hex) of the instance's own `user.lexa.agent.token`: the credential its agent must present. Only the
   * digest is kept, so no snapshot reader (REST, logs, tests) ever holds the secret. Undefined when unset.
   */
  readonly agentTokenDigest?: string;
  /**
   * Extra names from `user.lexa.alias` (aliases.ts): relative (`www`) or absolute with a trailing dot
   * (`www.lexa.`), answered as CNAMEs to the instance's own name. Absent when the key is.
   */
  readonly aliases?: readonly string[];
}

/**
 * A member of an LXD cluster. A standalone LXD is represented as the one member of its own cluster (named after
 * the server, with its API addresses), so `cluster.<instance>` names work there too.
 */
export interface ClusterMember {
  readonly name: string;
  /** The member's API URL as LXD reports it, e.g. https://10.77.0.11:8443. */
  readonly url: string;
  readonly status: string;
  readonly ipv4: readonly string[];
  readonly ipv6: readonly string[];
}

/** A service as offered by one instance: the unit DNS service lookups and SRV answers are made of. */
export interface ServiceEndpoint {
  readonly instance: Instance;
  readonly service: Service;
  /** The interface the service is reachable on (already resolved from `service.interface`). */
  readonly iface: NetInterface;
}

/** A service the agent inside an instance announced, with the health its checks gave it. */
export interface AgentService extends Service {
  readonly source: 'agent';
  readonly health: ServiceHealth;
}

/**
 * What the agent in one instance last said. Kept beside the instance in the snapshot (not inside it), so that an
 * LXD re-read of the instance does not wipe it; the instance's served `services` are derived from both (agents.ts).
 */
export interface AgentState {
  /** The connection that said it; a later connection of the same instance replaces it. */
  readonly session: string;
  /** False once the connection is gone: the services stay for the server's grace period, then leave. */
  readonly connected: boolean;
  /** Every service the agent declares, passing or critical, in the agent's order. */
  readonly services: readonly AgentService[];
  /** Epoch ms of the last message (or of the disconnect). */
  readonly at: number;
  /**
   * The server's default allow list (`server.agent.services`) when this was said: it applies to an instance
   * without `user.lexa.agent.services`. Kept here so an instance re-read from LXD is re-checked without the config.
   */
  readonly defaultServices: readonly string[];
}
