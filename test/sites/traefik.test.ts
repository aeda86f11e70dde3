import t, { type Test } from 'tap';
import { restApp } from '../../src/servers/rest/index.js';
import { toInstance, type Instance, type View } from '../../src/streams/index.js';
import { Federation } from '../../src/streams/state/federation.js';
import { lxdInstance as lxd } from '../helpers/fake-lxd.js';
import { deepFreeze, snapshotOf } from '../helpers/model.js';

// /traefik over sites (docs/sites.md): one provider built from every site by default; `?site=<name>` is that
// site's servers alone, for a Traefik that serves one site. Hand-built sites through the reflector's own
// toInstance, served by the real REST app on loopback; no LXD.

type Doc = { http: { routers: Record<string, { rule: string }>; services: Record<string, { loadBalancer: { servers: { url: string }[] } }> } };
const HTTP80 = { 'user.lexa.service.http.port': '80' };
const at = (site: string, name: string, v4: string): Instance => deepFreeze(toInstance(lxd(name, { v4, config: HTTP80 }), undefined, site));

async function serve(t: Test, view: () => View) {
  const lines: string[] = [];
  const log = { warn: (_m: string, f?: Record<string, unknown>) => void lines.push(String(f?.['problem'])) } as never;
  const server = restApp({ suffix: 'lexa', snapshot: view, log }).listen(0, '127.0.0.1');
  t.teardown(() => void server.close());
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/traefik`;
  return { base, lines };
}

const servers = (d: Doc) => d.http.services['http']?.loadBalancer.servers.map((s) => s.url);

t.test('?site= is one site\'s servers; without it every site\'s; unknown sites are 404', async (t) => {
  const view = new Federation(
    [
      { name: 'home', snapshot: snapshotOf([at('home', 'web', '10.99.0.10'), at('home', 'web2', '10.99.0.11')]) },
      { name: 'rack', snapshot: snapshotOf([at('rack', 'web', '10.77.0.20')]) },
    ],
    1,
  );
  const { base } = await serve(t, () => view);
  const all = (await (await fetch(base)).json()) as Doc;
  t.same(servers(all), ['http://10.77.0.20:80', 'http://10.99.0.10:80', 'http://10.99.0.11:80'], 'one provider over every site');
  const rack = await fetch(`${base}?site=rack`);
  t.equal(rack.status, 200);
  const rackDoc = (await rack.json()) as Doc;
  t.same(servers(rackDoc), ['http://10.77.0.20:80'], "?site=rack: the rack's servers alone");
  t.equal(rackDoc.http.routers['http']?.rule, 'Host(`http.service.lexa`)', 'the default rule names what clients type, unqualified');
  const home = (await (await fetch(`${base}?site=home`)).json()) as Doc;
  t.same(servers(home), ['http://10.99.0.10:80', 'http://10.99.0.11:80']);
  t.equal(await (await fetch(`${base}?site=rack`)).text(), await (await fetch(`${base}?site=rack`)).text(), 'byte-stable');

  const unknown = await fetch(`${base}?site=attic`);
  t.equal(unknown.status, 404);
  t.match(((await unknown.json()) as { error: string }).error, 'no site named "attic"; sites: home, rack');
  t.equal((await fetch(`${base}?site=home&site=rack`)).status, 400, 'a site given twice is refused');
});

t.test('a one-site configuration has no sites to name', async (t) => {
  const { base } = await serve(t, () => snapshotOf([deepFreeze(toInstance(lxd('web', { v4: '10.99.0.10', config: HTTP80 })))]));
  t.equal((await fetch(base)).status, 200);
  const r = await fetch(`${base}?site=home`);
  t.equal(r.status, 404);
  t.match(((await r.json()) as { error: string }).error, 'one unnamed site');
});

t.test("a conflict is logged once, whichever site's document shows it first", async (t) => {
  const conflicting = (site: string, name: string, v4: string, rule: string) =>
    deepFreeze(toInstance(lxd(name, { v4, config: { ...HTTP80, 'user.traefik.http.routers.web.rule': rule } }), undefined, site));
  let version = 1;
  const snaps = () =>
    new Federation(
      [
        { name: 'home', snapshot: snapshotOf([conflicting('home', 'a', '10.99.0.10', 'Host(`a`)'), conflicting('home', 'b', '10.99.0.11', 'Host(`b`)')]) },
        { name: 'rack', snapshot: snapshotOf([]) },
      ],
      version,
    );
  let view = snaps();
  const { base, lines } = await serve(t, () => view);
  await fetch(`${base}?site=home`);
  await fetch(base);
  await fetch(`${base}?site=rack`);
  t.equal(lines.length, 1, 'the home conflict, logged once across the site and the whole document');
  version = 2;
  view = snaps();
  await fetch(base);
  t.equal(lines.length, 1, 'a new snapshot with the same conflict logs nothing new');
});
