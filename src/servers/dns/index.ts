export { resolve, checkResolveOptions } from './resolve.js';
export type { Outcome, Question, ResolveOptions, SoaOptions } from './resolve.js';
export { createHandler, silentLogger } from './handler.js';
export type { HandleQuery, HandlerOptions, Logger } from './handler.js';
export { DEFAULT_MAX_UDP_PAYLOAD } from './wire.js';
export type { Transport } from './wire.js';
export { UdpDnsServer } from './udp.js';
export type { DnsServerBind, UdpServerOptions } from './udp.js';
export {
  TcpDnsServer,
  DEFAULT_TCP_IDLE_TIMEOUT_MS,
  DEFAULT_TCP_MAX_CONNECTIONS,
  DEFAULT_TCP_MAX_BUFFERED_BYTES,
} from './tcp.js';
export type { TcpServerOptions } from './tcp.js';
export { serveStream, FrameReader, frameMessage } from './stream.js';
export type { StreamServeOptions } from './stream.js';
export { startDns, resolverOptions, type DnsServers } from './serve.js';
