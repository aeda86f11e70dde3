import type { AgentState, Instance, Service } from './model.js';

/**
 * The services an instance serves: its `user.lexa.service.*` declarations, plus its agent's passing services.
 *
 * When both declare a service of the same name, the config declaration wins and the agent's is ignored (it is
 * still shown as the agent's state). The operator's LXD config is the higher authority: it is written by someone
 * trusted with the LXD API, while the agent speaks for whatever runs inside the container, so code inside a
 * container can never override a port, weight or tag an operator pinned (nor hide the service by failing a check).
 *
 * Idempotent, so it can be applied to an instance already derived with it: the config services of an instance are
 * exactly its services whose source is `config`.
 */
export function servedServices(inst: Instance, agent: AgentState | undefined): readonly Service[] {
  const config = inst.services.filter((s) => s.source === 'config');
  if (agent === undefined || agent.services.length === 0) return config.length === inst.services.length ? inst.services : config;
  const pinned = new Set(config.map((s) => s.name.toLowerCase()));
  const out: Service[] = [...config];
  for (const s of agent.services) if (s.health === 'passing' && !pinned.has(s.name.toLowerCase())) out.push(s);
  return out;
}

/** `inst` with its served services (servedServices); the same object when nothing changes. */
export function withServed(inst: Instance, agent: AgentState | undefined): Instance {
  const services = servedServices(inst, agent);
  if (services === inst.services) return inst;
  if (services.length === inst.services.length && services.every((s, i) => s === inst.services[i])) return inst;
  return { ...inst, services };
}
