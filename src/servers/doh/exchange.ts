import { Buffer } from 'node:buffer';
import { MAX_DNS_MESSAGE, MESSAGE_LIMIT, type HandleQuery } from '../../dns/index.js';
import { cacheMaxAge } from './max-age.js';

/**
 * RFC 8484 as pure functions: an HTTP request's method, target and headers in, a status, headers and body out.
 * No sockets here; server.ts moves bytes, over HTTP/2 or HTTP/1.1 alike.
 *
 * Choices the RFC leaves open:
 *   - HEAD is served like GET without a body (HTTP semantics: HEAD wherever GET), so `allow` lists it;
 *   - a query the handler will not answer (fewer than 12 bytes, or a response message) is a 400, since there is
 *     no DNS message to send back; anything the handler does answer (FORMERR, SERVFAIL, NXDOMAIN...) is a 200;
 *   - `dns` is base64url; padding is tolerated, anything else outside the alphabet is a 400 (Node's own decoder
 *     silently skips bad characters, so the check is ours);
 *   - other query parameters are ignored; the path must match exactly (a trailing slash is another path).
 */

export const DNS_MESSAGE = 'application/dns-message';
/** The methods a DoH path answers (RFC 8484 §4.1: GET and POST; HEAD as GET without a body); others get 405. */
export const ALLOW = 'GET, HEAD, POST';

export interface DohReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
}

/** What to do with a request once its head has arrived: reply now, or read a POST body and then call answerBody. */
export type Routed = DohReply | 'read-body';

export interface RequestHead {
  readonly method: string | undefined;
  /** The request target as sent: path and query string. */
  readonly url: string | undefined;
  readonly contentType: string | undefined;
  readonly contentLength: string | undefined;
}

/** Routes a request by its head. GET and HEAD are answered at once; a POST that can be served asks for its body. */
export function route(head: RequestHead, path: string, handle: HandleQuery): Routed {
  const url = head.url ?? '';
  const q = url.indexOf('?');
  if ((q < 0 ? url : url.slice(0, q)) !== path) return text(404, `not found: DNS queries go to ${path}`);
  switch (head.method) {
    case 'GET':
    case 'HEAD':
      return answerGet(q < 0 ? '' : url.slice(q + 1), handle);
    case 'POST':
      if (mediaType(head.contentType) !== DNS_MESSAGE) {
        return text(415, `unsupported media type: POST queries as ${DNS_MESSAGE}`);
      }
      if (head.contentLength !== undefined && Number(head.contentLength) > MAX_DNS_MESSAGE) return tooLarge();
      return 'read-body';
    default:
      return methodNotAllowed();
  }
}

export function methodNotAllowed(): DohReply {
  return text(405, 'method not allowed: use GET or POST', { allow: ALLOW });
}

/** The one expectation a DoH request may carry (RFC 9110 §10.1.1); anything else is a 417, as Node's own layers do. */
export const CONTINUE = '100-continue';

/**
 * Routes an HTTP/2 request by its head (node:http2's streams and the native session alike): an `expect` other than
 * CONTINUE is a 417, CONNECT (RFC 9113 §8.5: no path, a tunnel) a 405, the rest as `route`.
 */
export function routeHttp2(head: RequestHead & { readonly expect: string | undefined }, path: string, handle: HandleQuery): Routed {
  if (head.expect !== undefined && head.expect !== CONTINUE) return expectationFailed();
  if (head.method === 'CONNECT') return methodNotAllowed();
  return route(head, path, handle);
}

/** An `expect` other than 100-continue (RFC 9110 §10.1.1: a server that cannot meet it answers 417). */
export function expectationFailed(): DohReply {
  return text(417, 'expectation failed: only "100-continue" is understood');
}

/** Answers the body of a POST; the caller stops reading at MAX_DNS_MESSAGE bytes (tooLarge). */
export function answerBody(body: Uint8Array, handle: HandleQuery): DohReply {
  if (body.length === 0) return text(400, 'bad request: empty body');
  return answer(body, handle);
}

export function tooLarge(): DohReply {
  return text(413, `payload too large: a DNS message is at most ${MAX_DNS_MESSAGE} bytes`);
}

export function timedOut(): DohReply {
  return text(408, 'request timeout: the body did not arrive in time');
}

function answerGet(search: string, handle: HandleQuery): DohReply {
  const dns = new URLSearchParams(search).get('dns');
  if (dns === null) return text(400, 'bad request: missing "dns" parameter');
  if (dns === '') return text(400, 'bad request: empty "dns" parameter');
  const query = decodeBase64Url(dns);
  if (query === undefined) return text(400, 'bad request: "dns" is not base64url');
  if (query.length > MAX_DNS_MESSAGE) return text(414, 'URI too long: "dns" holds more than one DNS message');
  return answer(query, handle);
}

function answer(query: Uint8Array, handle: HandleQuery): DohReply {
  // A message transport: the whole answer fits an HTTP body; DoH never truncates (RFC 8484 §6).
  let reply: Uint8Array | null;
  try {
    reply = handle(query, MESSAGE_LIMIT);
  } catch {
    // The handler promises never to throw; if it does, this request fails, not the server.
    return text(500, 'internal server error');
  }
  if (reply === null) return text(400, 'bad request: not a DNS query');
  return {
    status: 200,
    headers: { 'content-type': DNS_MESSAGE, 'cache-control': `max-age=${cacheMaxAge(reply)}` },
    body: reply,
  };
}

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** Strict base64url (RFC 4648 §5): the URL-safe alphabet, padding optional. Undefined when it is anything else. */
export function decodeBase64Url(s: string): Uint8Array | undefined {
  if (!BASE64URL.test(s)) return undefined;
  const unpadded = s.replace(/=+$/, '');
  // A lone trailing character carries 6 bits: not a whole byte. Padding, when present, must complete a quantum.
  if (unpadded.length % 4 === 1 || (s.length !== unpadded.length && s.length % 4 !== 0)) return undefined;
  return Buffer.from(unpadded, 'base64url');
}

/** `application/DNS-message; charset=x` → `application/dns-message`. */
function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(';', 1)[0]?.trim().toLowerCase();
}

function text(status: number, message: string, extra?: Record<string, string>): DohReply {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', ...extra },
    body: Buffer.from(`${message}\n`),
  };
}
