import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI } from '../helpers/cli-process.js';
import { docExample } from '../helpers/doc-example.js';

// `lexa check-config [FILE]` from the built CLI: the effective configuration as JSON (exit 0) or every problem
// (exit 2), for the shipped example too.
const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lexa-check-'));

function lexa(args: string[], cwd = dir, env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [CLI, ...args], { cwd, env, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

t.test('a valid file: its settings with every default filled in, durations as the file writes them', async (t) => {
  const file = join(dir, 'ok.hcl');
  writeFileSync(file, 'server {\n  lxd {\n    suffix = "Example.ORG."\n    resync_interval = "90s"\n  }\n  dns {\n    ttl = 5\n  }\n}\n');
  const r = await lexa(['check-config', file], dir, { ...process.env, LXD_DIR: '/srv/lxd' });
  t.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as { server: Record<string, Record<string, unknown>> };
  t.equal(c.server['lxd']!['suffix'], 'example.org', 'normalized');
  t.equal(c.server['lxd']!['resync_interval'], '90s');
  t.equal(c.server['lxd']!['watchdog_timeout'], '25s', 'a default, written as a duration');
  t.equal(c.server['lxd']!['socket'], '/srv/lxd/unix.socket', 'the socket found in the environment');
  t.equal(c.server['dns']!['ttl'], 5);
  t.same(c.server['dns']!['bind'], [{ host: '127.0.0.1', port: 18053 }]);
  t.match(c.server['dns']!['dot'], { enabled: false, hostname: 'localhost' });
  t.match(c.server['metrics'], { enabled: false, bind: [{ host: '127.0.0.1', port: 18153 }] });
  t.equal(c.server['state_directory'], null);
  t.match(r.stderr, /is valid/);
});

t.test('an invalid file: every problem, exit 2, nothing on stdout', async (t) => {
  const file = join(dir, 'bad.hcl');
  writeFileSync(file, 'server {\n  dns {\n    ttl = -1\n    tcp_idle_timeout = "soon"\n  }\n  bogus = 1\n}\n');
  const r = await lexa(['check-config', file]);
  t.equal(r.code, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /server\.dns\.ttl: -1 is out of range/);
  t.match(r.stderr, /server\.dns\.tcp_idle_timeout: expected a duration/);
  t.match(r.stderr, /server\.bogus: unknown key/);
  const missing = await lexa(['check-config', join(dir, 'nope.hcl')]);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /no such file/);
  t.equal((await lexa(['check-config', 'a', 'b'])).code, 2, 'two files: a usage error');
});

t.test('no FILE: the file lexa server would read, else the defaults; the shipped example is valid', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'lexa-check-empty-'));
  const r = await lexa(['check-config'], empty, { ...process.env, HOME: empty });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stderr, /no configuration file found; the defaults apply/);
  writeFileSync(join(empty, 'lexa.hcl'), 'server {\n  log {\n    level = "debug"\n  }\n}\n');
  const found = await lexa(['check-config'], empty, { ...process.env, HOME: empty });
  t.equal((JSON.parse(found.stdout) as { server: { log: { level: string } } }).server.log.level, 'debug', './lexa.hcl is read');
  const example = await lexa(['check-config', join(ROOT, 'examples', 'lexa.hcl')]);
  t.equal(example.code, 0, example.stderr);
});

t.test('secrets stay secret: the TSIG secret and the agent token are printed as (redacted), and never quoted in a problem', async (t) => {
  const TSIG = 'Q2hlY2tDb25maWdOZXZlclByaW50c01l';
  const TOKEN = 'check-config-token-never-printed';
  writeFileSync(join(dir, 'xfr.key'), `${TSIG}\n`);
  const file = join(dir, 'secrets.hcl');
  const body = (secret: string, token: string) =>
    `server {\n  dns {\n    transfer {\n      allow = ["127.0.0.1"]\n      key {\n        name = "lexa-xfr"\n        ${secret}\n      }\n    }\n  }\n  agent {\n    ${token}\n  }\n}\n`;
  writeFileSync(file, body(`secret = "${TSIG}"`, `token = "${TOKEN}"`));
  const r = await lexa(['check-config', file]);
  t.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as { server: { dns: { transfer: { key: Record<string, unknown> } }; agent: Record<string, unknown> } };
  t.equal(c.server.dns.transfer.key['secret'], '(redacted)');
  t.equal(c.server.agent['token'], '(redacted)');
  t.notOk(r.stdout.includes(TSIG) || r.stdout.includes(TOKEN) || r.stderr.includes(TSIG) || r.stderr.includes(TOKEN), 'neither value is printed');
  writeFileSync(file, body('secret_file = "xfr.key"', `token = "${TOKEN}"`));
  const fromFile = await lexa(['check-config', file]);
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.match(JSON.parse(fromFile.stdout), { server: { dns: { transfer: { key: { secret: null, secret_file: 'xfr.key' } } } } }, 'the file is named, its content is not printed');
  t.notOk(fromFile.stdout.includes(TSIG));
  writeFileSync(file, body(`secret = "${TSIG}!"`, 'token = "short-token"'));
  const bad = await lexa(['check-config', file]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /server\.dns\.transfer\.key\.secret: "\(redacted\)" is not base64/);
  t.match(bad.stderr, /server\.agent\.token: "\(redacted\)" is not a secret/);
  t.notOk(bad.stderr.includes(TSIG) || bad.stderr.includes('short-token'), bad.stderr);
});

t.test('the secrets example of docs/security.md is valid and prints no secret', async (t) => {
  const hcl = docExample('security.md', 'Secrets, TSIG and transfer trust, REST client certificates');
  if (hcl === undefined) return t.fail('no hcl example in the document');
  const etc = mkdtempSync(join(tmpdir(), 'lexa-doc-'));
  const TSIG = 'RG9jRXhhbXBsZVNlY3JldE5ldmVyUHJpbnRlZA==';
  const TOKEN = 'doc-example-token-never-printed-00';
  writeFileSync(join(etc, 'xfr.key'), `${TSIG}\n`);
  writeFileSync(join(etc, 'agent.token'), `${TOKEN}\n`);
  writeFileSync(join(etc, 'clients-ca.crt'), '-----BEGIN CERTIFICATE-----\n');
  writeFileSync(join(etc, 'lexa.hcl'), hcl);
  const r = await lexa(['check-config', join(etc, 'lexa.hcl')]);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), {
    server: {
      dns: { transfer: { allow: ['10.99.0.53'], key: { name: 'lexa-xfr', secret: null, secret_file: 'xfr.key' } } },
      tls: { client_ca: 'clients-ca.crt' },
      agent: { token: null, token_file: 'agent.token' },
    },
  });
  t.notOk(r.stdout.includes(TSIG) || r.stdout.includes(TOKEN), 'neither file\'s content is printed');
});
