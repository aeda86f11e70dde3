import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { curl, startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, launch, LXD_SOCKET, lxc, TESTBED_DIR, waitFor } from '../helpers/lxd-cli.js';
import { exampleCopy, freePort, startPeer, tempDir } from '../helpers/peers.js';

// Debian's Prometheus 2.42 (scripts/catalog-peers.sh unpacks its server binary; this build has http_sd_configs
// and no consul_sd) discovers exporters through lexa's GET /prometheus, with examples/prometheus/prometheus.yml:
// real containers serve a static /metrics with busybox httpd, Prometheus scrapes them (up == 1, read through
// its own HTTP API on loopback), and drops the one whose container stops.
const PREFIX = 'cc-';
const SERVICE = 'ccexp';
const PROMETHEUS = join(TESTBED_DIR, 'prometheus');

async function cleanup(): Promise<void> {
  await deleteByPrefix(`${PREFIX}exp-`);
}
t.before(cleanup);
t.teardown(cleanup);

/** A static exporter: busybox httpd serving /metrics on 9100. */
async function exporter(name: string): Promise<void> {
  await lxc('exec', name, '--', 'sh', '-c', `mkdir -p /tmp/www && printf '# TYPE cc_demo gauge\\ncc_demo{from="${name}"} 1\\n' > /tmp/www/metrics && httpd -p 9100 -h /tmp/www`);
}

interface Target {
  labels: Record<string, string>;
  discoveredLabels: Record<string, string>;
  health: string;
  scrapeUrl: string;
}

t.test('Prometheus discovers, scrapes and drops exporters through /prometheus', async (t) => {
  execFileSync(PROMETHEUS, ['--version'], { stdio: 'ignore' }); // throws, naming the path, when scripts/catalog-peers.sh has not run
  const config = { 'user.lexa.service.ccexp.port': '9100', 'user.lexa.service.ccexp.tags': 'scrape' };
  await Promise.all([launch(`${PREFIX}exp-1`, { config }), launch(`${PREFIX}exp-2`, { config }), launch(`${PREFIX}exp-3`, { config: { 'user.lexa.service.ccother.port': '9100' } })]);
  await Promise.all([exporter(`${PREFIX}exp-1`), exporter(`${PREFIX}exp-2`), exporter(`${PREFIX}exp-3`)]);
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());

  // The document itself: Prometheus' shape, this service only, two endpoints, byte-stable.
  const doc = await waitFor(async () => {
    const r = await curl(`${lexa.restUrl}/prometheus?service=${SERVICE}`, '-D', '-');
    const body = r.body.slice(r.body.indexOf('\r\n\r\n') + 4);
    const groups = JSON.parse(body) as { targets: string[]; labels: Record<string, string> }[];
    return groups.length === 2 && groups.every((g) => /^10\.99\.0\.\d+:9100$/.test(g.targets[0] ?? '')) && { head: r.body, body, groups };
  }, { what: 'both exporters in /prometheus', timeoutMs: 20_000 });
  t.match(doc.head, /content-type: application\/json/i);
  t.same(doc.groups.map((g) => g.labels['__meta_lexa_instance']), [`${PREFIX}exp-1`, `${PREFIX}exp-2`]);
  t.match(doc.groups[0]!.labels, { __meta_lexa_service: SERVICE, __meta_lexa_tags: ',scrape,', __meta_lexa_health: 'passing', __meta_lexa_source: 'config', __meta_lexa_interface: 'eth0', __meta_lexa_project: 'default', __meta_lexa_location: 'none' });
  t.equal((await curl(`${lexa.restUrl}/prometheus?service=${SERVICE}`)).body, doc.body, 'the same snapshot gives the same bytes');
  t.equal((await curl(`${lexa.restUrl}/prometheus?service=nope`)).body, '[]', '[] when nothing offers it');

  const dir = tempDir('prometheus');
  const port = await freePort();
  const file = exampleCopy('prometheus/prometheus.yml', dir, [
    ['https://127.0.0.1:18443/prometheus?service=metrics', `${lexa.restUrl}/prometheus?service=${SERVICE}`],
    ['15s', '1s'],
  ]);
  const prometheus = startPeer(PROMETHEUS, [`--config.file=${file}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`]);
  t.teardown(async () => {
    await prometheus.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const api = async <T>(path: string): Promise<T> => {
    const r = await fetch(`http://127.0.0.1:${port}${path}`);
    return ((await r.json()) as { data: T }).data;
  };
  const targets = () => api<{ activeTargets: Target[] }>('/api/v1/targets?state=active').then((d) => d.activeTargets);
  const up = () => api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent('up{job="lexa-metrics"}')}`).then((d) => d.result);

  const both = await waitFor(async () => {
    const r = await up();
    return r.length === 2 && r.every((s) => s.value[1] === '1') && r;
  }, { what: `Prometheus to scrape both exporters (output: ${prometheus.output().slice(-500)})`, timeoutMs: 30_000 });
  t.same(both.map((s) => s.metric['instance']).sort(), [`${PREFIX}exp-1`, `${PREFIX}exp-2`], 'up == 1 for both, instance relabelled from __meta_lexa_instance');
  t.same(both.map((s) => s.metric['project']), ['default', 'default'], 'relabelled lexa metadata');
  const scraped = await api<{ result: { metric: Record<string, string> }[] }>(`/api/v1/query?query=${encodeURIComponent('cc_demo')}`);
  t.same(scraped.result.map((s) => s.metric['from']).sort(), [`${PREFIX}exp-1`, `${PREFIX}exp-2`], 'the exporters\' own metrics, and not exp-3\'s (another service)');

  await lxc('stop', '--force', `${PREFIX}exp-2`);
  const left = await waitFor(async () => {
    const list = await targets();
    return list.length === 1 && list;
  }, { what: 'Prometheus to drop the stopped exporter', timeoutMs: 30_000 });
  t.equal(left[0]?.labels['instance'], `${PREFIX}exp-1`, 'only the running exporter is left');
  t.equal(left[0]?.health, 'up');
  t.equal(left[0]?.discoveredLabels['__meta_lexa_service'], SERVICE);
});
