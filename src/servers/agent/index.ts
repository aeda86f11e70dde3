export { AGENT_LIMITS, bindInstance, startAgentServer, type AgentAction, type AgentLimits, type AgentListeners, type AgentPolicy, type AgentRegistry, type AgentServerOptions } from './server.js';
