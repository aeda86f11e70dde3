import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { CLI } from '../helpers/cli-process.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';
import { loggedPort } from '../helpers/net.js';

// The daemon's log destination at exit (src/log/destination.ts, the SIGTERM path in src/cli.ts), on the built CLI
// against the real LXD: a stdout that is a full pipe nobody reads must not hold the process after SIGTERM (a
// logger that flushes synchronously at exit, or leaves a libuv thread in write(2), waits forever), and a file
// destination gets every line up to the last one.
const dir = mkdtempSync(join(tmpdir(), 'lexa-log-exit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Not a speed bound: a generous wait for an exit that, when the logger hangs, never comes at all. */
const NEVER_MS = 20_000;
/** Linux's default pipe capacity: no read of the pipe returns more. */
const PIPE_BYTES = 65_536;
/** Failed TLS handshakes to cause: each logs a debug line of ~150 bytes, several pipes' worth in all. */
const HANDSHAKES = 1_500;

function config(out: string): string {
  return `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    bind {
      host = "127.0.0.1"
      port = 0
    }
  }
  dns {
    enabled = false
  }
  log {
    level = "debug"
    out = "${out}"
  }
}
`;
}

/** A client that speaks no TLS to the REST port: lexa logs the failed handshake at debug level. */
function badHandshake(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.end('GET / HTTP/1.0\r\n\r\n'));
    s.on('error', () => undefined);
    s.on('close', () => resolve());
  });
}

async function badHandshakes(port: number, count: number): Promise<void> {
  const AT_ONCE = 10;
  for (let i = 0; i < count; i += AT_ONCE) await Promise.all(Array.from({ length: AT_ONCE }, () => badHandshake(port)));
}

/** Reads what the non-blocking descriptor `fd` holds now, without waiting. */
function readAvailable(fd: number): string {
  const chunk = Buffer.alloc(PIPE_BYTES);
  let text = '';
  for (;;) {
    try {
      const n = readSync(fd, chunk);
      if (n === 0) return text;
      text += chunk.subarray(0, n).toString();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return text;
      throw err;
    }
  }
}

function exitOf(child: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

t.test('a daemon whose stdout is a full pipe nobody reads exits on SIGTERM', async (t) => {
  // A real pipe (a FIFO): the test holds its read end, reads the start-up lines for the REST port, then never
  // reads again.
  const fifo = join(dir, 'stdout.fifo');
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.teardown(() => closeSync(reader));
  const writer = openSync(fifo, constants.O_WRONLY);
  const file = join(dir, 'stdout.hcl');
  writeFileSync(file, config('stdout'));
  const child = spawn(process.execPath, [CLI, 'server', '--config', file], { stdio: ['ignore', writer, 'pipe'] });
  closeSync(writer);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = exitOf(child);
  t.teardown(() => void child.kill('SIGKILL'));

  let started = '';
  for (let waited = 0; loggedPort(started, 'rest') === undefined; waited += 25) {
    if (waited > NEVER_MS || child.exitCode !== null) throw new Error(`no REST port logged:\n${started}\n${stderr}`);
    started += readAvailable(reader);
    await sleep(25);
  }
  await badHandshakes(loggedPort(started, 'rest')!, HANDSHAKES);

  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), NEVER_MS);
  const { code, signal } = await exited;
  clearTimeout(killer);
  t.equal(signal, null, 'not killed: it exited by itself');
  t.equal(code, 0, 'a clean stop');
  // The premise: the pipe filled, so lines were waiting when SIGTERM came. Each handshake logs one line (the
  // file case below counts them); far fewer reached the pipe.
  const unread = readAvailable(reader);
  const arrived = (started + unread).split('\n').filter((l) => l.includes('"rest: TLS handshake failed"')).length;
  t.ok(arrived < HANDSHAKES / 2, `${arrived} of ${HANDSHAKES} handshake lines reached the pipe (${unread.length} bytes unread)`);
  t.equal(stderr, '', 'nothing on stderr');
});

t.test('a file destination holds every line up to the last after SIGTERM', async (t) => {
  const out = join(dir, 'lexa.log');
  const file = join(dir, 'file.hcl');
  writeFileSync(file, config(out));
  const child = spawn(process.execPath, [CLI, 'server', '--config', file], { stdio: 'ignore' });
  const exited = exitOf(child);
  t.teardown(() => void child.kill('SIGKILL'));
  const read = () => (existsSync(out) ? readFileSync(out, 'utf8') : '');
  for (let waited = 0; loggedPort(read(), 'rest') === undefined; waited += 25) {
    if (waited > NEVER_MS || child.exitCode !== null) throw new Error(`no REST port logged:\n${read()}`);
    await sleep(25);
  }
  await badHandshakes(loggedPort(read(), 'rest')!, 200);
  child.kill('SIGTERM');
  t.same(await exited, { code: 0, signal: null });
  const text = read();
  t.ok(text.endsWith('\n'), 'the last line is whole');
  const lines = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.filter((l) => l['msg'] === 'rest: TLS handshake failed').length, 200, 'every handshake line');
  t.ok(lines.some((l) => l['msg'] === 'stopping' && l['signal'] === 'SIGTERM'), 'the line logged on SIGTERM');
  t.notOk(lines.some((l) => l['msg'] === 'log: lines dropped, the destination did not keep up'), 'a file keeps up: nothing dropped');
});

t.test('SIGHUP reopens a log file rotated away by renaming: no line lost, later lines in the new file', async (t) => {
  const out = join(dir, 'rotated.log');
  const file = join(dir, 'rotated.hcl');
  writeFileSync(file, config(out));
  const child = spawn(process.execPath, [CLI, 'server', '--config', file], { stdio: 'ignore' });
  const exited = exitOf(child);
  t.teardown(() => void child.kill('SIGKILL'));
  const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');
  for (let waited = 0; loggedPort(read(out), 'rest') === undefined; waited += 25) {
    if (waited > NEVER_MS || child.exitCode !== null) throw new Error(`no REST port logged:\n${read(out)}`);
    await sleep(25);
  }
  const port = loggedPort(read(out), 'rest')!;
  await badHandshakes(port, 100);
  // logrotate's default: rename the file, then signal the daemon.
  renameSync(out, `${out}.1`);
  child.kill('SIGHUP');
  for (let waited = 0; !read(out).includes('"log file reopened"'); waited += 25) {
    if (waited > NEVER_MS || child.exitCode !== null) throw new Error(`no new log file after SIGHUP:\n${read(`${out}.1`)}`);
    await sleep(25);
  }
  await badHandshakes(port, 100);
  child.kill('SIGTERM');
  t.same(await exited, { code: 0, signal: null });
  const parse = (text: string) =>
    text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const before = parse(read(`${out}.1`));
  const after = parse(read(out));
  const handshakes = (lines: Record<string, unknown>[]) => lines.filter((l) => l['msg'] === 'rest: TLS handshake failed').length;
  t.equal(handshakes(before), 100, 'the rotated file holds every line from before the rotation');
  t.equal(handshakes(after), 100, 'the new file holds every line from after it');
  t.ok(after[0]?.['msg'] === 'log file reopened', 'the new file starts with the reopen line');
  t.ok(after.some((l) => l['msg'] === 'reloading configuration'), 'the rest of the reload goes on after the reopen');
  t.ok(after.some((l) => l['msg'] === 'stopping'), 'the last lines go to the new file');
});
