// DNS over HTTPS (RFC 8484), HTTP/2 and HTTP/1.1 on one port. server.ts moves bytes and bounds resources;
// exchange.ts is the protocol as pure functions; max-age.ts reads a reply's TTLs for cache-control.
export { startDoh, DEFAULT_DOH_PATH, DOH_LIMITS, LINGER_MS } from './server.js';
export type { DohLimits, DohOptions } from './server.js';
export { route, answerBody, decodeBase64Url, DNS_MESSAGE } from './exchange.js';
export type { DohReply, RequestHead, Routed } from './exchange.js';
export { cacheMaxAge } from './max-age.js';
