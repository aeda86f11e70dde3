import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { curl, startLexa } from '../helpers/lexa.js';
import { DAEMON, deleteByPrefix, launch, LXD_SOCKET, lxc, waitFor } from '../helpers/lxd-cli.js';
import { traefikSchemaErrors } from '../helpers/traefik-schema.js';

// GET /traefik against the real LXD (or Incus): the profile of examples/traefik/labels.sh, real containers serving
// HTTP (busybox httpd) and TCP (busybox nc), lexa in this process, the document read with the real curl, checked
// against Traefik's dynamic-configuration schema, and every server it names connected to. No Traefik binary is
// packaged for Debian 12 or on npm, so Traefik itself does not run here: the test checks what Traefik would be
// given, and that each backend it names answers.
const PREFIX = 'tfk-';
const PROFILE = `${PREFIX}web`;
const BOUND_MS = 10_000;
const EXAMPLE = join(import.meta.dirname, '..', '..', 'examples', 'traefik');

interface Doc {
  http: { routers: Record<string, Record<string, unknown>>; services: Record<string, { loadBalancer: { servers: { url: string }[] } & Record<string, unknown> }> };
  tcp: { routers: Record<string, Record<string, unknown>>; services: Record<string, { loadBalancer: { servers: { address: string }[] } }> };
}

async function cleanup(): Promise<void> {
  await deleteByPrefix(PREFIX);
  await lxc('profile', 'delete', PROFILE).catch(() => undefined);
}
t.before(cleanup);
t.teardown(cleanup);

/** Serves `GET /` with the instance's name (busybox httpd) and answers every TCP connection on 7000 with it. */
async function serve(name: string): Promise<void> {
  await lxc('exec', name, '--', 'sh', '-c', `mkdir -p /tmp/www && echo ${name} > /tmp/www/index.html && httpd -p 80 -h /tmp/www && (nc -ll -p 7000 -e /bin/hostname >/dev/null 2>&1 &)`);
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '--max-time', '5', url], (err, stdout) => (err ? reject(err) : resolve(stdout.trim())));
  });
}

function tcpRead(address: string): Promise<string> {
  const cut = address.lastIndexOf(':');
  const host = address.slice(0, cut).replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(address.slice(cut + 1)), host);
    let data = '';
    sock.setTimeout(5000, () => sock.destroy(new Error(`no answer from ${address}`)));
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', () => resolve(data.trim()));
    sock.on('error', reject);
  });
}

t.test('the example profile routes to every running instance; stops leave the document', async (t) => {
  // The example's own commands, run as a user would (with this test's profile name and client).
  await new Promise<void>((resolve, reject) =>
    execFile('sh', [join(EXAMPLE, 'labels.sh')], { env: { ...process.env, PROFILE, LXC: DAEMON.cli } }, (err, _o, stderr) =>
      err ? reject(new Error(`labels.sh: ${stderr || err.message}`)) : resolve(),
    ),
  );
  const echo = { 'user.lexa.service.echo.port': '7000', 'user.traefik.tcp.routers.echo.service': 'echo' };
  await Promise.all([
    launch(`${PREFIX}1`, { profiles: ['default', PROFILE], config: echo }),
    launch(`${PREFIX}2`, { profiles: ['default', PROFILE], config: echo }),
    // No Traefik keys: its service gets the default router.
    launch(`${PREFIX}plain`, { config: { 'user.lexa.service.plain.port': '80' } }),
  ]);

  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  const get = async (): Promise<{ body: string; doc: Doc }> => {
    const r = await curl(`${lexa.restUrl}/traefik`);
    if (r.status !== 200) throw new Error(`/traefik answered ${r.status}: ${r.body}`);
    return { body: r.body, doc: r.json<Doc>() };
  };
  // Only this test's instances count: the LXD is shared (the README's demo containers also offer `http`).
  const own = (): Set<string> => {
    const addrs = new Set<string>();
    for (const i of lexa.daemon.store.current.instances.values())
      if (i.name.startsWith(PREFIX)) for (const f of i.interfaces) for (const a of [...f.ipv4, ...f.ipv6]) addrs.add(a);
    return addrs;
  };
  const servers = (d: Doc, s: string) =>
    (d.http.services[s]?.loadBalancer.servers.map((x) => x.url) ?? []).filter((u) => own().has(new URL(u).hostname.replace(/^\[|\]$/g, '')));
  const { doc } = await waitFor(async () => {
    const g = await get();
    return servers(g.doc, 'http').length === 2 && servers(g.doc, 'plain').length === 1 && g.doc.tcp.services['echo']?.loadBalancer.servers.length === 2 && g;
  }, { what: 'both web instances, the plain one and both echo servers in /traefik', timeoutMs: BOUND_MS });

  t.same(traefikSchemaErrors(doc), [], "valid against Traefik's dynamic-configuration schema");
  t.same(doc.http.routers['app'], { entryPoints: ['web'], rule: 'Host(`app.example.com`)', service: 'http' }, "the example's router");
  t.same(doc.http.routers['plain'], { rule: 'Host(`plain.service.lexa`)', service: 'plain' }, 'the default rule');
  t.same(doc.tcp.routers['echo'], { rule: 'HostSNI(`*`)', service: 'echo' });
  t.same(doc.http.services['http']?.loadBalancer['healthCheck'], { interval: '10s', path: '/' });
  for (const url of servers(doc, 'http')) t.match(url, new RegExp(`^http://${DAEMON.v4Prefix.replaceAll('.', '\\.')}\\d+:80$`));

  // Every backend named is a real one: GET each HTTP server, read each TCP server.
  await Promise.all([`${PREFIX}1`, `${PREFIX}2`, `${PREFIX}plain`].map(serve));
  const fromHttp = await Promise.all(servers(doc, 'http').map((u) => waitFor(() => httpGet(u), { what: `GET ${u}` })));
  t.same(fromHttp.sort(), [`${PREFIX}1`, `${PREFIX}2`], 'each HTTP server answers as its own instance');
  const fromTcp = await Promise.all(doc.tcp.services['echo']!.loadBalancer.servers.map((s) => waitFor(() => tcpRead(s.address), { what: `TCP ${s.address}` })));
  t.same(fromTcp.sort(), [`${PREFIX}1`, `${PREFIX}2`], 'each TCP server answers as its own instance');

  const first = (await get()).body;
  t.equal((await get()).body, first, 'polled again with no change: the same bytes');
  await lxc('config', 'set', `${PREFIX}1`, 'user.unrelated', 'x');
  await new Promise((r) => setTimeout(r, 500));
  t.equal((await get()).body, first, 'a change lexa does not serve leaves the bytes alone');

  let start = Date.now();
  await lxc('stop', `${PREFIX}2`);
  await waitFor(async () => servers((await get()).doc, 'http').length === 1, { what: `${PREFIX}2 to leave /traefik`, timeoutMs: BOUND_MS });
  t.pass(`a stopped instance leaves its services (${Date.now() - start} ms)`);
  start = Date.now();
  await lxc('stop', `${PREFIX}1`);
  const empty = await waitFor(async () => {
    const d = (await get()).doc;
    return servers(d, 'http').length === 0 && d;
  }, { what: 'the last web instance to leave', timeoutMs: BOUND_MS });
  t.notOk(empty.http.routers['app'], `with no server left, neither service nor router remain (${Date.now() - start} ms)`);
  t.notOk(empty.tcp.routers['echo']);
  t.same(traefikSchemaErrors(empty), []);
});

t.test('a bad label is logged by key and does not stop the rest', async (t) => {
  const name = `${PREFIX}bad`;
  await launch(name, { config: { 'user.lexa.service.http.port': '80', 'user.traefik.http.routers.r.priority': 'high' } });
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  const line = await waitFor(() => lexa.log.lines.find((l) => String(l['problem']).startsWith('user.traefik.http.routers.r.priority')), { what: 'the logged problem' });
  t.match(String(line['problem']), /"high" is not a whole number/);
  const doc = await waitFor(async () => {
    const d = (await curl(`${lexa.restUrl}/traefik`)).json<Doc>();
    return d.http.routers['r'] && d;
  }, { what: 'router r without the bad option' });
  t.same(doc.http.routers['r'], { rule: 'Host(`http.service.lexa`)', service: 'http' });
});

t.test("the example's static configuration polls this endpoint", async (t) => {
  const yml = readFileSync(join(EXAMPLE, 'traefik.yml'), 'utf8');
  const endpoint = /^\s*endpoint:\s*"([^"]+)"/m.exec(yml)?.[1];
  t.equal(endpoint, 'https://127.0.0.1:18443/traefik', "lexa's default REST address and the /traefik path");
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'first list' });
  const r = await curl(`${lexa.restUrl}${new URL(endpoint!).pathname}`);
  t.equal(r.status, 200);
  t.match(r.body, /^\{"http":\{"routers":/);
});
