/**
 * Every key of the agent's configuration file (`lexa agent`), declared once with the server's builder, so problems
 * read the same: `file:line,col` from the parser, `key.path: ...` from here. Rules across keys are in load.ts.
 */
import { DEVLXD_SOCKET } from './devlxd.js';
import { block, duration, int, list, oneOf, text, type Infer, type ReadContext } from '../config/builder.js';
import { AGENT_TOKEN } from '../config/schema.js';
import { INTERFACE_NAME, MAX_TAGS, PORT, PRIORITY, SERVICE_LABEL, WEIGHT } from '../streams/model/service-rules.js';

/** Service names and tags are DNS labels, as in `user.lexa.service.*` keys. */
const file = text(/\S/, 'a file path');

const check = block({
  /** `host:port` to open a TCP connection to ([v6]:port for IPv6); the check passes when it connects. */
  tcp: text(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, e.g. "127.0.0.1:443"').optional(),
  /** An http:// or https:// URL to GET; the check passes on a 2xx status. */
  http: text(/^https?:\/\/\S+$/, 'an http:// or https:// URL').optional(),
  /** Consul's default interval. */
  interval: duration()
    .refine((ms) => (ms >= 100 ? undefined : 'must be at least 100ms'))
    .default(10_000),
  /** A check that has not answered within this fails. */
  timeout: duration()
    .refine((ms) => (ms >= 10 ? undefined : 'must be at least 10ms'))
    .default(2_000),
  /** Consul's names: this many consecutive failures turn a passing check critical (damps flapping). */
  failures_before_critical: int(1, 1000).default(1),
  /** ... and this many consecutive successes turn a critical one passing. */
  success_before_passing: int(1, 1000).default(1),
});

const service = block({
  name: text(SERVICE_LABEL, 'a lower-case DNS label (letters, digits, inner hyphens)').required('(the service name)'),
  port: int(PORT.min, PORT.max).required('(the port the service listens on)'),
  proto: oneOf(['tcp', 'udp']).default('tcp'),
  tags: list(text(SERVICE_LABEL, 'a lower-case DNS label').required(''), MAX_TAGS).default([]),
  /** Absent: the instance's primary interface (as for `user.lexa.service.*`). */
  interface: text(INTERFACE_NAME, 'an interface name').optional(),
  /** RFC 2782 priority, lower preferred. */
  priority: int(PRIORITY.min, PRIORITY.max).default(PRIORITY.default),
  /** Relative weight, as for `user.lexa.service.*`. */
  weight: int(WEIGHT.min, WEIGHT.max).default(WEIGHT.default),
  /** All must pass for the service to be passing; with none, it is passing while the agent is connected. */
  check: list(check).default([]),
});

export const agentSchema = block({
  agent: block({
    /** The server's agent endpoint, `host:port` (its `server.agent.bind`, the bridge address). */
    server: text(/^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, e.g. "10.99.0.1:18500"').required('(the lexa server, host:port)'),
    /**
     * The server's optional shared secret (its `server.agent.token`); at most one of token and token_file. The
     * agent's own credential is not configured here: it is the instance's `user.lexa.agent.token`, read from devlxd.
     */
    token: text(AGENT_TOKEN, 'a secret of 16..1024 non-blank characters').secret().optional(),
    token_file: file.optional(),
    /** devlxd's socket, where the instance's credential is read. */
    devlxd: file.default(DEVLXD_SOCKET),
    /** The server's certificate (or its CA) to verify it by; or `fingerprint`. One of them is required. */
    ca: file.optional(),
    /** SHA-256 fingerprint of the server's certificate, "sha256:AB:CD:..." (as lexa logs it). */
    fingerprint: text(/^sha256:([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/, 'sha256: followed by 32 colon-separated hex bytes').optional(),
    service: list(service).default([]),
  }),
});

export type AgentSettings = Infer<typeof agentSchema>;
export type ServiceSettings = AgentSettings['agent']['service'][number];
export type CheckSettings = ServiceSettings['check'][number];

/** Checks parsed HCL (as JSON); `settings` only when there are no problems. */
export function readAgentSettings(json: unknown): { readonly settings?: AgentSettings; readonly problems: readonly string[] } {
  const cx: ReadContext = { problems: [], given: new Set() };
  const settings = agentSchema.read(json ?? {}, '', cx);
  if (cx.problems.length > 0 || settings === undefined) return { problems: cx.problems };
  return { settings, problems: [] };
}
