import { writeFileSync } from 'node:fs';
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, launch, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// A reload (what the CLI's SIGHUP handler calls with the re-read file) that changes server.lxd.suffix changes the
// default router rules of GET /traefik at once, although no instance changed and so the snapshot did not either:
// the document is derived once per snapshot AND suffix, against the real LXD.
const PREFIX = 'rd-tfk-';
const NAME = `${PREFIX}plain`;

t.before(() => deleteByPrefix(PREFIX));
t.teardown(() => deleteByPrefix(PREFIX));

type Doc = { http: { routers: Record<string, { rule: string; service: string }> } };

t.test('a reload that changes the suffix changes /traefik default rules', async (t) => {
  // No Traefik keys: its service gets the default router, whose rule names the suffix.
  await launch(NAME, { config: { 'user.lexa.service.rdplain.port': '80' } });
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  const rule = async (): Promise<string | undefined> => {
    const r = await curl(`${lexa.restUrl}/traefik`);
    return r.status === 200 ? r.json<Doc>().http.routers['rdplain']?.rule : undefined;
  };
  t.equal(await waitFor(rule, { what: 'the rdplain router in /traefik' }), 'Host(`rdplain.service.lexa`)');

  const file = lexa.daemon.config.source!;
  // The new container's addresses arrive for a few seconds after launch (IPv6 by SLAAC, then their leases): wait
  // until the snapshot holds still, so that the reload below is the only thing that changes.
  const instance = () => lexa.daemon.store.current.instances.get(`default/${NAME}`);
  await waitFor(() => (instance()?.interfaces[0]?.trustedIpv6.length ?? 0) > 0, { what: `${NAME}'s IPv6 address`, timeoutMs: 15_000 });
  const holdStill = () =>
    waitFor(
      async () => {
        const before = lexa.daemon.store.current.version;
        await new Promise((r) => setTimeout(r, 1_000));
        return lexa.daemon.store.current.version === before;
      },
      { what: 'the snapshot to hold still for a second', timeoutMs: 20_000 },
    );
  // Any other change to LXD (another test's container on a shared machine) would make a new snapshot, and then the
  // rule could change without the reload: such a round proves nothing and is tried again with another suffix.
  for (const suffix of ['renamed', 'renamed-again', 'renamed-thrice']) {
    await holdStill();
    const version = lexa.daemon.store.current.version;
    writeFileSync(file, `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n    suffix = "${suffix}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n`);
    const plan = await lexa.daemon.reload(await loadConfig({ path: file }));
    t.ok(plan.live.includes('server.lxd.suffix'), 'the suffix is applied live');
    const got = await rule();
    if (lexa.daemon.store.current.version !== version) {
      t.comment(`LXD changed during the reload to ${suffix}; once more`);
      continue;
    }
    t.equal(got, `Host(\`rdplain.service.${suffix}\`)`, 'the rule names the new suffix, on the same snapshot');
    return;
  }
  t.fail('LXD never held still around a reload');
});
