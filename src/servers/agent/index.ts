export { AGENT_LIMITS, startAgentServer, type AgentLimits, type AgentListeners, type AgentServerOptions } from './server.js';
