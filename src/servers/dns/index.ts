// Plain DNS, the `dns` transport: UDP (udp.ts, the batched path udp-batch.ts, response rate limiting rate-limit.ts)
// and TCP (tcp.ts) on the same addresses (plain.ts); stream.ts is the length framing TCP and DoT share.
export { ResponseRateLimiter, type RateLimitCounts, type RateLimitSettings } from './rate-limit.js';
export { startUdp, type UdpLimits } from './udp.js';
export { startTcp } from './tcp.js';
export { startPlainDns, type PlainDnsLimits } from './plain.js';
export { serveStream, FrameReader, frameMessage, STREAM_MAX_BUFFERED_BYTES } from './stream.js';
