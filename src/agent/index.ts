export { Agent, AGENT_PING_MS, CONNECT_TIMEOUT_MS, SERVER_SILENCE_MS } from './agent.js';
export { Check, httpProbe, tcpProbe, type Probe } from './checks.js';
export { AGENT_CONFIG_PLACES, agentFromParsed, loadAgentConfig, type AgentConfig, type AgentServiceConfig, type CheckConfig } from './config.js';
