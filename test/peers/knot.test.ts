import t from 'tap';
import { deleteByPrefix, instanceState, launch, lxc, waitFor } from '../helpers/lxd-cli.js';
import { exampleCopy, freePort, kdigRaw, lexaFrom, selfSigned, short, startPeer, tempDir } from '../helpers/peers.js';

// A real knot 3.2 secondary (examples/knot/knot.conf, run as is but for ports and paths) transfers lexa's zones
// (examples/knot/lexa.hcl) with TSIG, answers the same names as lexa, and follows `lxc launch` / `lxc stop`
// through lexa's NOTIFY: knot's own refresh timer is lexa's SOA refresh (3600 s), so only NOTIFY can explain
// following within seconds.
const PREFIX = 'dnsint-k';
const KEY = 'hmac-sha256:lexa-xfr:bGV4YS1leGFtcGxlLXNlY3JldC1jaGFuZ2UtbWUtMDE=';
const V4ZONE = '0.99.10.in-addr.arpa';
/** What "follows within about a second" may take here at worst: NOTIFY, knot's SOA check and transfer, and a shared 2-core machine. */
const FOLLOW_BOUND_MS = 5_000;

t.test('knot transfers lexa\'s zones with TSIG and follows lxc launch/stop through NOTIFY', async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  await launch(`${PREFIX}1`, { config: { 'user.lexa.service.http.port': '80', 'user.lexa.service.http.tags': 'blue' } });

  const dir = tempDir('knot');
  const [lexaPort, knotPort] = [await freePort(), await freePort()];
  const lexaConf = exampleCopy('knot/lexa.hcl', dir, [
    ['port = 18053', `port = ${lexaPort}`],
    ['127.0.0.1:18153', `127.0.0.1:${knotPort}`],
    ['  dns {', '  tls {\n    enabled = false\n  }\n  dns {'],
  ]);
  const knotConf = exampleCopy('knot/knot.conf', dir, [
    ['/var/lib/knot-lexa', dir],
    ['127.0.0.1@18153', `127.0.0.1@${knotPort}`],
    ['127.0.0.1@18053', `127.0.0.1@${lexaPort}`],
  ]);
  const lexa = await lexaFrom(lexaConf);
  t.teardown(() => lexa.daemon.close());
  await waitFor(() => lexa.daemon.store.current.synced && lexa.daemon.store.current.subnets.length > 0, { what: 'lexa synced with the networks' });
  const k1 = await waitFor(
    async () => {
      const st = await instanceState(`${PREFIX}1`);
      const a = st.network?.['eth0']?.addresses.filter((x) => x.scope === 'global') ?? [];
      return a.some((x) => x.family === 'inet') && a.some((x) => x.family === 'inet6') ? a : undefined;
    },
    { what: `${PREFIX}1 to get IPv4 and IPv6`, timeoutMs: 15_000 },
  );
  const v4 = k1.find((a) => a.family === 'inet')!.address;
  const v6 = k1.find((a) => a.family === 'inet6')!.address;
  await waitFor(async () => (await short(lexaPort, `${PREFIX}1.lexa`, 'AAAA')).length === 1, { what: 'lexa to serve the IPv6' });

  const knot = startPeer('knotd', ['-c', knotConf]);
  t.teardown(() => knot.stop());

  // The names a secondary can hold, asked of both: knot's answers must equal lexa's.
  const questions: [string, string][] = [
    [`${PREFIX}1.lexa`, 'A'],
    [`${PREFIX}1.lexa`, 'AAAA'],
    [`eth0.if.${PREFIX}1.lexa`, 'A'],
    ['http.service.lexa', 'A'],
    ['blue.http.service.lexa', 'AAAA'],
    ['_http._tcp.service.lexa', 'SRV'],
    ['_http._blue.service.lexa', 'SRV'],
    [v4.split('.').reverse().join('.') + '.in-addr.arpa', 'PTR'],
    ['lexa', 'SOA'],
    [V4ZONE, 'SOA'],
  ];
  await waitFor(async () => (await short(knotPort, `${PREFIX}1.lexa`, 'A')).length === 1, { what: 'knot to transfer the zone', timeoutMs: 10_000 });
  for (const [name, type] of questions) {
    const want = await short(lexaPort, name, type);
    t.not(want.length, 0, `lexa answers ${name} ${type}`);
    t.same(await short(knotPort, name, type), want, `knot answers ${name} ${type} as lexa does`);
  }
  const ptr6 = await kdigRaw(['@127.0.0.1', '-p', String(knotPort), '-x', v6, '+short']);
  t.equal(ptr6.trim(), `${PREFIX}1.lexa.`, 'knot answers the IPv6 PTR from the transferred ip6.arpa zone');
  t.match(knot.output(), /\[lexa\.\] AXFR, incoming, remote 127\.0\.0\.1@\d+.*finished/, 'knot transferred the zone');

  // Launch: knot answers the new instance within the bound, by NOTIFY.
  let start = Date.now();
  await launch(`${PREFIX}2`);
  const launchedMs = Date.now() - start;
  const seen = await waitFor(async () => ((await short(knotPort, `${PREFIX}2.lexa`, 'A')).length === 1 ? Date.now() - start : undefined), {
    what: `knot to answer ${PREFIX}2`,
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  t.ok(seen < launchedMs + FOLLOW_BOUND_MS, `knot answered ${PREFIX}2 ${seen} ms after lxc launch began (launch itself took ${launchedMs} ms)`);
  t.match(knot.output(), /\[lexa\.\] notify, incoming, remote 127\.0\.0\.1@\d+/, 'knot received NOTIFY from lexa');

  // Stop: knot says NXDOMAIN within the bound.
  start = Date.now();
  await lxc('stop', `${PREFIX}1`);
  const stoppedMs = Date.now() - start;
  const gone = await waitFor(async () => ((await short(knotPort, `${PREFIX}1.lexa`, 'A')).length === 0 ? Date.now() - start : undefined), {
    what: `knot to drop ${PREFIX}1`,
    timeoutMs: 15_000,
    intervalMs: 50,
  });
  t.ok(gone < stoppedMs + FOLLOW_BOUND_MS, `knot dropped ${PREFIX}1 ${gone} ms after lxc stop began (stop itself took ${stoppedMs} ms)`);
  t.same(await short(knotPort, `${PREFIX}1.lexa`, 'A'), await short(lexaPort, `${PREFIX}1.lexa`, 'A'), 'knot and lexa agree after the stop');
  const serials = [await short(lexaPort, 'lexa', 'SOA'), await short(knotPort, 'lexa', 'SOA')];
  t.same(serials[1], serials[0], 'knot holds lexa\'s current serial');
});

t.test('transfers: allow list, TSIG required when a key is configured, kdig verifies lexa\'s signatures, XoT', async (t) => {
  const dir = tempDir('xfr');
  const [lexaPort, dotPort] = [await freePort(), await freePort()];
  const { cert, key } = await selfSigned(dir, 'lexa.example.com');
  const dot = `    dot {\n      bind {\n        host = "127.0.0.1"\n        port = ${dotPort}\n      }\n      certificate = "${cert}"\n      key = "${key}"\n    }\n`;
  const lexaConf = exampleCopy('knot/lexa.hcl', dir, [
    ['port = 18053', `port = ${lexaPort}`],
    ['  dns {', '  tls {\n    enabled = false\n  }\n  dns {'],
    ['    transfer {', `${dot}    transfer {`],
  ]);
  const lexa = await lexaFrom(lexaConf);
  t.teardown(() => lexa.daemon.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });
  const at = ['@127.0.0.1', '-p', String(lexaPort)];

  const signed = await kdigRaw([...at, 'lexa', 'AXFR', '-y', KEY]);
  t.match(signed, /lexa\.\s+0\s+IN\s+SOA/, 'a signed AXFR transfers the zone');
  t.match(signed, /lexa-xfr\.\s+0\s+ANY\s+TSIG\s+hmac-sha256\./, 'the reply carries lexa\'s TSIG');
  t.notMatch(signed, /(ERROR|WARNING).*TSIG/i, 'no TSIG error from kdig');
  t.match(await kdigRaw([...at, 'lexa', 'AXFR']), /REFUSED/, 'unsigned AXFR: REFUSED');
  t.match(await kdigRaw([...at, 'lexa', 'AXFR', '-y', 'hmac-sha256:lexa-xfr:d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=']), /NOTAUTH|BADSIG/, 'wrong secret: NOTAUTH (BADSIG)');
  t.match(await kdigRaw([...at, 'lexa', 'AXFR', '-y', 'hmac-sha256:other-key:bGV4YS1leGFtcGxlLXNlY3JldC1jaGFuZ2UtbWUtMDE=']), /NOTAUTH|BADKEY/, 'unknown key: NOTAUTH (BADKEY)');
  t.match(await kdigRaw([...at, 'example.com', 'AXFR', '-y', KEY]), /NOTAUTH/, 'a zone lexa does not serve: NOTAUTH');
  t.match(await kdigRaw([...at, 'lexa', 'AXFR', '+notcp', '-y', KEY]), /error 'REFUSED'/, 'AXFR over UDP: REFUSED (transfers are TCP only)');
  const xot = await kdigRaw(['@127.0.0.1', '-p', String(dotPort), '+tls', `+tls-ca=${cert}`, '+tls-hostname=lexa.example.com', 'lexa', 'AXFR', '-y', KEY]);
  t.match(xot, /lexa\.\s+0\s+IN\s+SOA[\s\S]*lexa-xfr\.\s+0\s+ANY\s+TSIG/, 'AXFR over DoT (XoT), signed');
  t.match(xot, new RegExp(`From 127\\.0\\.0\\.1@${dotPort}\\(`), 'from the DoT port, which speaks only TLS');
  const signedSoa = await kdigRaw([...at, 'lexa', 'SOA', '-y', KEY]);
  t.match(signedSoa, /status: NOERROR[\s\S]*lexa-xfr\.\s+0\s+ANY\s+TSIG/, 'an ordinary signed query gets a signed answer');

  // Not in the allow list: lexa on the same key but allowing only another address.
  const dir2 = tempDir('xfr2');
  const port2 = await freePort();
  const conf2 = exampleCopy('knot/lexa.hcl', dir2, [
    ['port = 18053', `port = ${port2}`],
    ['allow  = ["127.0.0.1"]', 'allow  = ["10.0.0.0/8"]'],
    ['  dns {', '  tls {\n    enabled = false\n  }\n  dns {'],
  ]);
  const lexa2 = await lexaFrom(conf2);
  t.teardown(() => lexa2.daemon.close());
  await waitFor(() => lexa2.daemon.store.current.synced, { what: 'second lexa synced' });
  const refused = await kdigRaw(['@127.0.0.1', '-p', String(port2), 'lexa', 'AXFR', '-y', KEY]);
  t.match(refused, /REFUSED/, 'a signed AXFR from outside transfer.allow: REFUSED');
  t.notMatch(refused, /IN\s+SOA/, 'and no zone data');
});
