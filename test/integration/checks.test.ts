import t from 'tap';
import { FIRST_RUN_WINDOW_MS } from '../../src/streams/index.js';
import { dig } from '../helpers/dig.js';
import { curl, hosts, since, startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, instanceState, launch, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';

// Server-side checks against the real LXD: a container runs busybox httpd on port 80 and declares two services
// on it, one checked by HTTP GET and one by TCP connect. lexa (in this process) checks them from the host; the
// real dig and curl read DNS, /services/<name>, /containers/ and /traefik while the server inside is stopped and
// started again.
const PREFIX = 'ck-';
const WEB = `${PREFIX}web`;
/** Short so the test is quick: a service leaves within INTERVAL_MS × FAILURES after its server stops. */
const INTERVAL_MS = 1_000;
const FAILURES = 2;
/**
 * What may come on top of INTERVAL_MS × FAILURES: the run already waiting in the interval when the server stops
 * is counted as the first failure, so this covers the checker's scan (250 ms), the connect refusal's round trip
 * and the polling of the test itself (100 ms), with room for a busy shared machine.
 */
const SLACK_MS = 1_500;
/** Starting httpd detaches it (busybox httpd daemonises), so `lxc exec` returns at once. */
const START_HTTPD = 'mkdir -p /www && echo ok > /www/index.html && httpd -p 80 -h /www';

t.before(() => deleteByPrefix(PREFIX));
t.teardown(() => deleteByPrefix(PREFIX));

t.test('a checked service leaves DNS and every document when its server stops, and returns when it restarts', async (t) => {
  const checked = (svc: string, check: string) => ({
    [`user.lexa.service.${svc}.port`]: '80',
    [`user.lexa.service.${svc}.check`]: check,
    [`user.lexa.service.${svc}.check_interval`]: `${INTERVAL_MS}ms`,
    [`user.lexa.service.${svc}.check_timeout`]: '500ms',
    [`user.lexa.service.${svc}.check_failures_before_critical`]: String(FAILURES),
  });
  await launch(WEB, { config: { ...checked('ckweb', 'http:/index.html'), ...checked('cktcp', 'tcp'), 'user.traefik.enable': 'true' } });
  const ip = await waitFor(
    async () => (await instanceState(WEB)).network?.['eth0']?.addresses.find((a) => a.family === 'inet' && a.scope === 'global')?.address,
    { what: `${WEB} to get an IPv4` },
  );
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  const q = dig(lexa.dnsPort);
  const inDns = async (svc: string) => (await q(`${svc}.service.lexa`, 'A')).answer.some((l) => l.endsWith(` A ${ip}`));
  const service = (svc: string) => curl(`${lexa.restUrl}/services/${svc}`);
  const traefikServers = async () => JSON.stringify((await curl(`${lexa.restUrl}/traefik`)).json());

  // Nothing answers on port 80 yet: listed by LXD, but never shown to pass, so not served.
  await waitFor(async () => (await hosts(lexa.restUrl)).get(`${WEB}.lexa`)?.checks?.every((c) => c.status === 'critical' && c.at !== null), {
    what: 'both checks to have run and failed',
  });
  t.notOk(await inDns('ckweb'), 'not in DNS before its first success');
  t.equal((await service('ckweb')).status, 404);
  t.match((await hosts(lexa.restUrl)).get(`${WEB}.lexa`)?.checks, [
    { service: 'cktcp', check: 'tcp', target: `${ip}:80`, status: 'critical', output: `TCP connect ${ip}:80: ECONNREFUSED` },
    { service: 'ckweb', check: 'http:/index.html', target: `http://${ip}:80/index.html`, status: 'critical', output: `HTTP GET http://${ip}:80/index.html: ECONNREFUSED` },
  ]);

  await lxc('exec', WEB, '--', 'sh', '-c', START_HTTPD);
  await waitFor(async () => (await inDns('ckweb')) && (await inDns('cktcp')), { what: 'both services in DNS once httpd answers' });
  const up = (await service('ckweb')).json<{ endpoints: { health: string; check: { status: string; output: string } }[] }>();
  t.match(up.endpoints, [{ health: 'passing', check: { status: 'passing', output: `HTTP GET http://${ip}:80/index.html: 200` } }]);
  t.match((await hosts(lexa.restUrl)).get(`${WEB}.lexa`)?.services, [
    { name: 'cktcp', health: 'passing' },
    { name: 'ckweb', health: 'passing' },
  ]);
  t.match(await traefikServers(), `http://${ip}:80`, '/traefik serves it');

  // Stop the server inside: both leave DNS, /services and /traefik within interval × failures (+ slack).
  const stopped = Date.now();
  await lxc('exec', WEB, '--', 'killall', 'httpd');
  await waitFor(async () => !(await inDns('ckweb')) && !(await inDns('cktcp')), { what: 'both services to leave DNS', intervalMs: 50 });
  const leftMs = since(stopped);
  t.ok(leftMs <= INTERVAL_MS * FAILURES + SLACK_MS, `left DNS ${leftMs} ms after the server stopped (bound ${INTERVAL_MS * FAILURES + SLACK_MS} ms)`);
  t.equal((await service('ckweb')).status, 404, '/services/<name> drops it');
  t.notMatch(await traefikServers(), `${ip}:80`, '/traefik drops it');
  const host = (await hosts(lexa.restUrl)).get(`${WEB}.lexa`);
  t.equal(host?.services, null, '/containers/ lists no service');
  t.match(host?.checks, [{ status: 'critical', output: /ECONNREFUSED/ }, { status: 'critical', output: /ECONNREFUSED/ }], 'and says why');

  // Start it again: back after one success.
  const restarted = Date.now();
  await lxc('exec', WEB, '--', 'sh', '-c', START_HTTPD);
  await waitFor(async () => (await inDns('ckweb')) && (await inDns('cktcp')), { what: 'both services back in DNS', intervalMs: 50 });
  const backMs = since(restarted);
  t.ok(backMs <= INTERVAL_MS + SLACK_MS, `back in DNS ${backMs} ms after the server restarted (bound ${INTERVAL_MS + SLACK_MS} ms)`);
  t.equal((await service('ckweb')).status, 200);
  t.match(await traefikServers(), `http://${ip}:80`);

  // The metrics count what happened.
  const metrics = (await curl(`${lexa.restUrl}/metrics`)).body;
  t.match(metrics, /^lexa_checks_runs_total [1-9]\d*$/m);
  t.match(metrics, /^lexa_checks_failures_total [1-9]\d*$/m);
  t.match(metrics, /^lexa_checks\{status="passing"\} 2$/m);
  t.comment(`left DNS after ${leftMs} ms, back after ${backMs} ms (interval ${INTERVAL_MS} ms, failures ${FAILURES})`);
});

t.test('a restarted lexa serves a passing service within its first-run window, not an interval later', async (t) => {
  // A 60 s interval: were first runs spread over the interval, the service would be missing for up to a minute.
  await lxc('config', 'set', WEB, 'user.lexa.service.ckweb.check_interval=60s', 'user.lexa.service.ckweb.check_timeout=2s');
  await lxc('exec', WEB, '--', 'sh', '-c', `pidof httpd >/dev/null || (${START_HTTPD})`);
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'the first list' });
  const listed = Date.now();
  const q = dig(lexa.dnsPort);
  await waitFor(async () => (await q('ckweb.service.lexa', 'A')).answer.length > 0, { what: 'ckweb in DNS', intervalMs: 50 });
  const servedMs = since(listed);
  t.ok(servedMs <= FIRST_RUN_WINDOW_MS + SLACK_MS, `served ${servedMs} ms after the first list (bound ${FIRST_RUN_WINDOW_MS + SLACK_MS} ms)`);
});

t.test('a check declared on a profile applies to the instances using it; a bad value is reported, naming the key', async (t) => {
  const profile = `${PREFIX}checks`;
  await lxc('profile', 'delete', profile).catch(() => undefined);
  await lxc('profile', 'create', profile);
  t.teardown(async () => {
    await lxc('profile', 'remove', WEB, profile).catch(() => undefined);
    await lxc('profile', 'delete', profile).catch(() => undefined);
  });
  await lxc('profile', 'set', profile, 'user.lexa.service.ckprof.port=80', 'user.lexa.service.ckprof.check=tcp', 'user.lexa.service.ckprof.check_interval=1s');
  await lxc('exec', WEB, '--', 'sh', '-c', `pidof httpd >/dev/null || (${START_HTTPD})`);
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await lxc('profile', 'add', WEB, profile);
  const q = dig(lexa.dnsPort);
  await waitFor(async () => (await q('ckprof.service.lexa', 'A')).answer.length > 0, { what: 'the profile\'s checked service in DNS' });
  t.match((await hosts(lexa.restUrl)).get(`${WEB}.lexa`)?.checks, [{ service: 'ckprof', check: 'tcp', status: 'passing' }]);

  await lxc('config', 'set', WEB, 'user.lexa.service.ckprof.check_timeout=5s');
  await waitFor(async () => (await q('ckprof.service.lexa', 'A')).answer.length === 0, { what: 'the misdeclared service to leave DNS' });
  const problem = await waitFor(() => lexa.log.lines.find((l) => JSON.stringify(l).includes('user.lexa.service.ckprof.check_timeout')), { what: 'the problem logged' });
  t.match(JSON.stringify(problem), /check_timeout: \\"5s\\" must be a duration of at least 100ms and below the interval \(1000ms\)/);
});
