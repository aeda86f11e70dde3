// DNS over HTTPS (RFC 8484), HTTP/2 and HTTP/1.1 on one port. server.ts moves bytes and bounds resources;
// exchange.ts is the protocol as pure functions; max-age.ts reads a reply's TTLs for cache-control.
export {
  startDoh,
  DEFAULT_DOH_PATH,
  DEFAULT_DOH_IDLE_TIMEOUT_MS,
  DEFAULT_DOH_MAX_CONNECTIONS,
  DEFAULT_DOH_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_DOH_REQUEST_TIMEOUT_MS,
  DEFAULT_DOH_MAX_CONCURRENT_STREAMS,
} from './server.js';
export type { DohOptions, DohServer } from './server.js';
export { route, answerBody, decodeBase64Url, DNS_MESSAGE, MAX_DNS_MESSAGE } from './exchange.js';
export type { DohReply, RequestHead, Routed } from './exchange.js';
export { cacheMaxAge } from './max-age.js';
