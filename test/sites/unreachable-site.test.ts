import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { dig } from '../helpers/dig.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { IMAGE, waitFor } from '../helpers/lxd-cli.js';

// A site that never connects (its socket is a plain file: every connection fails) beside the real LXD: the LXD
// site's names answer from the start, a miss is SERVFAIL rather than a false NXDOMAIN (the other site might hold
// the name), the unreachable site's own names are SERVFAIL, and /readyz says which site is missing.

const NAME = 'fs-u1';

function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('lxc', args, { env: { ...process.env, LXD_DIR: '/var/lib/lxd' }, timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
    child.stdin?.end();
  });
}

t.test('a site that never connects blocks none of the others', async (t) => {
  await lxc('delete', '--force', NAME).catch(() => undefined);
  t.teardown(() => lxc('delete', '--force', NAME).catch(() => undefined));
  await lxc('launch', IMAGE, NAME, '--quiet');
  const dead = join(mkdtempSync(join(tmpdir(), 'lexa-sites-')), 'not-a-socket');
  writeFileSync(dead, '');
  const lexa = await startLexa(`    name = "home"\n    socket = "/var/lib/lxd/unix.socket"\n  }\n  lxd {\n    name = "gone"\n    socket = "${dead}"`);
  t.teardown(() => lexa.close());
  const ask = dig(lexa.dnsPort);

  const ip = await waitFor(() => lexa.daemon.store.current.hosts(NAME)[0]?.interfaces[0]?.trustedIpv4[0], { what: `${NAME} with an address` });
  t.same((await ask(`${NAME}.lexa`, 'A')).answer, [`${NAME}.lexa. 0 IN A ${ip}`], 'the LXD site answers');
  t.same((await ask(`${NAME}.home.lexa`, 'A')).answer, [`${NAME}.home.lexa. 0 IN A ${ip}`]);
  t.equal((await ask('fs-nowhere.home.lexa', 'A')).status, 'NXDOMAIN', 'a listed site knows what it lacks');
  t.equal((await ask('fs-nowhere.lexa', 'A')).status, 'SERVFAIL', 'unqualified: the unlisted site might have it');
  t.equal((await ask(`${NAME}.gone.lexa`, 'A')).status, 'SERVFAIL', "the unlisted site's own names");

  const ready = await curl(`${lexa.restUrl}/readyz`);
  t.equal(ready.status, 503, 'not ready until every site has listed');
  t.match(ready.json(), { ready: false, sites: [{ site: 'home', ready: true }, { site: 'gone', ready: false, lxdConnected: false }] });
  t.equal((await curl(`${lexa.restUrl}/containers/${NAME}`)).status, 200, 'the data routes answer from the listed site');
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'lxd connection failed' && l['site'] === 'gone'), "the failing site's log lines name it");
});
