// The JSON logger (src/log/index.ts on pino, src/log/destination.ts on sonic-boom): the line format the tests and
// operators read, levels shared by a logger and its children, appending to a file, and a destination that does not
// read: the event loop keeps turning, memory stays bounded (lines past the bound are dropped, counted and reported)
// and the process still exits. The process-level cases run the built logger (dist/log/index.js, `npm run build`)
// in a child node whose stdout is a real pipe (a FIFO) that this test holds and reads only when it chooses.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { MAX_QUEUED_BYTES } from '../../src/log/destination.js';
import { memoryLogger } from '../../src/log/index.js';

const LOG = join(import.meta.dirname, '..', '..', 'dist', 'log', 'index.js');
const dir = mkdtempSync(join(tmpdir(), 'lexa-log-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Not a speed bound: a generous wait for something that, when the logger blocks or hangs, never happens at all. */
const NEVER_MS = 20_000;
/** Linux's default pipe capacity. */
const PIPE_BYTES = 1 << 16;
/** Lines a child logs at once: ~2.4 MB, more than the queue bound and a pipe (64 KiB) together. */
const FLOOD = 20_000;


/** The child's script: `createLogger` imported, then `body`; its stdout is `stdout` (an fd), else ignored. */
function startChild(body: string, stdout: number | 'ignore' = 'ignore') {
  const script = join(dir, `child-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(script, `import { writeFileSync } from 'node:fs';\nimport { createLogger } from ${JSON.stringify(LOG)};\n${body}\n`);
  // Through env(1), without tap's NODE_OPTIONS: tap adds them to every child it sees spawned, and its hooks touch
  // process.stdout, which makes Node switch a pipe to non-blocking mode and would hide a logger that fails to.
  const child = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, script], { stdio: ['ignore', stdout, 'inherit'] });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const killer = setTimeout(() => child.kill('SIGKILL'), NEVER_MS);
  void exited.then(() => clearTimeout(killer));
  return { child, exited };
}

/** A FIFO whose read end this test holds (non-blocking) and whose write end is handed to a child as its stdout. */
function pipe(name: string): { reader: number; writer: number } {
  const fifo = join(dir, name);
  execFileSync('mkfifo', [fifo]);
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  t.teardown(() => closeSync(reader));
  return { reader, writer: openSync(fifo, constants.O_WRONLY) };
}

/** What the pipe holds now ('' when empty), and whether every writer has gone (end of file). */
function readNow(fd: number): { text: string; ended: boolean } {
  const chunk = Buffer.alloc(PIPE_BYTES);
  let text = '';
  for (;;) {
    try {
      const n = readSync(fd, chunk);
      if (n === 0) return { text, ended: true };
      text += chunk.subarray(0, n).toString();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return { text, ended: false };
      throw err;
    }
  }
}

const flood = `const log = createLogger({ out: 'stdout', level: 'info' });
for (let i = 0; i < ${FLOOD}; i++) log.info('a line for a pipe that is not read', { i, pad: 'x'.repeat(40) });`;

t.test('a line is a JSON object with level, time, msg, the child fields and the line fields', (t) => {
  const log = memoryLogger();
  log.child({ component: 'dns/tcp', cause: new Error('in a binding') }).info('dns/tcp: listening', { port: 5353, error: new Error('not an object'), deep: [{ e: new Error('nested') }] });
  const [line] = log.lines;
  t.equal(line?.['level'], 'info');
  t.equal(line?.['msg'], 'dns/tcp: listening');
  t.equal(line?.['component'], 'dns/tcp');
  t.equal(line?.['port'], 5353);
  t.equal(line?.['error'], 'not an object', 'an Error field is written as its message');
  t.equal(line?.['cause'], 'in a binding', 'in a child binding too');
  t.same(line?.['deep'], [{ e: 'nested' }], 'and at any depth');
  t.match(line?.['time'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.same(Object.keys(line ?? {}).sort(), ['cause', 'component', 'deep', 'error', 'level', 'msg', 'port', 'time'], 'no pid or hostname');
  t.end();
});

t.test('setLevel on a child reaches its parent and siblings made before it', (t) => {
  const log = memoryLogger();
  const a = log.child({ component: 'a' });
  const b = log.child({ component: 'b' });
  a.setLevel('warn');
  log.info('dropped');
  b.info('dropped');
  b.warn('kept');
  a.setLevel('debug');
  log.debug('kept too');
  t.same(log.lines.map((l) => l['msg']), ['kept', 'kept too']);
  t.end();
});

t.test('a file is appended to, at the configured level, every line written once flushed', async (t) => {
  const file = join(dir, 'append.log');
  writeFileSync(file, '{"msg":"an earlier run"}\n');
  const { exited } = startChild(`const log = createLogger({ out: ${JSON.stringify(file)}, level: 'warn' });
log.info('no');
for (let i = 0; i < 5000; i++) log.warn('yes', { i });
process.exitCode = (await log.flush(${NEVER_MS})) ? 0 : 3;`);
  t.same(await exited, { code: 0, signal: null });
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 5001);
  t.equal(lines[0]?.['msg'], 'an earlier run');
  t.equal(lines.at(-1)?.['i'], 4999);
});

t.test('a file that cannot be opened is a clear error at creation', async (t) => {
  const { exited } = startChild(`try { createLogger({ out: ${JSON.stringify(join(dir, 'no-such-dir', 'x.log'))}, level: 'info' }); }
catch (err) { writeFileSync(${JSON.stringify(join(dir, 'open-error'))}, err.code); }`);
  t.same(await exited, { code: 0, signal: null });
  t.equal(readFileSync(join(dir, 'open-error'), 'utf8'), 'ENOENT');
});

t.test('a FIFO nobody has open as log.out fails at once instead of blocking start-up', async (t) => {
  const fifo = join(dir, 'no-reader.fifo');
  execFileSync('mkfifo', [fifo]);
  const { exited } = startChild(`try { createLogger({ out: ${JSON.stringify(fifo)}, level: 'info' }); }
catch (err) { writeFileSync(${JSON.stringify(join(dir, 'fifo-error'))}, err.code); }`);
  t.same(await exited, { code: 0, signal: null }, 'exited by itself: the open did not wait for a reader');
  t.equal(readFileSync(join(dir, 'fifo-error'), 'utf8'), 'ENXIO');
});

t.test('a pipe nobody reads: the event loop turns, lines past the bound are dropped, and the process exits', async (t) => {
  const { reader, writer } = pipe('unread.fifo');
  const turned = join(dir, 'turned');
  const flushed = join(dir, 'flushed');
  const { exited } = startChild(
    `${flood}
setImmediate(() => writeFileSync(${JSON.stringify(turned)}, 'yes'));
writeFileSync(${JSON.stringify(flushed)}, String(await log.flush(200)));
process.exit(0);`,
    writer,
  );
  closeSync(writer);
  t.same(await exited, { code: 0, signal: null }, 'exited by itself, not killed');
  t.ok(existsSync(turned), 'the event loop turned with the pipe full');
  t.equal(readFileSync(flushed, 'utf8'), 'false', 'the flush gave up: the lines could not be written');
  const { text } = readNow(reader);
  t.ok(text.length < MAX_QUEUED_BYTES, `the pipe held what it could (${text.length} bytes), the rest was abandoned`);
});

t.test('lines dropped while the pipe was full are counted and reported once it is read again', async (t) => {
  const { reader, writer } = pipe('later.fifo');
  const { exited } = startChild(
    `${flood}
process.exitCode = (await log.flush(${NEVER_MS})) ? 0 : 3;`,
    writer,
  );
  closeSync(writer);
  await sleep(200);
  let text = '';
  for (let done = false; !done; await sleep(10)) {
    const now = readNow(reader);
    text += now.text;
    done = now.ended;
  }
  t.same(await exited, { code: 0, signal: null }, 'every line still queued was written once the pipe was read');
  const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const flooded = lines.filter((l) => l['msg'] === 'a line for a pipe that is not read');
  const reports = lines.filter((l) => l['msg'] === 'log: lines dropped, the destination did not keep up');
  t.equal(reports.length, 1, 'one report');
  t.equal(reports[0]?.['level'], 'warn');
  const dropped = Number(reports[0]?.['dropped']);
  t.ok(dropped > 0, `${dropped} dropped`);
  t.equal(flooded.length + dropped, FLOOD, 'every line is either written or counted as dropped');
  t.ok(flooded.every((l, i) => i === 0 || Number(l['i']) > Number(flooded[i - 1]!['i'])), 'the lines written keep their order');
  const kept = flooded.reduce((sum, l) => sum + Buffer.byteLength(JSON.stringify(l)) + 1, 0);
  t.ok(kept <= MAX_QUEUED_BYTES + PIPE_BYTES, `no more was kept than the bound and the pipe hold (${kept} bytes)`);
});
