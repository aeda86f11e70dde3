import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { ask, EXAMPLES, exampleCopy, freePort, lexaFrom, selfSigned, tempDir } from '../helpers/peers.js';

// examples/coredns/Corefile. CoreDNS is not packaged in Debian 12 and cannot be fetched here, so CoreDNS itself
// is NOT run (not simulated either). What is checked: the Corefile forwards exactly the zones, to exactly the
// lexa addresses, that the unbound examples forward (those run in unbound.test.ts), with the DoT name and
// certificate of examples/unbound/lexa.hcl; and lexa answers the forward plugin's health probe, `. IN NS` over
// the upstream's own protocol (UDP, TCP, DoT), with a well-formed reply, which CoreDNS counts as healthy.

const corefile = readFileSync(join(EXAMPLES, 'coredns', 'Corefile'), 'utf8').replace(/^\s*#.*$/gm, '');
const unbound = (f: string) => readFileSync(join(EXAMPLES, 'unbound', f), 'utf8').replace(/^\s*#.*$/gm, '');

t.test('the Corefile (not run: no CoreDNS here) forwards the zones and addresses the unbound examples do', (t) => {
  const blocks = [...corefile.matchAll(/^(\S[^{]*):(\d+)\s*\{([\s\S]*?)^\}/gm)].map((m) => ({ zones: m[1]!.trim().split(/\s+/), body: m[3]! }));
  t.equal(blocks.length, 2, 'a plain DNS block and a DoT block');
  const zones = (f: string) => [...unbound(f).matchAll(/name: "([^"]+)\."/g)].map((m) => m[1]!).sort();
  for (const b of blocks) t.same([...b.zones].sort(), zones('forward.conf'), 'the zones unbound forwards');
  const plain = /forward \. (\S+)/.exec(blocks[0]!.body)?.[1];
  t.equal(plain, /forward-addr: (\S+)@(\d+)/.exec(unbound('forward.conf'))!.slice(1).join(':'), 'plain DNS to the address unbound forwards to');
  const tls = /forward \. tls:\/\/(\S+)/.exec(blocks[1]!.body)?.[1];
  const [, host, port, name] = /forward-addr: (\S+)@(\d+)#(\S+)/.exec(unbound('forward-tls.conf'))!;
  t.equal(tls, `${host}:${port}`, 'DoT to the address unbound forwards to over TLS');
  t.match(blocks[1]!.body, new RegExp(`tls_servername ${name!.replace(/\./g, '\\.')}`), 'the certificate name unbound verifies');
  t.match(blocks[1]!.body, /tls \/etc\/lexa\/lexa-dot\.crt/, 'the certificate of examples/unbound/lexa.hcl');
  const hcl = readFileSync(join(EXAMPLES, 'unbound', 'lexa.hcl'), 'utf8');
  t.match(hcl, /port = 18853/, 'which lexa.hcl serves DoT on');
  for (const b of blocks) t.match(b.body, /health_check \d+s/, 'health checks on');
  t.end();
});

t.test('lexa answers CoreDNS\'s health probe (. IN NS) with a well-formed REFUSED over UDP, TCP and DoT', async (t) => {
  const dir = tempDir('coredns');
  const { cert, key } = await selfSigned(dir, 'lexa.example.com');
  const [dnsPort, dotPort] = [await freePort(), await freePort()];
  const conf = exampleCopy('unbound/lexa.hcl', dir, [
    ['port = 18053', `port = ${dnsPort}`],
    ['port = 18853', `port = ${dotPort}`],
    ['/etc/lexa/lexa-dot.crt', cert],
    ['/etc/lexa/lexa-dot.key', key],
    ['  lxd {\n    suffix = "lexa"', `  lxd {\n    suffix = "lexa"\n    socket = "${LXD_SOCKET}"`],
    ['  dns {', '  tls {\n    enabled = false\n  }\n  dns {'],
  ]);
  const lexa = await lexaFrom(conf);
  t.teardown(() => lexa.daemon.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });
  t.equal((await ask(dnsPort, '.', 'NS')).status, 'REFUSED', 'UDP');
  t.equal((await ask(dnsPort, '.', 'NS', ['+tcp'])).status, 'REFUSED', 'TCP');
  t.equal((await ask(dotPort, '.', 'NS', ['+tls', `+tls-ca=${cert}`, '+tls-hostname=lexa.example.com'])).status, 'REFUSED', 'DoT, certificate verified for lexa.example.com');
});
