import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { dig } from '../helpers/dig.js';
import { LexaProcess } from '../helpers/cli-process.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';

// `npm install -g` as the README says, into a temporary prefix: from an `npm pack` tarball (dependencies come
// from the npm registry or npm's cache) and from the clone itself (npm links the folder). Each gives a `lexa`
// on PATH that runs.
const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'lexa-install-'));

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 240_000, maxBuffer: 16 * 1024 * 1024, ...opts }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

t.test('npm pack, then npm install -g of the tarball: lexa on PATH serves DNS', async (t) => {
  const pack = await run('npm', ['pack', '--pack-destination', dir, ROOT], { cwd: dir });
  t.equal(pack.code, 0, pack.out);
  const { version } = (await import(join(ROOT, 'package.json'), { with: { type: 'json' } })).default as { version: string };
  const tarball = join(dir, `lexa-${version}.tgz`);
  t.ok(existsSync(tarball), 'the tarball is there');
  const prefix = join(dir, 'tarball');
  const install = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball]);
  t.equal(install.code, 0, install.out);
  const env = { ...process.env, PATH: `${join(prefix, 'bin')}:${process.env['PATH']}` };
  const v = await run('lexa', ['version'], { env });
  t.equal(v.code, 0);
  t.match(v.out, new RegExp(`^lexa ${version.replace(/\./g, '\\.')} \\(node `));
  const check = await run('lexa', ['check-config', join(prefix, 'lib', 'node_modules', 'lexa', 'examples', 'lexa.hcl')], { env });
  t.equal(check.code, 0, 'the shipped example is valid');

  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n  }\n  tls {\n    enabled = false\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n`);
  const lexa = new LexaProcess(['server', '--config', file], { env }, ['lexa']);
  t.teardown(() => lexa.kill('SIGKILL'));
  await lexa.waitLog(/lxd connected/);
  t.equal((await dig(lexa.port('dns/udp'))('lexa', 'SOA')).status, 'NOERROR', 'the installed lexa answers');
  lexa.kill('SIGTERM');
  t.equal((await lexa.exited).code, 0);
});

t.test('npm install -g from the clone links it: lexa on PATH runs', async (t) => {
  const prefix = join(dir, 'clone');
  const install = await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', ROOT]);
  t.equal(install.code, 0, install.out);
  const v = await run(join(prefix, 'bin', 'lexa'), ['version']);
  t.equal(v.code, 0, v.out);
  t.match(v.out, /^lexa \d+\.\d+\.\d+ \(node /);
});
