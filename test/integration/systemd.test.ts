import { execFile } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI, LexaProcess } from '../helpers/cli-process.js';
import { CLIENT_CERT, CLIENT_KEY } from '../helpers/lxd-cli.js';

// examples/systemd/lexa.service as far as this machine allows without systemd running: `systemd-analyze verify`
// checks the unit, then lexa runs the way the unit runs it: an unprivileged uid from systemd's DynamicUser range,
// no groups, only CAP_NET_BIND_SERVICE (ambient, bounding set, no new privileges: via setpriv), $STATE_DIRECTORY
// set, the LXD client certificate where LoadCredential= puts it, and examples/systemd/lexa.hcl's DNS on port 53.
// Not exercised: systemd itself (DynamicUser allocation, the sandboxing options, ExecReload's kill).
const ROOT = join(import.meta.dirname, '..', '..');
const UNIT = readFileSync(join(ROOT, 'examples', 'systemd', 'lexa.service'), 'utf8');
const EXAMPLE = readFileSync(join(ROOT, 'examples', 'systemd', 'lexa.hcl'), 'utf8');
/** A uid in DynamicUser's range (61184–65519) that no account here uses. */
const UID = 61999;
/** Loopback, but an address no other test binds port 53 on. */
const DNS_HOST = '127.0.0.3';
const CREDENTIALS = '/run/credentials/lexa.service';

const dir = mkdtempSync(join(tmpdir(), 'lexa-systemd-'));
chmodSync(dir, 0o755);
const owned = (path: string, mode: number) => {
  mkdirSync(path, { recursive: true });
  chownSync(path, UID, UID);
  chmodSync(path, mode);
  return path;
};
const stateDir = owned(join(dir, 'state'), 0o700);
function unitValues(key: string): string[] {
  return [...UNIT.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr })),
  );
}

t.test('systemd-analyze verify accepts the unit (with ExecStart pointing at this build)', async (t) => {
  const unitDir = join(dir, 'unit');
  mkdirSync(unitDir);
  const unit = UNIT.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath} ${CLI}`);
  writeFileSync(join(unitDir, 'lexa.service'), unit);
  const r = await run('systemd-analyze', ['verify', join(unitDir, 'lexa.service')]);
  t.equal(r.code, 0, r.out || 'no complaints');
});

t.test('lexa runs as the unit runs it: unprivileged, port 53 by CAP_NET_BIND_SERVICE alone, certificates kept in the state directory', async (t) => {
  t.same(unitValues('AmbientCapabilities'), ['CAP_NET_BIND_SERVICE']);
  t.same(unitValues('StateDirectory'), ['lexa']);
  t.same(unitValues('Type'), ['simple']);
  t.same(unitValues('ExecReload'), ['/bin/kill -HUP $MAINPID']);
  const cap = unitValues('AmbientCapabilities')[0]!.replace(/^CAP_/, '').toLowerCase();
  const [, ...args] = unitValues('ExecStart')[0]!.split(/\s+/);

  // LoadCredential=: copies of the files, readable by the service user only.
  const creds = owned(join(dir, 'credentials'), 0o700);
  for (const [name, from] of [['lxd-client.crt', CLIENT_CERT], ['lxd-client.key', CLIENT_KEY]] as const) {
    copyFileSync(from, join(creds, name));
    chownSync(join(creds, name), UID, UID);
    chmodSync(join(creds, name), 0o400);
  }
  const config = join(dir, 'lexa.hcl');
  writeFileSync(
    config,
    EXAMPLE.replaceAll(CREDENTIALS, creds)
      .replace(/(dns \{\s*bind \{\s*host = )"127\.0\.0\.1"/, `$1"${DNS_HOST}"`)
      .replace('port = 18443', 'port = 0'),
  );
  t.match(readFileSync(config, 'utf8'), /port = 53\b/, 'the example binds DNS on port 53');
  const serverArgs = args.map((a) => (a === '/etc/lexa/lexa.hcl' ? config : a));
  // Environment= lines as systemd sets them (NODE_OPTIONS: the V8 flags the unit runs lexa with).
  // One assignment per line here, quoted as a whole where its value holds spaces (as systemd reads it).
  const assignments = unitValues('Environment').map((v) => (v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v));
  const unitEnv = Object.fromEntries(assignments.map((v) => [v.slice(0, v.indexOf('=')), v.slice(v.indexOf('=') + 1)]));
  t.match(unitEnv['NODE_OPTIONS'], /--max-semi-space-size=2 --v8-pool-size=1/, "the unit's V8 flags, whole");
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', STATE_DIRECTORY: stateDir, ...unitEnv };
  const setpriv = (caps: string) => [
    'setpriv', `--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', '--no-new-privs',
    `--inh-caps=-all${caps}`, `--ambient-caps=-all${caps}`, `--bounding-set=-all${caps}`,
    process.execPath, CLI,
  ];

  const lexa = new LexaProcess(serverArgs, { env, cwd: dir }, setpriv(`,+${cap}`));
  t.teardown(() => lexa.kill('SIGKILL'));
  await lexa.waitLog(/lxd connected/);
  const status = readFileSync(`/proc/${lexa.child.pid}/status`, 'utf8');
  t.match(status, new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'), 'runs as the unprivileged uid');
  t.match(status, /^CapEff:\s+0000000000000400$/m, 'with CAP_NET_BIND_SERVICE as its only capability');
  t.match(status, /^Groups:\s*$/m, 'and no supplementary group (so no LXD socket group)');
  const soa = await new Promise<string>((resolve) =>
    execFile('dig', [`@${DNS_HOST}`, '-p', '53', 'lexa', 'SOA', '+time=5', '+tries=1'], (_e, out) => resolve(out)),
  );
  t.match(soa, /status: NOERROR/, `lexa answers on ${DNS_HOST}:53`);
  t.match(lexa.lines(/lexa started/)[0]?.['lxd'], /^https:\/\/127\.0\.0\.1:8443/, 'LXD reached over HTTPS with the credentials');
  const kept = lexa.lines(/generated a self-signed certificate/);
  t.equal(kept[0]?.['dir'], stateDir, 'the generated REST certificate went to $STATE_DIRECTORY');
  t.same(readdirSync(stateDir).sort(), ['rest.crt', 'rest.key']);
  const key = statSync(join(stateDir, 'rest.key'));
  t.equal(key.uid, UID, 'owned by the service user');
  t.equal(key.mode & 0o777, 0o600, 'the key readable by it alone');

  lexa.kill('SIGHUP'); // what ExecReload sends
  await lexa.waitLog(/configuration reloaded/);
  lexa.kill('SIGTERM'); // what systemctl stop sends
  t.equal((await lexa.exited).code, 0, 'SIGTERM: exit 0');

  const again = new LexaProcess(serverArgs, { env, cwd: dir }, setpriv(`,+${cap}`));
  t.teardown(() => again.kill('SIGKILL'));
  await again.waitLog(/lxd connected/);
  const reused = again.lines(/reusing a kept self-signed certificate/);
  t.equal(reused[0]?.['sha256'], kept[0]?.['sha256'], 'a restart presents the same certificate');
  again.kill('SIGTERM');
  t.equal((await again.exited).code, 0);

  // Without the capability, port 53 is refused: the capability is what makes it work.
  const bare = new LexaProcess(serverArgs, { env, cwd: dir }, setpriv(''));
  const exit = await bare.exited;
  t.equal(exit.code, 1, 'without CAP_NET_BIND_SERVICE start-up fails');
  t.match(bare.log, /EACCES/);
});
