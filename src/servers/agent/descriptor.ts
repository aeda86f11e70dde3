import type { TransportDescriptor } from '../descriptor.js';
import { AGENT_LIMITS, startAgentServer } from './server.js';

/** The agent endpoint (server.agent): present when the section is. */
export const agentTransport: TransportDescriptor = {
  name: 'agent',
  configPath: 'server.agent',
  enabled: (c) => c.agent !== null,
  binds: (c) => c.agent?.binds ?? [],
  tls: { settings: (c) => c.agent && { tls: c.agent.tls, hostname: c.agent.hostname }, swapsLive: true },
  limits: (c) => c.agent?.limits,
  prepare(c, ctx) {
    const agent = c.agent;
    if (agent === null) throw new Error('the agent endpoint is not configured');
    const limits = { ...agent.limits, helloTimeoutMs: agent.limits.firstRequestTimeoutMs, stateBurst: AGENT_LIMITS.stateBurst, stateRefillMs: AGENT_LIMITS.stateRefillMs };
    return {
      open: async (bind) => ({
        listeners: await startAgentServer({
          binds: [bind],
          tls: ctx.material('agent'),
          log: ctx.log('agent'),
          limits,
          agents: ctx.agents,
        }),
      }),
    };
  },
};
