import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { fromParsed } from '../../src/config/index.js';
import { planReload } from '../../src/runtime/reload-plan.js';

// What SIGHUP applies at once and what waits for a restart, for the trust settings: the transfer allow list,
// TSIG key and NOTIFY targets, the agent token and the REST client CA apply at once; the agent grace waits.
const dir = mkdtempSync(join(tmpdir(), 'lexa-plan-'));
const ca = join(dir, 'ca.crt');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
const config = (server: Record<string, unknown>) => fromParsed({ server: [server] }, join(dir, 'lexa.hcl'), {});
const xfr = (allow: string, secret: string) => ({ dns: [{ transfer: [{ allow: [allow], key: [{ name: 'x', secret }] }] }] });
const agent = (token: string, grace = '10s') => ({ agent: [{ token, grace }] });

t.test('trust settings: which apply live, which wait for a restart', (t) => {
  const base = config({ ...xfr('127.0.0.1', 'c2VjcmV0'), ...agent('a-token-of-16-chars') });
  t.same(planReload(base, config({ ...xfr('127.0.0.2', 'c2VjcmV0'), ...agent('a-token-of-16-chars') })), { live: ['server.dns.transfer'], restart: [] }, 'a new allow list');
  t.same(planReload(base, config({ ...xfr('127.0.0.1', 'bmV3c2VjcmV0'), ...agent('a-token-of-16-chars') })), { live: ['server.dns.transfer'], restart: [] }, 'a new key');
  t.same(planReload(base, config({ ...xfr('127.0.0.1', 'c2VjcmV0'), ...agent('another-token-of-16') })), { live: ['server.agent.token'], restart: [] }, 'a new agent token');
  t.same(planReload(base, config({ ...xfr('127.0.0.1', 'c2VjcmV0'), ...agent('a-token-of-16-chars', '1m') })), { live: [], restart: ['server.agent.grace'] }, 'a new grace');
  t.same(planReload(base, config({ ...xfr('127.0.0.1', 'c2VjcmV0'), ...agent('a-token-of-16-chars'), tls: [{ client_ca: ca }] })), { live: ['server.tls.client_ca'], restart: [] }, 'mutual TLS on');
  t.same(planReload(base, config({ ...xfr('127.0.0.1', 'c2VjcmV0'), ...agent('a-token-of-16-chars'), consul: [{ datacenter: 'dc-2' }] })), { live: ['server.consul.datacenter'], restart: [] }, 'a new Consul datacenter name');
  t.same(planReload(base, base), { live: [], restart: [] }, 'nothing changed');
  t.end();
});
