import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { docExample } from '../helpers/doc-example.js';

// The runnable example of docs/security.md's amplification section loads as written and means what the page says.
const SECTION = 'Amplification over UDP: EDNS size and response rate limiting';

t.test('the amplification example of docs/security.md loads', async (t) => {
  const hcl = docExample('security.md', SECTION);
  t.ok(hcl, 'the page has an hcl example');
  const file = join(mkdtempSync(join(tmpdir(), 'lexa-edns-doc-')), 'lexa.hcl');
  writeFileSync(file, hcl!);
  const c = await loadConfig({ path: file, env: { LXD_DIR: '/srv/lxd' } });
  t.same(c.dns.binds, [{ host: '10.99.0.1', port: 53 }]);
  t.equal(c.dns.ednsUdpSize, 1232);
  t.equal(c.dns.maxUdpReply, 4096);
  t.same(c.dns.rateLimit, {
    responsesPerSecond: 200,
    slip: 2,
    windowMs: 15_000,
    ipv4Prefix: 24,
    ipv6Prefix: 56,
    maxPrefixes: 65_536,
    exempt: ['127.0.0.0/8', '::1/128', '10.99.0.1'],
  });
});
