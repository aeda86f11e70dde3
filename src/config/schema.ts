/**
 * Every key of lexa's configuration file, declared once: its type, range, and its value when absent, with the
 * reason beside any default that is not obvious. `Settings` (the checked, defaulted file) is derived from it;
 * load.ts adds only what involves several keys or the world outside the file (paths, the environment).
 */
import { block, bool, duration, int, list, oneOf, text, type Infer, type ReadContext } from './builder.js';

/**
 * The TSIG HMAC algorithms lexa accepts, by their DNS names (RFC 8945 §6), each with the node:crypto digest that
 * computes it; MD5 (deprecated) is not offered. Declared here, where the configuration checks the name; tsig.ts
 * signs with it.
 */
export const TSIG_ALGORITHMS = {
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
} as const;
const TSIG_ALGORITHM_NAMES = Object.keys(TSIG_ALGORITHMS) as (keyof typeof TSIG_ALGORITHMS)[];

/** TTLs are 32-bit with the top bit clear (RFC 2181 §8). */
const TTL_MAX = 2_147_483_647;

const port = int(0, 65535);
/** Labels of 1..63 letters, digits and inner hyphens; a trailing dot is allowed. */
const DNS_NAME = /^(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?$/i;
/** A TSIG secret: base64, as `tsig-keygen`, `keymgr` and knot's configs write it. load.ts checks secret_file's too. */
export const TSIG_SECRET = /^[A-Za-z0-9+/]+={0,2}$/;
/** An agent token: 16..1024 non-blank characters. load.ts checks token_file's too. */
export const AGENT_TOKEN = /^\S{16,1024}$/;
/** A path in the file; load.ts resolves it against the file's directory and checks that it is readable. */
const file = text(/\S/, 'a file path');

/**
 * `bind { host = ..., port = ... }`, repeatable. Absent, the transport listens on `d` alone; a bind block that
 * omits host or port takes it from `d`. Every default is loopback on a port above 1023: lexa exposes nothing and
 * needs no privilege until configured to.
 */
const binds = (d: { readonly host: string; readonly port: number }) =>
  list(
    block({
      host: text(/^[^\s]+$/, 'an address such as 127.0.0.1 or ::').default(d.host),
      port: port.default(d.port),
    }),
  )
    .refine((list) => {
      const seen = new Set<string>();
      const twice: string[] = [];
      for (const b of list) {
        const id = `${b.host}:${b.port}`;
        // Port 0 asks the system for a free port, so the same host may ask more than once.
        if (seen.has(id) && b.port !== 0) twice.push(`${id} is listed twice`);
        seen.add(id);
      }
      return twice;
    })
    .default([d]);

/** A deadline: at least 100 ms (a smaller one would close connections on any real network). */
const deadline = duration().refine((ms) => (ms >= 100 ? undefined : 'must be at least 100ms'));

/**
 * A listener's `limits { ... }`: fair sharing of its connections (servers/fairness.ts). A source is an IPv4 address,
 * or an IPv6 address cut to `ipv6_source_prefix` bits. A source holds at most `max_per_source` connections, and
 * never more than three quarters of `max_connections`: the last quarter is kept for sources holding none.
 * `first_request_timeout` runs from the accept (after the TLS handshake on TLS listeners) to the first complete
 * query or request headers; `idle_timeout` between complete queries/requests. Trickled bytes extend neither.
 * `d` gives the listener's defaults, with their reasons at each use.
 */
const limitFields = (d: { max: number; perSource: number; ipv6Prefix: number; firstRequest: number; idle: number }) => ({
  max_connections: int(1, 1_000_000).default(d.max),
  max_per_source: int(1, 1_000_000).default(d.perSource),
  ipv6_source_prefix: int(32, 128).default(d.ipv6Prefix),
  first_request_timeout: deadline.default(d.firstRequest),
  idle_timeout: deadline.default(d.idle),
});
const limits = (d: Parameters<typeof limitFields>[0]) => block(limitFields(d));
/** `limits` of a TLS listener: the same, plus the deadline for the TLS handshake (from the accept). */
const tlsLimits = (d: Parameters<typeof limitFields>[0] & { handshake: number }) =>
  block({ ...limitFields(d), handshake_timeout: deadline.default(d.handshake) });

/**
 * Defaults of DNS over TCP and DoT. HAProxy, unbound and CoreDNS forwarders keep one to a few connections each, so
 * 16 per source is generous and 16 sources can fill the 256 slots only all together; a client connects to ask, so
 * its first query comes at once (5 s covers any network); 10 s idle lets a forwarder reuse a connection across
 * bursts (RFC 7766 §6.2.3: reclaim idle connections "in the order of seconds"). `max_connections` and
 * `idle_timeout` fall back to the older server.dns.max_tcp_connections and tcp_idle_timeout when only those are set.
 */
const DNS_STREAM_LIMITS = { max: 256, perSource: 16, ipv6Prefix: 64, firstRequest: 5_000, idle: 10_000 } as const;

/**
 * DoT, DoH and DoQ: off until their block is declared; a declared block is on unless it says `enabled = false`.
 * With neither certificate nor key lexa generates a self-signed pair (both or neither: load.ts).
 */
const encrypted = <L extends ReturnType<typeof tlsLimits>>(bind: { readonly host: string; readonly port: number }, limitsKey: L) =>
  block({
    enabled: bool().default(true),
    bind: binds(bind),
    limits: limitsKey,
    certificate: file.optional(),
    key: file.optional(),
    /** The name a generated certificate is for (its SAN). */
    hostname: text().default('localhost'),
  }).whenAbsent({ enabled: false });

/**
 * A site's label: a lower-case DNS label (names carry it as `<host>.<site>.<suffix>`), never one of the zone's
 * own words (`service`, `if`, `interface`, `cluster`), which would make names ambiguous (load.ts).
 */
export const SITE_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** One `lxd { ... }` block: a site. */
const lxdSite = block({
  /**
   * DNS zone and REST name suffix; lower-cased, trailing dot dropped. One zone for every site: blocks that give
   * it must agree (load.ts); absent from every block, "lexa".
   */
  suffix: text(DNS_NAME, 'a DNS name such as "lexa" or "lxd.example.com"')
    .map((s) => s.toLowerCase().replace(/\.$/, ''))
    .optional(),
  /** The site's label in names; required when there is more than one block (load.ts). */
  name: text(SITE_LABEL, 'a lower-case DNS label such as "rack1"').optional(),
  /** LXD's local socket. Absent: found in the environment (load.ts: $LXD_DIR, then the standard places). */
  socket: file.optional(),
  /**
   * LXD over HTTPS instead of the socket: declaring a bind block is what selects HTTPS. Repeatable: the members
   * of one LXD cluster, tried in order for the first connection; once connected, lexa also knows every member
   * from LXD itself and fails over to any of them (streams/lxd/failover-client.ts).
   */
  bind: list(
    block({
      host: text(/\S/).required('to reach LXD over HTTPS'),
      /** LXD's own default HTTPS port (core.https_address without a port). */
      port: port.default(8443),
    }),
  ).default([]),
  /** Client certificate and key LXD trusts; only with bind. */
  certificate: file.optional(),
  key: file.optional(),
  /** LXD's server certificate to pin; absent, any is accepted (and that is logged as a warning). */
  server_certificate: file.optional(),
  /** LXD's own default project. Ignored (and an error if given) with all_projects. */
  project: text(/^[A-Za-z0-9_.-]+$/, 'an LXD project name').default('default'),
  all_projects: bool().default(false),
  /** Full re-list period. Events carry every change; the re-list only repairs what a lost event left wrong. */
  resync_interval: duration()
    .refine((ms) => (ms === 0 || ms >= 1000 ? undefined : 'must be 0 (off) or at least 1s'))
    .default(5 * 60_000),
  /**
   * Reconnect when nothing (event, ping, pong) arrives for this long. LXD pings every events websocket every
   * 10 s; missing two and a half of those pings means the daemon is gone or hung.
   */
  watchdog_timeout: duration()
    .refine((ms) => (ms >= 1000 ? undefined : 'must be at least 1s'))
    .default(25_000),
  /**
   * With the local socket: learn a new instance's DHCP lease from its bridge's dnsmasq lease file (beside the
   * socket) the moment dnsmasq writes it, instead of at the next poll of LXD's lease API (streams/lxd/lease-watch.ts).
   * On by default: it only reads what LXD's own lease API reads, and falls back to polling where there is no file.
   */
  watch_leases: bool().default(true),
});

/** The whole file. Spellings of lexa 0.2 (the original lexa) are accepted as they were. */
export const configSchema = block({
  server: block({
    /**
     * One block per site (an LXD or Incus server or cluster lexa watches), in the order unqualified names fail
     * over in (docs/sites.md). One block without a name is today's single LXD; load.ts checks the rules across
     * blocks (names, one suffix).
     */
    lxd: list(lxdSite, Infinity, 1).default([lxdSite.absent('server.lxd', { problems: [], given: new Set() })!]),
    /** The REST API (HTTPS). */
    tls: block({
      enabled: bool().default(true),
      bind: binds({ host: '127.0.0.1', port: 18443 }),
      /** lexa 0.2 spellings (the second its typo): accepted, ignored with a warning; Node 20 has no SO_REUSEPORT. */
      so_reuse_port: bool().optional(),
      so_resue_port: bool().optional(),
      /** Both or neither; with neither lexa generates a self-signed certificate. */
      certificate: file.optional(),
      key: file.optional(),
      /**
       * HAProxy, Traefik and Prometheus poll with a connection or two each, but every SSE subscriber and blocking
       * query holds one for minutes: 32 per source. A request's headers follow the handshake at once (10 s is
       * generous; `first_request_timeout` also bounds each later request's headers); idle keep-alive 5 s.
       */
      limits: tlsLimits({ max: 256, perSource: 32, ipv6Prefix: 64, handshake: 5_000, firstRequest: 10_000, idle: 5_000 }),
      /**
       * CA certificate(s), PEM: with it, a client must present a certificate signed by one of them or its TLS
       * handshake is refused (mutual TLS), for hosts where tenants share the network with the REST API. Absent:
       * any client may connect, as before.
       */
      client_ca: file.optional(),
    }),
    dns: block({
      enabled: bool().default(true),
      bind: binds({ host: '127.0.0.1', port: 18053 }),
      /** TTL of every answer, seconds. 0 (never cache), as lexa 0.2: instances change faster than caches expire. */
      ttl: int(0, TTL_MAX).default(0),
      /** SOA minimum: how long resolvers may cache NXDOMAIN/NODATA, seconds. 0 so a new instance answers at once. */
      negative_ttl: int(0, TTL_MAX).default(0),
      /**
       * Plain TCP and DoT close a connection idle this long. RFC 7766 §6.2.3 wants idle connections reclaimed "in
       * the order of seconds"; 10 s still lets a forwarder (CoreDNS, unbound) reuse one connection across bursts.
       */
      tcp_idle_timeout: duration().default(10_000),
      /** Plain TCP and DoT close connections beyond this on accept: a bound on file descriptors and memory. */
      max_tcp_connections: int(1, 65535).default(256),
      /** Plain TCP's fair sharing (see DNS_STREAM_LIMITS). */
      limits: limits(DNS_STREAM_LIMITS),
      /**
       * Reverse zones to answer PTR in: subnets (`10.99.0.0/24`, `fd42:99::/64`) or zone names
       * (`0.99.10.in-addr.arpa`). Absent: one per subnet of LXD's managed networks, read from LXD.
       */
      reverse_zones: list(text(/^[0-9A-Za-z:./-]+$/, 'a subnet such as "10.99.0.0/24" or a zone such as "0.99.10.in-addr.arpa"').required('')).optional(),
      /**
       * The addresses of the zone's name server name, `ns.<suffix>` (the apex NS target and the SOA MNAME): the
       * apex NS answer carries them as additional records and `ns.<suffix>` answers them as A/AAAA (and in zone
       * transfers), so a checker or a resolver following the NS finds its server. Absent: the specific addresses
       * `server.dns.bind` listens on (a wildcard 0.0.0.0 or :: names no address: lexa cannot know which of the
       * host's addresses clients reach it by); `[]`: none, and `ns.<suffix>` is an ordinary host name again.
       */
      ns_addresses: list(text(/^[0-9A-Fa-f:.]+$/, 'an IPv4 or IPv6 address such as "10.99.0.1"').required('')).optional(),
      /**
       * The UDP payload size our EDNS OPT advertises: 1232, DNS Flag Day 2020's size that crosses any path
       * (the IPv6 minimum MTU, 1280) unfragmented. Up to 4096, the largest any common resolver uses.
       */
      edns_udp_size: int(512, 4096).default(1232),
      /**
       * The largest UDP reply, sent only to a client whose EDNS size asks for that much. 4096, not 1232: HAProxy
       * (`accepted_payload_size 8192`) never retries over TCP, and an SRV set over 1232 bytes (~30 servers) cut
       * there leaves its other server slots empty. Above 16 KiB a reply is a dozen IP fragments: use TCP.
       */
      max_udp_reply: int(512, 16384).default(4096),
      /**
       * Bytes of queries the kernel may queue on each UDP socket while lexa is not reading (SO_RCVBUF; 0: the
       * kernel's default). Linux's default, 208 KiB, holds 256 small queries: 13 ms at 20,000 QPS, and a busy host
       * takes lexa off the CPU for longer (up to ~165 ms measured on a shared 2-core machine), dropping every query
       * that arrives meanwhile. 4 MiB (the kernel doubles it) holds ~10,000: half a second at 20,000 QPS, for at
       * most 8 MiB of memory per socket. Linux caps it at net.core.rmem_max unless lexa may exceed that
       * (CAP_NET_ADMIN, SO_RCVBUFFORCE, as unbound's so-rcvbuf); lexa logs the size it got.
       */
      udp_receive_buffer: int(0, 256 * 1024 * 1024).default(4 * 1024 * 1024),
      /**
       * Response rate limiting for UDP (BIND's `rate-limit`, knot's `rrl`): replies per client prefix, so lexa
       * cannot be used to flood a spoofed victim with replies up to ~100 times its queries. On by default with
       * loopback exempt: a loopback source cannot be spoofed from outside the host, and forwarders (unbound,
       * dnsmasq, CoreDNS) on the host send every client's queries from one address.
       */
      rate_limit: block({
        /**
         * Replies per second per prefix; 0 turns limiting off. 200, NSD's default: ~6 Mbit/s of 4 KiB replies at
         * most toward any victim /24, while a /24 of containers asking directly gets 200 answers a second.
         */
        responses_per_second: int(0, 1_000_000).default(200),
        /** Every slip-th limited reply is sent empty with TC (the client retries over TCP); 0: all dropped. BIND's 2. */
        slip: int(0, 10).default(2),
        /** Debt a flooding prefix can build up, hence its recovery time once quiet. BIND's 15 s. */
        window: duration()
          .refine((ms) => (ms >= 1000 && ms <= 3_600_000 ? undefined : 'must be 1s..1h'))
          .default(15_000),
        /** Sources in one IPv4 /24 share an account (BIND's default): one site, one rate. */
        ipv4_prefix: int(8, 32).default(24),
        /** IPv6 /56: the smallest prefix a site is commonly delegated (RIPE-690), so one site is one account. */
        ipv6_prefix: int(16, 128).default(56),
        /** Prefixes tracked at most; beyond, the oldest is forgotten. ~100 bytes each: ~6 MB at the default. */
        max_prefixes: int(1, 10_000_000).default(65_536),
        /** Addresses or prefixes never limited. */
        exempt: list(text(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, 'an address or prefix such as "127.0.0.0/8"').required(''))
          .default(['127.0.0.0/8', '::1/128']),
      }),
      /** Zone transfers (AXFR/IXFR over TCP) and NOTIFY to secondaries. Absent: transfers refused to everyone. */
      transfer: block({
        /** Addresses or prefixes (`10.0.0.0/8`) that may transfer the zones. Empty: nobody. */
        allow: list(text(/^[0-9A-Fa-f:.]+(\/\d{1,3})?$/, 'an address or prefix such as "127.0.0.1" or "10.0.0.0/8"').required('')).default([]),
        /** Secondaries told of every change (RFC 1996), `host:port` or `[v6]:port` (port 53 when omitted). */
        notify: list(text(/^(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(:\d{1,5})?$/, 'an address with optional port such as "10.0.0.2:53"').required('')).default([]),
        /** TSIG key (RFC 8945): with it, transfers must be signed with it, and NOTIFY is signed. */
        key: block({
          name: text(DNS_NAME, 'a key name such as "lexa-xfr"')
            .map((s) => s.toLowerCase().replace(/\.$/, ''))
            .required('(the TSIG key name)'),
          algorithm: oneOf(TSIG_ALGORITHM_NAMES).default('hmac-sha256'),
          /**
           * The shared secret, base64 (as `tsig-keygen`, `keymgr` and knot's configs write it), inline or in
           * secret_file (read at load, trimmed): exactly one of them (load.ts).
           */
          secret: text(TSIG_SECRET, 'base64').secret().optional(),
          secret_file: file.optional(),
        }).optional(),
      }),
      /** As plain TCP, and a TLS handshake is one or two round trips: 5 s is generous. */
      dot: encrypted({ host: '127.0.0.1', port: 18853 }, tlsLimits({ ...DNS_STREAM_LIMITS, handshake: 5_000 })),
      /** A connection is an HTTP/1.1 connection or an HTTP/2 session; otherwise as DoT. */
      doh: encrypted({ host: '127.0.0.1', port: 18855 }, tlsLimits({ ...DNS_STREAM_LIMITS, handshake: 5_000 })),
      /**
       * QUIC connections: each may hold up to 100 streams × 64 KiB of queries, hence 512 in all. The handshake
       * includes the stateless Retry round trip. 30 s idle keeps a resolver's connection warm between bursts
       * (at least 5 s: quic-go clients assume so).
       */
      quic: encrypted(
        { host: '127.0.0.1', port: 18854 },
        block({
          ...limitFields({ max: 512, perSource: 16, ipv6Prefix: 64, firstRequest: 10_000, idle: 30_000 }),
          handshake_timeout: deadline.default(10_000),
          /**
           * Initials for no connection one source may have handled a second (servers/doq/quic.ts: each costs a
           * signed Retry, or a connection and its handshake): a real client's connection takes two (the Retry
           * round trip), so 256 lets one address open 128 connections a second, more than any resolver opens to
           * one server, while a flood from one address costs lexa at most 256 Retries a second.
           */
          handshakes_per_second: int(1, 1_000_000).default(256),
        }),
      ),
    }),
    /**
     * The agent endpoint (agents inside containers announce their services): off until declared. Containers must
     * reach `bind`, so in practice it is the bridge address (e.g. lxdbr0's 10.99.0.1), not the loopback default.
     */
    agent: block({
      bind: binds({ host: '127.0.0.1', port: 18500 }),
      /**
       * An optional shared secret every agent must present besides its instance's own credential (at most one of
       * token and token_file, load.ts): a second gate, e.g. to retire all agents of a deployment at once.
       */
      token: text(AGENT_TOKEN, 'a secret of 16..1024 non-blank characters').secret().optional(),
      token_file: file.optional(),
      /**
       * The service names an agent may announce for an instance without `user.lexa.agent.services` (`*`: any).
       * Empty: such an agent may announce nothing; the operator allows names per instance or profile.
       */
      services: list(text(/^(\*|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$/, 'a service name (a lower-case DNS label) or *').required('')).default([]),
      /**
       * lexa writes a random `user.lexa.agent.token` into each running instance whose agent may announce a service
       * and has none (its LXD credential must then be allowed to edit instances). false: the operator sets them.
       */
      issue_tokens: bool().default(true),
      /** Both or neither; with neither lexa generates a self-signed certificate and logs its fingerprint. */
      certificate: file.optional(),
      key: file.optional(),
      /** The name a generated certificate is for, beside the bind addresses. */
      hostname: text().default('localhost'),
      /**
       * How long an agent's services outlive its connection: long enough to ride out a server restart or a
       * network blip without emptying backends, short enough that a dead container leaves soon.
       */
      grace: duration().default(10_000),
      /**
       * One agent per container, each from its own address: thousands of connections in all, 4 per address (a
       * reconnect overlaps the connection it replaces), and every IPv6 address its own source (the containers of
       * one bridge share its /64). `first_request_timeout` is the deadline for the hello (with the token); agents
       * ping every 5 s, so 15 s idle is three missed pings.
       */
      limits: tlsLimits({ max: 8192, perSource: 4, ipv6Prefix: 128, handshake: 5_000, firstRequest: 10_000, idle: 15_000 }),
    }).optional(),
    /**
     * Prometheus metrics on a plain-HTTP listener of their own, for a scraper that should not need the REST API's
     * TLS; the same text is always at GET /metrics on the REST API. Off until the block is declared.
     */
    metrics: block({
      enabled: bool().default(true),
      /** CoreDNS serves metrics on 9153; lexa's ports are 18xxx. */
      bind: binds({ host: '127.0.0.1', port: 18153 }),
    }).whenAbsent({ enabled: false }),
    /**
     * The read-only Consul HTTP API on the REST listener (`/v1/...`, docs/catalog.md). Always served there; this
     * block only names things Consul clients read.
     */
    consul: block({
      /**
       * The datacenter lexa's catalog answers as (`?dc=` naming another is Consul's 500 "No path to datacenter").
       * Consul's own rule for the name: lower-case letters, digits, `-` and `_`. "lexa": the zone's default name.
       */
      datacenter: text(/^[a-z0-9_-]{1,64}$/, 'a datacenter name of lower-case letters, digits, - and _').default('lexa'),
    }),
    /**
     * A directory lexa may write: generated certificates are kept there and reused across restarts (so clients
     * can pin them). Absent: $STATE_DIRECTORY (what systemd's StateDirectory= sets), else none (a new pair per start).
     */
    state_directory: file.optional(),
    log: block({
      /** "stdout", "stderr" or a file path (appended to). */
      out: text(/\S/, '"stdout", "stderr" or a file path').default('stdout'),
      level: oneOf(['debug', 'info', 'warn', 'error']).default('info'),
    }),
  }),
});

/** The file after checking and defaulting: every key present, typed as declared. */
export type Settings = Infer<typeof configSchema>;

/**
 * Checks parsed HCL (as JSON). `settings` is set only when there are no problems (each `key.path: ...`); `given`
 * holds the paths of the keys the file set, for rules about a key's presence rather than its value.
 */
export function readSettings(json: unknown): {
  readonly settings?: Settings;
  readonly problems: readonly string[];
  readonly given: ReadonlySet<string>;
} {
  const cx: ReadContext = { problems: [], given: new Set() };
  const settings = configSchema.read(json ?? {}, '', cx);
  if (cx.problems.length > 0 || settings === undefined) return { problems: cx.problems, given: cx.given };
  return { settings, problems: [], given: cx.given };
}
