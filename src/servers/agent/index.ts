export { AGENT_LIMITS, bindInstance, startAgentServer, type AgentAction, type AgentLimits, type AgentListeners, type AgentPolicy, type AgentStore, type AgentServerOptions } from './server.js';
