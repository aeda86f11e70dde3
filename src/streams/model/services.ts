import { CHECK_FIELDS, parseCheck } from './check-keys.js';
import { ALIAS_KEY } from './aliases.js';
import type { Service, ServiceProto } from './model.js';
import { INTERFACE_NAME, MAX_TAGS, PORT, PRIORITY, SERVICE_LABEL, WEIGHT } from './service-rules.js';

/**
 * Services declared in LXD config keys, on an instance or on any of its profiles (LXD merges them key by key into
 * `expanded_config`, the instance winning). One key per field:
 *
 *   user.lexa.service.<name>.port      = 80            required, 1..65535
 *   user.lexa.service.<name>.proto     = tcp           tcp (default), udp, or "tcp,udp" for both
 *   user.lexa.service.<name>.tags      = blue,canary   comma-separated DNS labels (optional)
 *   user.lexa.service.<name>.interface = eth1          default: the instance's primary interface
 *   user.lexa.service.<name>.priority  = 10            SRV priority 0..65535, lower preferred (default 1)
 *   user.lexa.service.<name>.weight    = 3             relative weight 1..256 (default 1)
 *   user.lexa.service.<name>.check     = http:/health  a check lexa runs from the host, with check_interval,
 *                                                      check_timeout, check_failures_before_critical and
 *                                                      check_success_before_passing (check-keys.ts)
 *
 * A profile can declare `port` and `tags` for every instance using it, and one instance can override just `tags`.
 * Names and tags are DNS labels (letters, digits, inner hyphens), compared case-insensitively.
 */
export const SERVICE_PREFIX = 'user.lexa.service.';
const LEXA_PREFIX = 'user.lexa.';
const AGENT_PREFIX = 'user.lexa.agent.';

const FIELDS = new Set<string>(['port', 'proto', 'tags', 'interface', 'priority', 'weight', ...CHECK_FIELDS]);

export interface ParsedServices {
  readonly services: Service[];
  /** One message per rejected key or service, naming the key. */
  readonly errors: string[];
}

/** Reads every `user.lexa.*` key of `config`. Never throws: bad keys become `errors` and their service is skipped. */
export function parseServiceKeys(config: Readonly<Record<string, string>> | undefined | null): ParsedServices {
  const errors: string[] = [];
  const fields = new Map<string, Map<string, string>>();
  for (const [key, value] of Object.entries(config ?? {})) {
    if (!key.startsWith(LEXA_PREFIX) || key.startsWith(AGENT_PREFIX) || key === ALIAS_KEY) continue; // agents.ts, aliases.ts
    if (!key.startsWith(SERVICE_PREFIX)) {
      errors.push(`${key}: unknown lexa key (services are declared as ${SERVICE_PREFIX}<name>.<field>)`);
      continue;
    }
    const rest = key.slice(SERVICE_PREFIX.length);
    const dot = rest.lastIndexOf('.');
    const name = rest.slice(0, dot).toLowerCase();
    const field = rest.slice(dot + 1).toLowerCase();
    if (dot <= 0 || !SERVICE_LABEL.test(name)) {
      errors.push(`${key}: service name must be a DNS label (letters, digits, inner hyphens)`);
      continue;
    }
    if (!FIELDS.has(field)) {
      errors.push(`${key}: unknown field "${field}" (known: ${[...FIELDS].join(', ')})`);
      continue;
    }
    let svc = fields.get(name);
    if (!svc) fields.set(name, (svc = new Map()));
    svc.set(field, String(value).trim());
  }

  const services: Service[] = [];
  for (const [name, f] of [...fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const key = (field: string) => `${SERVICE_PREFIX}${name}.${field}`;
    const bad = (field: string, why: string) => errors.push(`${key(field)}: ${why}; service "${name}" ignored`);
    const portText = f.get('port');
    if (portText === undefined) {
      bad('port', 'missing');
      continue;
    }
    const port = intIn(portText, PORT.min, PORT.max);
    if (port === undefined) {
      bad('port', `"${portText}" is not a port number ${PORT.min}..${PORT.max}`);
      continue;
    }
    const protoText = (f.get('proto') ?? 'tcp').toLowerCase();
    const protos = [...new Set(protoText.split(',').map((p) => p.trim()))];
    if (protos.length === 0 || !protos.every((p): p is ServiceProto => p === 'tcp' || p === 'udp')) {
      bad('proto', `"${protoText}" must be tcp, udp or tcp,udp`);
      continue;
    }
    const tagsText = f.get('tags') ?? '';
    const tags = [...new Set(tagsText.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''))];
    if (tags.length > MAX_TAGS) {
      bad('tags', `${tags.length} tags; at most ${MAX_TAGS}`);
      continue;
    }
    const badTag = tags.find((t) => !SERVICE_LABEL.test(t));
    if (badTag !== undefined) {
      bad('tags', `tag "${badTag}" is not a DNS label`);
      continue;
    }
    const iface = f.get('interface');
    if (iface !== undefined && !INTERFACE_NAME.test(iface)) {
      bad('interface', `"${iface}" is not an interface name`);
      continue;
    }
    const priorityText = f.get('priority');
    const priority = priorityText === undefined ? PRIORITY.default : intIn(priorityText, PRIORITY.min, PRIORITY.max);
    if (priority === undefined) {
      bad('priority', `"${priorityText}" must be ${PRIORITY.min}..${PRIORITY.max}`);
      continue;
    }
    const weightText = f.get('weight');
    const weight = weightText === undefined ? WEIGHT.default : intIn(weightText, WEIGHT.min, WEIGHT.max);
    if (weight === undefined) {
      bad('weight', `"${weightText}" must be ${WEIGHT.min}..${WEIGHT.max}`);
      continue;
    }
    const check = parseCheck(f, key);
    if (typeof check === 'string') {
      errors.push(`${check}; service "${name}" ignored`);
      continue;
    }
    for (const proto of protos) {
      const service: Service = { name, port, proto, tags, interface: iface ?? null, priority, weight, source: 'config' };
      services.push(check === undefined ? service : { ...service, check });
    }
  }
  return { services, errors };
}

function intIn(text: string, min: number, max: number): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n >= min && n <= max ? n : undefined;
}
