// DNS: the one handler (handler.ts) over the one resolver (resolve.ts) and wire codec (wire.ts), and the plain
// transports, UDP and TCP (udp.ts, tcp.ts, plain.ts); stream.ts is the length framing TCP and DoT share.
export { resolve, checkResolveOptions } from './resolve.js';
export type { Outcome, Question, ResolveOptions, SoaOptions } from './resolve.js';
export { createHandler, resolverOptions } from './handler.js';
export type { HandleQuery, HandlerOptions } from './handler.js';
export { DEFAULT_EDNS_UDP_SIZE, DEFAULT_MAX_UDP_REPLY, MAX_DNS_MESSAGE, MESSAGE_LIMIT, datagramLimit } from './wire.js';
export { ResponseRateLimiter, type RateLimitCounts, type RateLimitSettings } from './rate-limit.js';
export type { ReplyLimit } from './wire.js';
export { startUdp, type UdpLimits } from './udp.js';
export { startTcp } from './tcp.js';
export { startPlainDns, type PlainDnsLimits } from './plain.js';
export { serveStream, FrameReader, frameMessage, STREAM_MAX_BUFFERED_BYTES } from './stream.js';
export { ZoneSerials, type ZoneVersion } from './serial.js';
export { zoneContent } from './zone.js';
export { createTransfer, type HandleTransfer, type TransferOptions } from './transfer.js';
export { withTsig } from './signed.js';
export { Notifier, watchZones, type NotifyTarget } from './notify.js';
export { reverseZones, zoneOptions } from './resolve.js';
export type { TsigKey, TsigAlgorithm } from './tsig.js';
