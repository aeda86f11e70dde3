import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI } from '../helpers/cli-process.js';
import { importCycles, importGraph } from '../helpers/import-graph.js';

// Data flows one way (STYLE.md): config and the model at the bottom, servers above, and the in-container agent and
// `lexa check-config` load only what they use. Needs `npm run build` (the CLI is run as shipped) but no LXD.
const ROOT = join(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const REGISTER = join(import.meta.dirname, '..', 'fixtures', 'module-log', 'register.mjs');
const dir = mkdtempSync(join(tmpdir(), 'lexa-imports-'));
/** What the server side loads and neither the agent nor check-config may. */
const SERVER_ONLY = [/\/node_modules\/(undici|ws|rxjs)\//, /\/dist\/servers\//, /\/dist\/daemon\.js$/, /\/dist\/streams\/(reflector|lxd-client)\.js$/];
/** The agent runs (failing to reach a closed port) until it logs this, then is stopped. */
const AGENT_STOP_AFTER = /lexa agent started/;

/** Runs node with the module log hook; `until` (a log pattern) makes it wait for that line, then SIGTERM it. */
function loaded(args: string[], until?: RegExp): Promise<{ modules: string[]; output: string }> {
  const log = join(dir, `modules-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(log, '');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', REGISTER, ...args], { cwd: dir, env: { ...process.env, LEXA_MODULE_LOG: log } });
    let output = '';
    const seen = (d: Buffer) => {
      output += d.toString();
      if (until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.once('error', reject);
    child.once('exit', () => resolve({ modules: readFileSync(log, 'utf8').split('\n').filter(Boolean), output }));
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

t.test('src/config, src/streams and src/agent import nothing from src/servers (nor the daemon)', async (t) => {
  const { edges } = importGraph(SRC);
  const upward = edges.filter((e) => /^(config|streams|agent|net)\//.test(e.from) && (e.to.startsWith('servers/') || e.to === 'daemon.ts'));
  t.same(upward, []);
});

t.test('no import cycle in src: none at run time, and none between folders even through types', async (t) => {
  const graph = importGraph(SRC);
  t.same(importCycles(graph, new Set(['static', 'dynamic'])), [], 'run-time cycles');
  const folder = (f: string) => f.split('/').slice(0, -1).join('/');
  const crossing = importCycles(graph, new Set(['static', 'type', 'dynamic'])).filter((c) => new Set(c.map(folder)).size > 1);
  t.same(crossing, [], 'cycles through more than one folder');
});
