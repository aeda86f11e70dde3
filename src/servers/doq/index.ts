// DNS over QUIC (RFC 9250) transport. See server.ts; quic.ts explains the
// @matrixai/quic defect this folder works around.
export { createDoqServer, DOQ_ALPN, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from './server.js';
export type { DoqServer, DoqServerOptions, DoqLogger } from './server.js';
export { DoqErrorCode } from './framing.js';
