import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { curl } from '../helpers/lexa.js';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { loggedPort } from '../helpers/net.js';

// The built CLI (dist/cli.js, from `npm run build`) run as a user would, against the real LXD.
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'lexa-cli-'));

function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: dir, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

t.test('version and help', async (t) => {
  const v = await run('version');
  t.equal(v.code, 0);
  // Whatever Node and platform run the suite: the line must name them, not a fixed pair.
  const expected = `(node ${process.versions.node}, ${process.platform}/${process.arch})`;
  t.match(v.stdout, /^lexa \d+\.\d+\.\d+ \(node [^,]+, [^)]+\)\n$/);
  t.ok(v.stdout.includes(expected), `names this runtime: ${expected}`);
  const h = await run('--help');
  t.equal(h.code, 0);
  t.match(h.stdout, /lexa server \[--config FILE\]/);
  const bad = await run('frobnicate');
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown command "frobnicate"/);
  t.equal((await run('server', '--bogus')).code, 2);
});

t.test('configuration errors exit 2 and name the file and position', async (t) => {
  const file = join(dir, 'broken.hcl');
  writeFileSync(file, 'server {\n  dns {\n    bind { port = 1 host = "x" }\n  }\n}\n');
  const r = await run('server', '--config', file);
  t.equal(r.code, 2);
  t.match(r.stderr, new RegExp(`${file}:3,\\d+: Invalid single-argument block definition`));
  const missing = await run('server', '--config', join(dir, 'absent.hcl'));
  t.equal(missing.code, 2);
  t.match(missing.stderr, /absent\.hcl: no such file/);
});

t.test('a taken port fails start-up with exit 1 and a clear log line', async (t) => {
  const file = join(dir, 'taken.hcl');
  writeFileSync(file, `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 18999\n    }\n  }\n  dns {\n    enabled = false\n  }\n}\n`);
  const blocker = spawn(process.execPath, ['-e', "require('net').createServer().listen(18999,'127.0.0.1',()=>console.log('up'))"]);
  t.teardown(() => void blocker.kill());
  await new Promise((r) => blocker.stdout.once('data', r));
  const r = await run('server', '--config', file);
  t.equal(r.code, 1);
  const failed = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'start-up failed');
  t.match(failed?.['error'], /EADDRINUSE/);
});

t.test('runs from ./lexa.hcl, serves REST, stops cleanly on SIGTERM', async (t) => {
  writeFileSync(
    join(dir, 'lexa.hcl'),
    `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n`,
  );
  const child = spawn(process.execPath, [CLI, 'server'], { cwd: dir });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => void child.kill('SIGKILL'));
  await waitFor(() => loggedPort(out, 'rest') !== undefined, { what: 'REST listening (its port in the log)' });
  const rest = `https://127.0.0.1:${loggedPort(out, 'rest')}`;
  await waitFor(async () => (await curl(`${rest}/readyz`)).status === 200, { what: 'lexa ready' });
  const list = await curl(`${rest}/containers/`);
  t.equal(list.status, 200);
  t.type(list.json<{ hosts: unknown[] }>().hosts, Array);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.every((l) => typeof l['time'] === 'string' && typeof l['level'] === 'string'), 'every log line is JSON');
  t.ok(lines.some((l) => l['msg'] === 'lexa started' && String(l['config']).endsWith('lexa.hcl')));
  t.ok(lines.some((l) => l['msg'] === 'stopping' && l['signal'] === 'SIGTERM'));
});
