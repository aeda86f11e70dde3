import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LexaProcess } from '../helpers/cli-process.js';
import { dig } from '../helpers/dig.js';
import { curl, lexaHcl } from '../helpers/lexa.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';

// lexa's state directory (server.state_directory) holds one kind of file: the generated self-signed certificates
// it keeps so clients that pinned them keep working across restarts (src/tls/state.ts). What lexa does per case:
// - unwritable at start (a read-only bind mount): it refuses to start, exit 2 (a configuration error), naming the key, the path and EROFS:
//   the operator named a directory that cannot work;
// - full (a tiny tmpfs): it starts and serves (degraded): the new certificate is served unkept, with a warning
//   that it changes at the next start, and no partial file is left behind;
// - full, with the certificate already kept: the kept one is reused, nothing needs writing.
// Real mounts (root), the built CLI, the shared LXD read over its socket (read-only use).

/** Small enough to fill at once; a certificate pair needs ~1 KiB. */
const TMPFS_SIZE = '16k';
const root = mkdtempSync(join(tmpdir(), 'lexa-flt-state-'));
const mounts: string[] = [];
t.teardown(() => {
  for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
});

function config(stateDir: string): string {
  const file = join(mkdtempSync(join(root, 'cfg-')), 'lexa.hcl');
  writeFileSync(file, lexaHcl(`    socket = "${LXD_SOCKET}"`, `  state_directory = "${stateDir}"`));
  return file;
}

function tmpfs(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

/** Fills `dir` to the last byte. */
function fill(dir: string): void {
  try {
    execFileSync('dd', ['if=/dev/zero', `of=${join(dir, 'filler')}`, 'bs=1k', 'count=1024'], { stdio: 'ignore' });
  } catch {
    // dd fails with ENOSPC once the tmpfs is full: that is the point
  }
}

/** A lexa that starts, serves DNS and REST; stopped with the test. */
async function serving(t: Test, file: string): Promise<LexaProcess> {
  const lexa = new LexaProcess(['server', '--config', file]);
  t.teardown(() => lexa.kill());
  await lexa.waitLog(/"rest: listening"/, 30_000);
  // TCP's port: UDP shares it (servers/dns/plain.ts).
  t.equal((await dig(lexa.port('dns/tcp'))('lexa', 'SOA')).status, 'NOERROR', 'DNS answers');
  t.equal((await curl(`https://127.0.0.1:${lexa.port('rest')}/healthz`)).status, 200, 'REST answers');
  return lexa;
}

t.test('a full state directory: starts and serves, the certificate unkept and said so', async (t) => {
  const dir = tmpfs('full');
  fill(dir);
  const lexa = await serving(t, config(dir));
  const warned = lexa.lines(/could not keep it/);
  t.equal(warned.length, 1, 'one warning for the REST certificate');
  t.match(warned[0], { server: 'rest', dir, error: /ENOSPC/ }, 'it names the server, the directory and the error');
  t.same(readdirSync(dir), ['filler'], 'no partial certificate or temporary file left in the directory');
});

t.test('a full state directory holding a kept certificate: reused, nothing to write', async (t) => {
  const dir = tmpfs('kept');
  const file = config(dir);
  const first = await serving(t, file);
  const made = first.lines(/generated a self-signed certificate/)[0];
  first.kill();
  await first.exited;
  fill(dir);
  const second = await serving(t, file);
  t.match(second.lines(/reusing a kept self-signed certificate/)[0], { server: 'rest', sha256: made?.['sha256'] }, 'the same certificate as before');
  t.same(second.lines(/could not keep it/), [], 'no warning: nothing needed writing');
});

t.test('an unwritable (read-only) state directory: refuses to start with a clear message', async (t) => {
  const dir = join(root, 'ro');
  mkdirSync(dir);
  execFileSync('mount', ['--bind', '-o', 'ro', dir, dir]);
  mounts.push(dir);
  const lexa = new LexaProcess(['server', '--config', config(dir)]);
  t.teardown(() => lexa.kill());
  const exit = await lexa.exited;
  t.equal(exit.code, 2, 'exit 2, as for every configuration error');
  t.match(lexa.log, new RegExp(`server\\.state_directory: ${dir}: not writable \\(EROFS\\)`), 'the message names the key, the path and why');
});
