import { createHash } from 'node:crypto';
import { checkServes } from './health.js';
import type { AgentService, AgentState, Instance, InstanceChecks, Service } from './model.js';
import { SERVICE_LABEL } from './service-rules.js';

/**
 * What an instance's agent may do, read from the instance's LXD config (written by someone trusted with the LXD
 * API, never by the container itself):
 *
 *   user.lexa.agent.services = https,metrics   the service names its agent may announce; `*` for any. On the
 *                                              instance or a profile. Absent: the server's `server.agent.services`
 *                                              default (empty unless set: no agent service at all).
 *   user.lexa.agent.token    = <secret>        the credential its agent presents (read inside through /dev/lxd/sock).
 *                                              On the instance itself only: a profile's would be shared by all
 *                                              its instances, so one could speak for another. lexa writes a random
 *                                              one unless the operator set one (agent-tokens.ts).
 */
export const AGENT_SERVICES_KEY = 'user.lexa.agent.services';
export const AGENT_TOKEN_KEY = 'user.lexa.agent.token';
/** The allow-list entry that allows any service name. */
export const ANY_SERVICE = '*';
/** A token shorter than this is guessable; lexa issues 32 random bytes (43 base64url characters). */
export const MIN_AGENT_TOKEN_CHARS = 16;
const MAX_AGENT_TOKEN_CHARS = 1024;

export interface AgentKeys {
  readonly agentServices?: readonly string[];
  readonly agentTokenDigest?: string;
  /** One message per rejected key, naming it. */
  readonly errors: readonly string[];
}

/**
 * Reads the `user.lexa.agent.*` keys: the allow list from `expanded` (instance and profiles), the token from the
 * instance's `own` config only. Never throws; a bad key is reported and counts as absent.
 */
export function parseAgentKeys(
  expanded: Readonly<Record<string, string>> | null | undefined,
  own: Readonly<Record<string, string>> | null | undefined,
): AgentKeys {
  const errors: string[] = [];
  const out: { agentServices?: readonly string[]; agentTokenDigest?: string } = {};
  const list = expanded?.[AGENT_SERVICES_KEY];
  if (typeof list === 'string') {
    const names = list.split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '');
    const bad = names.filter((n) => n !== ANY_SERVICE && !SERVICE_LABEL.test(n));
    if (bad.length > 0) errors.push(`${AGENT_SERVICES_KEY}: ${bad.map((n) => JSON.stringify(n.slice(0, 64))).join(', ')} not a service name (a DNS label, or * for any); the list is ignored`);
    else out.agentServices = [...new Set(names)];
  }
  const token = own?.[AGENT_TOKEN_KEY];
  if (typeof token === 'string') {
    if (token.length < MIN_AGENT_TOKEN_CHARS || token.length > MAX_AGENT_TOKEN_CHARS || /\s/.test(token))
      errors.push(`${AGENT_TOKEN_KEY}: must be ${MIN_AGENT_TOKEN_CHARS}..${MAX_AGENT_TOKEN_CHARS} non-blank characters; no agent can connect for this instance`);
    else out.agentTokenDigest = tokenDigest(token);
  } else if (typeof expanded?.[AGENT_TOKEN_KEY] === 'string') {
    errors.push(`${AGENT_TOKEN_KEY}: set on a profile, so every instance of the profile would share it; ignored (set it on the instance, or unset it and let lexa issue one)`);
  }
  return { ...out, errors };
}

/** The digest agent credentials are compared by (a fixed length, so the comparison can be timing-safe). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The allow list in force for `inst`: its own, else the server's default. */
export function allowListOf(inst: Instance, defaults: readonly string[]): readonly string[] {
  return inst.agentServices ?? defaults;
}

/** Whether an agent with allow list `allow` may announce service `name`. */
export function mayAnnounce(allow: readonly string[], name: string): boolean {
  return allow.includes(ANY_SERVICE) || allow.includes(name.toLowerCase());
}

/** Whether an instance's agent may announce anything at all (what makes lexa issue it a token). */
export function mayRunAgent(inst: Instance, defaults: readonly string[]): boolean {
  return allowListOf(inst, defaults).length > 0;
}

/** The agent services `inst` refuses, each with why; empty when all are allowed. */
export function refusedServices(inst: Instance, defaults: readonly string[], services: readonly AgentService[]): { name: string; reason: string }[] {
  const allow = allowListOf(inst, defaults);
  const why =
    inst.agentServices === undefined
      ? `not in server.agent.services (the default for instances without ${AGENT_SERVICES_KEY})`
      : `not in the instance's ${AGENT_SERVICES_KEY}`;
  return services.filter((s) => !mayAnnounce(allow, s.name)).map((s) => ({ name: s.name, reason: why }));
}

/**
 * The services an instance serves: its `user.lexa.service.*` declarations whose server-side check lets them be
 * served (health.ts: no check, passing, or unreachable), plus its agent's passing services that its allow list
 * names.
 *
 * When both declare a service of the same name, the config declaration wins and the agent's is ignored (it is
 * still shown as the agent's state), even while the declaration's own check withholds it. The operator's LXD
 * config is the higher authority: it is written by someone trusted with the LXD API, while the agent speaks for
 * whatever runs inside the container, so code inside a container can never override a port, weight or tag an
 * operator pinned (nor hide the service by failing a check), nor join a service the operator did not allow it.
 * The allow list is applied here, on every derivation, so an operator removing a name from it withdraws the
 * service at the instance's next re-read.
 *
 * Idempotent, so it can be applied to an instance already derived with it: its config services are kept whole in
 * `declared` whenever a check could withhold one (declaredServices).
 */
export function servedServices(inst: Instance, agent: AgentState | undefined, checks?: InstanceChecks): readonly Service[] {
  const declared = declaredServices(inst);
  const config = declared.some((s) => s.check !== undefined) ? declared.filter((s) => checkServes(inst, s, checks)) : declared;
  if (agent === undefined || agent.services.length === 0) return sameServices(config, inst.services) ? inst.services : config;
  const pinned = new Set(declared.map((s) => s.name.toLowerCase()));
  const allow = allowListOf(inst, agent.defaultServices);
  const out: Service[] = [...config];
  for (const s of agent.services) if (s.health === 'passing' && !pinned.has(s.name.toLowerCase()) && mayAnnounce(allow, s.name)) out.push(s);
  return out;
}

/** The config services `inst` declares, served or withheld by their checks. */
export function declaredServices(inst: Instance): readonly Service[] {
  if (inst.declared !== undefined) return inst.declared;
  const config = inst.services.filter((s) => s.source === 'config');
  return config.length === inst.services.length ? inst.services : config;
}

/** `inst` with its served services (servedServices); the same object when nothing changes. */
export function withServed(inst: Instance, agent: AgentState | undefined, checks?: InstanceChecks): Instance {
  const declared = declaredServices(inst);
  const services = servedServices(inst, agent, checks);
  const keep = declared.some((s) => s.check !== undefined) ? declared : undefined;
  if (sameServices(services, inst.services) && keep === inst.declared) return inst;
  const { declared: _old, ...rest } = inst;
  return keep === undefined ? { ...rest, services } : { ...rest, services, declared: keep };
}

function sameServices(a: readonly Service[], b: readonly Service[]): boolean {
  return a === b || (a.length === b.length && a.every((s, i) => s === b[i]));
}
