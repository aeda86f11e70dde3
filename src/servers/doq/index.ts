// DNS over QUIC (RFC 9250) transport. See server.ts; quic.ts explains the
// @matrixai/quic defect this folder works around.
export { startDoq, DOQ_ALPN, DOQ_LIMITS } from './server.js';
export type { DoqLimits } from './server.js';
export { DoqErrorCode } from './framing.js';
