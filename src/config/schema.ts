/**
 * Every key of lexa's configuration file, declared once: its type, range, and its value when absent, with the
 * reason beside any default that is not obvious. `Settings` (the checked, defaulted file) is derived from it;
 * load.ts adds only what involves several keys or the world outside the file (paths, the environment).
 */
import { block, bool, duration, int, list, oneOf, text, type Infer, type ReadContext } from './builder.js';

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

/**
 * DoT, DoH and DoQ: off until their block is declared; a declared block is on unless it says `enabled = false`.
 * With neither certificate nor key lexa generates a self-signed pair (both or neither: load.ts).
 */
const encrypted = (bind: { readonly host: string; readonly port: number }) =>
  block({
    enabled: bool().default(true),
    bind: binds(bind),
    certificate: file.optional(),
    key: file.optional(),
    /** The name a generated certificate is for (its SAN). */
    hostname: text().default('localhost'),
  }).whenAbsent({ enabled: false });

/** The whole file. Spellings of lexa 0.2 (the original lexa) are accepted as they were. */
export const configSchema = block({
  server: block({
    lxd: block({
      /** DNS zone and REST name suffix; lower-cased, trailing dot dropped. */
      suffix: text(DNS_NAME, 'a DNS name such as "lexa" or "lxd.example.com"')
        .map((s) => s.toLowerCase().replace(/\.$/, ''))
        .default('lexa'),
      /** LXD's local socket. Absent: found in the environment (load.ts: $LXD_DIR, then the standard places). */
      socket: file.optional(),
      /**
       * LXD over HTTPS instead of the socket: declaring a bind block is what selects HTTPS. Repeatable: the members
       * of one LXD cluster, tried in order for the first connection; once connected, lexa also knows every member
       * from LXD itself and fails over to any of them (streams/failover-client.ts).
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
    }),
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
      /**
       * Reverse zones to answer PTR in: subnets (`10.99.0.0/24`, `fd42:99::/64`) or zone names
       * (`0.99.10.in-addr.arpa`). Absent: one per subnet of LXD's managed networks, read from LXD.
       */
      reverse_zones: list(text(/^[0-9A-Za-z:./-]+$/, 'a subnet such as "10.99.0.0/24" or a zone such as "0.99.10.in-addr.arpa"').required('')).optional(),
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
          algorithm: oneOf(['hmac-sha256', 'hmac-sha1', 'hmac-sha224', 'hmac-sha384', 'hmac-sha512']).default('hmac-sha256'),
          /**
           * The shared secret, base64 (as `tsig-keygen`, `keymgr` and knot's configs write it), inline or in
           * secret_file (read at load, trimmed): exactly one of them (load.ts).
           */
          secret: text(TSIG_SECRET, 'base64').secret().optional(),
          secret_file: file.optional(),
        }).optional(),
      }),
      dot: encrypted({ host: '127.0.0.1', port: 18853 }),
      doh: encrypted({ host: '127.0.0.1', port: 18855 }),
      quic: encrypted({ host: '127.0.0.1', port: 18854 }),
    }),
    /**
     * The agent endpoint (agents inside containers announce their services): off until declared. Containers must
     * reach `bind`, so in practice it is the bridge address (e.g. lxdbr0's 10.99.0.1), not the loopback default.
     */
    agent: block({
      bind: binds({ host: '127.0.0.1', port: 18500 }),
      /** The shared secret agents present: one of token and token_file is required (load.ts). */
      token: text(AGENT_TOKEN, 'a secret of 16..1024 non-blank characters').secret().optional(),
      token_file: file.optional(),
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
