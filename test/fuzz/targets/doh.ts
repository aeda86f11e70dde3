import { answerBody, route, type DohReply } from '../../../src/servers/doh/exchange.js';
import { checkDnsReply } from '../dns-oracle.js';
import { dnsCorpus } from '../corpus.js';
import { check, type Target } from '../harness.js';
import { DNS_MUTATORS, mutate, mutateText } from '../mutate.js';
import { dnsRig } from './dns-rig.js';

const PATH = '/dns-query';
/** What a DoH request may be answered: the reply, or a client error the exchange names. Never a 5xx. */
const STATUSES = new Set([200, 400, 404, 405, 413, 414, 415]);
const METHODS = ['GET', 'GET', 'POST', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'get', 'CONNECT', '', 'G\u0000T'];
const TYPES = ['application/dns-message', 'application/DNS-Message; charset=utf-8', 'application/json', '', ' application/dns-message ;x=1', 'text/plain'];

/**
 * DoH requests (doh/exchange.ts, the functions server.ts calls with each request's head and body): GET with the
 * query base64url in `dns` (the URL mutated as text too: bad base64, padding, extra parameters, other paths), POST
 * with a mutated body, odd methods, media types and Content-Length values. Oracle: a status the exchange names
 * (never a 5xx); a 200 carries a reply the DNS oracle accepts, as a DNS message with a numeric max-age.
 */
export const dohTarget: Target = {
  name: 'doh',
  weight: 10,
  covers: 'src/servers/doh/exchange.ts (route, answerBody, strict base64url, max-age) + the handler, in-process',
  async open(ctx) {
    const rig = dnsRig(ctx.log);
    const corpus = dnsCorpus();
    const texts = corpus.map((q) => q.toString('base64url'));
    return {
      run(rng) {
        const query = mutate(rng, rng.pick(corpus), corpus, DNS_MUTATORS);
        const method = rng.pick(METHODS);
        let url = `${rng.chance(0.95) ? PATH : rng.pick(['/', '/dns-query/', '/DNS-QUERY', '//dns-query', '/dns-query%00'])}?dns=${query.toString('base64url')}`;
        if (rng.chance(0.3)) url = mutateText(rng, url, texts);
        const head = {
          method,
          url,
          contentType: rng.chance(0.9) ? rng.pick(TYPES) : undefined,
          contentLength: rng.chance(0.5) ? undefined : rng.pick([String(query.length), '0', '-1', '65536', '1e9', 'abc', '99999999999999999999']),
        };
        ctx.note({ head, body: query.toString('hex') });
        const routed = route(head, PATH, rig.answering.handle);
        const reply: DohReply = routed === 'read-body' ? answerBody(query, rig.answering.handle) : routed;
        check(STATUSES.has(reply.status), `status ${reply.status}`);
        if (reply.status !== 200) return;
        check(reply.headers['content-type'] === 'application/dns-message', `content-type ${reply.headers['content-type']}`);
        check(/^max-age=\d+$/.test(reply.headers['cache-control'] ?? ''), `cache-control ${reply.headers['cache-control']}`);
        const sent = routed === 'read-body' ? query : Buffer.from(new URLSearchParams(url.slice(url.indexOf('?') + 1)).get('dns') ?? '', 'base64url');
        checkDnsReply(sent, reply.body, { kind: 'message' });
      },
      async close() {
        rig.answering.close();
      },
    };
  },
};
