import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { CLI } from '../helpers/cli-process.js';
import { loggedPort } from '../helpers/net.js';
import { importCycles, importGraph } from '../helpers/import-graph.js';

// Data flows one way (STYLE.md): config and the model at the bottom, servers above, and the in-container agent and
// `lexa check-config` load only what they use. Needs `npm run build` (the CLI is run as shipped) but no LXD.
const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const REGISTER = join(import.meta.dirname, '..', 'fixtures', 'module-log', 'register.mjs');
const dir = mkdtempSync(join(tmpdir(), 'lexa-imports-'));
/** What the server side loads and neither the agent nor check-config may. */
const SERVER_ONLY = [/\/node_modules\/(undici|ws|rxjs)\//, /\/dist\/(servers|dns|replication|runtime)\//, /\/dist\/daemon\.js$/, /\/dist\/streams\/lxd\/(reflector|lxd-client)\.js$/];
/** The agent runs (failing to reach a closed port) until it logs this, then is stopped. */
const AGENT_STOP_AFTER = /lexa agent started/;

/**
 * Runs node with the module log hook; `until` (a log pattern) makes it wait for that line, then run `meanwhile`
 * (given the output so far and the modules loaded so far) and SIGTERM it.
 */
function loaded(
  args: string[],
  until?: RegExp,
  meanwhile: (output: string, modules: () => string[]) => Promise<void> = async () => {},
): Promise<{ modules: string[]; output: string }> {
  const log = join(dir, `modules-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(log, '');
  const modules = () => readFileSync(log, 'utf8').split('\n').filter(Boolean);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', REGISTER, ...args], { cwd: dir, env: { ...process.env, LEXA_MODULE_LOG: log } });
    let output = '';
    let reached = false;
    const seen = (d: Buffer) => {
      output += d.toString();
      if (reached || !until?.test(output)) return;
      reached = true;
      meanwhile(output, modules).then(
        () => child.kill('SIGTERM'),
        (err: unknown) => {
          child.kill('SIGTERM');
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.once('error', reject);
    child.once('exit', () => resolve({ modules: modules(), output }));
  });
}

function serverModules(modules: string[]): string[] {
  return modules.filter((m) => SERVER_ONLY.some((p) => p.test(m)));
}

t.test('the hook sees what the daemon loads (so an empty answer below means something)', async (t) => {
  const r = await loaded(['--input-type=module', '-e', `await import(${JSON.stringify(join(DIST, 'daemon.js'))})`]);
  for (const pkg of ['undici', 'ws', 'rxjs']) t.ok(r.modules.some((m) => m.includes(`/node_modules/${pkg}/`)), `${pkg} seen\n${r.output}`);
});

t.test('lexa check-config loads no server dependency', async (t) => {
  const file = join(dir, 'server.hcl');
  writeFileSync(file, 'server {\n  lxd {\n    suffix = "example.org"\n  }\n}\n');
  const r = await loaded([CLI, 'check-config', file]);
  t.match(r.output, /is valid/);
  t.ok(r.modules.some((m) => m.endsWith('/dist/config/load.js')), 'the log recorded the CLI');
  t.same(serverModules(r.modules), []);
});

t.test('lexa agent loads no server dependency', async (t) => {
  const file = join(dir, 'agent.hcl');
  const fingerprint = `sha256:${Array.from({ length: 32 }, () => 'AB').join(':')}`;
  writeFileSync(file, `agent {\n  server = "127.0.0.1:1"\n  devlxd = "${join(dir, 'no-devlxd.sock')}"\n  fingerprint = "${fingerprint}"\n}\n`);
  const r = await loaded([CLI, 'agent', '--config', file], AGENT_STOP_AFTER);
  t.match(r.output, AGENT_STOP_AFTER);
  t.ok(r.modules.some((m) => m.endsWith('/dist/agent/agent.js')), 'the log recorded the agent');
  t.same(serverModules(r.modules), []);
});

/**
 * The data path, bottom to top: each folder may import only from folders on an earlier line (and from itself).
 * config, the model, time and addresses; the sources and state (streams); the DNS core; replication; the transports
 * and the daemon's wiring above them all. The in-container agent stands beside the server side and shares only the
 * bottom line.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['config', 'log', 'net', 'time', 'streams/model', 'version.ts'],
  ['streams', 'tls'],
  ['dns'],
  ['replication'],
  ['servers', 'metrics', 'runtime', 'bench', 'daemon.ts', 'cli.ts'],
];
const top = (file: string) => file.split('/')[0]!;
/** A file's layer: the one naming its longest leading path (`streams/model` before `streams`). */
function layerOf(file: string): number {
  let best = -1;
  let length = -1;
  LAYERS.forEach((layer, i) => {
    for (const place of layer) {
      if ((file === place || file.startsWith(`${place}/`)) && place.length > length) [best, length] = [i, place.length];
    }
  });
  return best;
}

t.test('every folder is in one layer of the data path', async (t) => {
  const { edges } = importGraph(SRC);
  const unplaced = [...new Set(edges.flatMap((e) => [e.from, e.to]))].filter((f) => top(f) !== 'agent' && layerOf(f) < 0);
  t.same(unplaced, []);
});

t.test('imports run one way: down the data path, never up (config, streams and the DNS core know no transport)', async (t) => {
  const { edges } = importGraph(SRC);
  const upward = edges.filter((e) => top(e.from) !== 'agent' && top(e.to) !== 'agent' && layerOf(e.to) > layerOf(e.from));
  t.same(upward, [], 'imports from a higher layer');
  const agent = edges.filter((e) => top(e.from) === 'agent' && top(e.to) !== 'agent' && layerOf(e.to) !== 0);
  t.same(agent, [], 'the agent imports only the bottom layer');
});

t.test('no import cycle in src: none at run time, and none between folders even through types', async (t) => {
  const graph = importGraph(SRC);
  t.same(importCycles(graph, new Set(['static', 'dynamic'])), [], 'run-time cycles');
  const folder = (f: string) => f.split('/').slice(0, -1).join('/');
  const crossing = importCycles(graph, new Set(['static', 'type', 'dynamic'])).filter((c) => new Set(c.map(folder)).size > 1);
  t.same(crossing, [], 'cycles through more than one folder');
});

t.test('the certificate generator (@peculiar/x509, ~10–20 MB) never loads into the daemon: a child process makes the certificate', async (t) => {
  // The daemon with no certificate configured: the first start makes one (in a child process) and keeps it in the
  // state directory, the second reuses it; listeners open, "lexa started" is logged, and the daemon itself never
  // imported the generator. LXD need not answer for that.
  const state = mkdtempSync(join(tmpdir(), 'lexa-state-'));
  // A socket path that exists but where no LXD listens: lexa starts and keeps trying to connect.
  writeFileSync(join(dir, 'no-lxd.sock'), '');
  const config = join(dir, 'kept.hcl');
  writeFileSync(config, `server {\n  lxd {\n    suffix = "lexa"\n    socket = "${join(dir, 'no-lxd.sock')}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  state_directory = "${state}"\n}\n`);
  const x509 = (m: string[]) => m.filter((f) => f.includes('/node_modules/@peculiar/x509/') || f.includes('/node_modules/reflect-metadata/'));
  const first = await loaded([CLI, 'server', '--config', config], /lexa started/);
  t.match(first.output, /lexa started/);
  const made = readFileSync(join(state, 'rest.crt'), 'utf8');
  t.match(made, /^-----BEGIN CERTIFICATE-----/, 'the first start made the certificate');
  t.same(x509(first.modules), [], 'without loading the generator into the daemon');
  const second = await loaded([CLI, 'server', '--config', config], /lexa started/);
  t.match(second.output, /lexa started/);
  t.equal(readFileSync(join(state, 'rest.crt'), 'utf8'), made, 'the second start reused it');
  t.same(x509(second.modules), []);
});

t.test('prom-client (~13 MB) loads at the first scrape of /metrics, not before', async (t) => {
  writeFileSync(join(dir, 'no-lxd.sock'), '');
  const config = join(dir, 'metrics.hcl');
  writeFileSync(config, `server {\n  lxd {\n    socket = "${join(dir, 'no-lxd.sock')}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n}\n`);
  const promClient = (m: string[]) => m.filter((f) => f.includes('/node_modules/prom-client/'));
  let before: string[] = [];
  let scrape = '';
  const r = await loaded([CLI, 'server', '--config', config], /lexa started/, async (output, modules) => {
    before = promClient(modules());
    const port = loggedPort(output, 'rest');
    const res = await request(`https://127.0.0.1:${port}/metrics`, { dispatcher: new Agent({ connect: { rejectUnauthorized: false } }) });
    scrape = `${res.statusCode} ${String(res.headers['content-type'])}\n${await res.body.text()}`;
  });
  t.same(before, [], 'started and listening without prom-client');
  t.match(scrape, /^200 text\/plain; version=0\.0\.4/, `/metrics answered: ${r.output.slice(-500)}`);
  t.match(scrape, /\nlexa_build_info\{version="[^"]+"\} 1\n/);
  t.match(scrape, /\nlexa_log_lines_dropped_total 0\n/, "the log destination's count of dropped lines (test/unit/log.test.ts drops some), wired through");
  t.match(scrape, /\nnodejs_heap_size_total_bytes \d+/, "Node's default metrics too");
  t.not(promClient(r.modules).length, 0, 'the scrape loaded it (so the hook sees it)');
});
