// The DNS core: one query in, one reply out. The handler (handler.ts) over the one resolver (resolve.ts, names in
// name.ts, reverse names in reverse.ts) and the wire codec (wire.ts, records.ts); zone.ts is a zone's transferable
// content. Imports only the model (streams) and the shared address helpers: every transport sits above it.
export { resolve, checkResolveOptions, reverseZones, zoneOptions } from './resolve.js';
export type { Outcome, Question, ResolveOptions, SoaOptions } from './resolve.js';
export { createHandler, resolverOptions } from './handler.js';
export type { HandleQuery, HandlerOptions } from './handler.js';
export { DEFAULT_EDNS_UDP_SIZE, DEFAULT_MAX_UDP_REPLY, MAX_DNS_MESSAGE, MESSAGE_LIMIT, datagramLimit } from './wire.js';
export type { ReplyLimit } from './wire.js';
export { zoneContent } from './zone.js';
