import { execFile } from 'node:child_process';
import t from 'tap';
import { deleteByPrefix, instanceState, launch, lxc, waitFor } from '../helpers/lxd-cli.js';
import { ask, exampleCopy, freePort, lexaFrom, selfSigned, startPeer, tempDir, type Peer } from '../helpers/peers.js';

// unbound 1.17 from Debian in front of lexa, with the configs in examples/unbound run as is (ports and the
// certificate path replaced): forward-zone, stub-zone, and forward-zone over DNS over TLS with lexa's certificate
// verified. Each answers names and `dig -x` from lexa; the plain forwarder follows `lxc stop` (lexa's TTLs are 0,
// so unbound caches nothing) and recovers when lexa restarts.
const PREFIX = 'dnsint-u';
/** A change (stop, restart) must show through unbound within this: its own retry and probing, on a busy machine. */
const FOLLOW_BOUND_MS = 5_000;
/**
 * Back after a lexa restart within this: lexa's start and first list (~0.5 s), then unbound forgets the back-off
 * of a server that timed out after `infra-host-ttl: 5` (the example's setting; 900 s by default) and probes again.
 */
const RECOVER_BOUND_MS = 10_000;

t.test('unbound forwards names and reverse names to lexa (forward, stub, DoT), follows lxc stop, survives a lexa restart', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  await launch(`${PREFIX}1`);

  const dir = tempDir('unbound');
  const { cert, key } = await selfSigned(dir, 'lexa.example.com');
  const [dnsPort, dotPort] = [await freePort(), await freePort()];
  const lexaConf = exampleCopy('unbound/lexa.hcl', dir, [
    ['port = 18053', `port = ${dnsPort}`],
    ['port = 18853', `port = ${dotPort}`],
    ['/etc/lexa/lexa-dot.crt', cert],
    ['/etc/lexa/lexa-dot.key', key],
    ['  dns {', '  tls {\n    enabled = false\n  }\n  dns {'],
  ]);
  let lexa = await lexaFrom(lexaConf);
  t.teardown(() => lexa.daemon.close());
  await waitFor(() => lexa.daemon.store.current.synced && lexa.daemon.store.current.subnets.length > 0, { what: 'lexa synced with the networks' });
  const addrs = await waitFor(
    async () => {
      const a = (await instanceState(`${PREFIX}1`)).network?.['eth0']?.addresses.filter((x) => x.scope === 'global') ?? [];
      const v4 = a.find((x) => x.family === 'inet')?.address;
      const v6 = a.find((x) => x.family === 'inet6')?.address;
      return v4 && v6 ? { v4, v6 } : undefined;
    },
    { what: `${PREFIX}1 to get IPv4 and IPv6`, timeoutMs: 15_000 },
  );
  await waitFor(async () => (await ask(dnsPort, `${PREFIX}1.lexa`, 'AAAA')).answers.length === 1, { what: 'lexa to serve the IPv6' });

  const unbounds: Record<string, { port: number; peer: Peer }> = {};
  const plain = [['@18053', `@${dnsPort}`]] as const;
  for (const [name, file, upstream] of [
    ['forward-zone', 'unbound/forward.conf', plain],
    ['stub-zone', 'unbound/stub.conf', plain],
    ['forward-tls-upstream', 'unbound/forward-tls.conf', [['@18853', `@${dotPort}`], ['/etc/lexa/lexa-dot.crt', cert]]],
  ] as const) {
    const port = await freePort();
    const conf = exampleCopy(file, tempDir('unbound-conf'), [['port: 18054', `port: ${port}`], ...upstream]);
    const peer = startPeer('unbound', ['-d', '-c', conf]);
    t.teardown(() => peer.stop());
    unbounds[name] = { port, peer };
  }

  for (const [name, { port, peer }] of Object.entries(unbounds)) {
    await waitFor(async () => (await ask(port, `${PREFIX}1.lexa`, 'A')).status === 'NOERROR', { what: `${name} to answer`, timeoutMs: 10_000 }).catch((err: Error) => {
      throw new Error(`${err.message}\n${peer.output()}`);
    });
    t.same((await ask(port, `${PREFIX}1.lexa`, 'A')).answers, [addrs.v4], `${name}: A`);
    t.same((await ask(port, `${PREFIX}1.lexa`, 'AAAA')).answers, [addrs.v6], `${name}: AAAA`);
    t.same((await ask(port, `-x ${addrs.v4}`, 'PTR')).answers, [`${PREFIX}1.lexa.`], `${name}: kdig -x ${addrs.v4}`);
    const ptr6 = await ask(port, `-x ${addrs.v6}`, 'PTR');
    t.same(ptr6.answers, [`${PREFIX}1.lexa.`], `${name}: kdig -x ${addrs.v6}`);
    t.equal((await ask(port, `nope-${PREFIX}.lexa`, 'A')).status, 'NXDOMAIN', `${name}: NXDOMAIN passes through`);
    const dig = await new Promise<string>((r) => execFile('dig', ['@127.0.0.1', '-p', String(port), '-x', addrs.v4, '+short', '+time=2', '+tries=1'], (_e, out) => r(out.trim())));
    t.equal(dig, `${PREFIX}1.lexa.`, `${name}: dig -x ${addrs.v4} +short`);
  }
  t.match(unbounds['forward-tls-upstream']!.peer.output(), /start of service/, 'the DoT forwarder ran');
  t.equal(lexa.daemon.ports.dot.length, 1, 'lexa served DoT');

  // Follow a stop through the plain forwarder.
  const fwd = unbounds['forward-zone']!.port;
  let start = Date.now();
  await lxc('stop', `${PREFIX}1`);
  const stopMs = Date.now() - start;
  const gone = await waitFor(async () => ((await ask(fwd, `${PREFIX}1.lexa`, 'A')).status === 'NXDOMAIN' ? Date.now() - start : undefined), {
    what: 'unbound to answer NXDOMAIN after lxc stop',
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  t.ok(gone < stopMs + FOLLOW_BOUND_MS, `unbound answered NXDOMAIN ${gone} ms after lxc stop began (stop took ${stopMs} ms)`);
  t.equal((await ask(fwd, `-x ${addrs.v4}`, 'PTR')).status, 'NXDOMAIN', 'and its PTR is gone too');
  await lxc('start', `${PREFIX}1`);
  await waitFor(async () => (await ask(fwd, `${PREFIX}1.lexa`, 'A')).answers.length === 1, { what: 'unbound to answer after lxc start', timeoutMs: 10_000 });

  // lexa goes away: unbound cannot answer (SERVFAIL or no reply), never a false NXDOMAIN; lexa returns: it recovers.
  await lexa.daemon.close();
  const down = await ask(fwd, `${PREFIX}1.lexa`, 'A', ['+time=6']);
  t.ok(down.status === 'SERVFAIL' || down.status === 'TIMEOUT', `lexa down: unbound says ${down.status}`);
  start = Date.now();
  lexa = await lexaFrom(lexaConf);
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced again' });
  const back = await waitFor(async () => ((await ask(fwd, `${PREFIX}1.lexa`, 'A')).answers.length === 1 ? Date.now() - start : undefined), {
    what: 'unbound to answer again after lexa restarted',
    timeoutMs: 30_000,
    intervalMs: 100,
  });
  t.ok(back < RECOVER_BOUND_MS, `unbound answered again ${back} ms after lexa restarted`);
});
