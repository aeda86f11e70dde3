// Real containers running the real lexa agent. The busybox test image has no node, so each container gets, by
// read-only bind mounts (LXD disk devices): the node runtime scripts/agent-runtime.sh prepares (the host's node and
// exactly the libraries ldd lists), this checkout's dist/ and node_modules/, and its package.json (ESM needs it).
// Nothing is copied into the container, so a rebuilt dist/ is what the next container runs.

import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMAGE, lxc, TESTBED_DIR, waitFor } from './lxd-cli.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** Prepared by scripts/agent-runtime.sh: bin/node, lib/x86_64-linux-gnu/*, lib64/ld-linux-x86-64.so.2. */
export const NODE_RUNTIME = join(TESTBED_DIR, 'node-runtime');
/** Where the agent finds its configuration inside the container. */
export const AGENT_CONFIG = '/etc/lexa/agent.hcl';
const NODE = '/opt/node/bin/node';

let appDir: string | undefined;
/** A directory holding package.json and the mount points for dist/ and node_modules/ (one per test process). */
function app(): string {
  if (appDir) return appDir;
  appDir = mkdtempSync(join(tmpdir(), 'lexa-agent-app-'));
  chmodSync(appDir, 0o755); // the container's root is an unprivileged id on the host: it must be able to enter
  copyFileSync(join(ROOT, 'package.json'), join(appDir, 'package.json'));
  mkdirSync(join(appDir, 'dist'));
  mkdirSync(join(appDir, 'node_modules'));
  return appDir;
}

/** Creates and starts `name` from the busybox image with node, lexa's dist and node_modules mounted read-only. */
export async function launchAgentContainer(name: string): Promise<void> {
  await lxc('init', IMAGE, name, '--quiet');
  const mounts: [string, string, string][] = [
    ['node-lib', join(NODE_RUNTIME, 'lib'), '/lib'],
    ['node-lib64', join(NODE_RUNTIME, 'lib64'), '/lib64'],
    ['node-bin', join(NODE_RUNTIME, 'bin'), '/opt/node/bin'],
    ['lexa-app', app(), '/opt/lexa'],
    ['lexa-dist', join(ROOT, 'dist'), '/opt/lexa/dist'],
    ['lexa-modules', realpathSync(join(ROOT, 'node_modules')), '/opt/lexa/node_modules'],
  ];
  for (const [dev, source, path] of mounts) await lxc('config', 'device', 'add', name, dev, 'disk', `source=${source}`, `path=${path}`, 'readonly=true');
  await lxc('start', name);
}

/** Runs a command inside `name` and resolves with its stdout. */
export function exec(name: string, ...cmd: string[]): Promise<string> {
  return lxc('exec', name, '--', ...cmd);
}

/** Writes `content` to `path` inside `name`. */
export async function writeIn(name: string, path: string, content: string): Promise<void> {
  const local = join(mkdtempSync(join(tmpdir(), 'lexa-push-')), 'file');
  writeFileSync(local, content);
  await lxc('file', 'push', '--create-dirs', local, `${name}${path}`);
}

/** Starts `lexa agent` in `name` (detached; its log in /tmp/agent.log) with `hcl` as its configuration. */
export async function startAgent(name: string, hcl?: string): Promise<void> {
  if (hcl !== undefined) await writeIn(name, AGENT_CONFIG, hcl);
  await exec(name, 'sh', '-c', `setsid ${NODE} /opt/lexa/dist/cli.js agent --config ${AGENT_CONFIG} >>/tmp/agent.log 2>&1 </dev/null &`);
}

/** Kills the agent in `name` (SIGKILL: no goodbye, as a crash). */
export async function killAgent(name: string): Promise<void> {
  await exec(name, 'killall', '-9', 'node'); // busybox has no pkill; the agent is the container's only node
}

/** The agent's log inside `name`. */
export function agentLog(name: string): Promise<string> {
  return exec(name, 'cat', '/tmp/agent.log').catch(() => '');
}

/** Starts busybox httpd on `port` (a service to check), serving a one-line page. */
export async function startHttpd(name: string, port: number): Promise<void> {
  await exec(name, 'sh', '-c', `mkdir -p /www && echo ok >/www/index.html && httpd -p ${port} -h /www`);
}

export async function stopHttpd(name: string): Promise<void> {
  await exec(name, 'killall', 'httpd');
}

/** The container's global IPv4 on eth0, once DHCP gave it one. */
export async function ipv4Of(name: string): Promise<string> {
  return waitFor(async () => {
    const out = await exec(name, 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'global');
    return /inet (\d+\.\d+\.\d+\.\d+)/.exec(out)?.[1];
  }, { what: `${name} to get an IPv4`, timeoutMs: 15_000 });
}

/**
 * Runs a raw agent-protocol peer inside `name`: connects (from `localAddress` if given), writes `frames` (JSON
 * messages), and prints what the server sent back before it closed (or after 3 s). For spoofing tests.
 */
export function rawPeer(name: string, server: string, frames: unknown[], localAddress?: string): Promise<string> {
  const [host, port] = [server.slice(0, server.lastIndexOf(':')), Number(server.slice(server.lastIndexOf(':') + 1))];
  const script = `
import tls from 'node:tls';
import { encodeFrame } from '/opt/lexa/dist/agent/protocol.js';
const s = tls.connect({ host: ${JSON.stringify(host)}, port: ${port}, rejectUnauthorized: false${localAddress ? `, localAddress: ${JSON.stringify(localAddress)}` : ''} });
let got = Buffer.alloc(0);
s.on('data', (d) => (got = Buffer.concat([got, d])));
s.on('error', (e) => console.log('error ' + e.message));
s.on('secureConnect', () => { for (const f of ${JSON.stringify(frames)}) s.write(encodeFrame(f)); });
const done = () => { const out = []; for (let b = got; b.length >= 4; b = b.subarray(4 + b.readUInt32BE(0))) out.push(b.subarray(4, 4 + b.readUInt32BE(0)).toString()); console.log(out.join('\\n')); process.exit(0); };
s.on('close', done);
setTimeout(done, 3000);
`;
  return exec(name, NODE, '--input-type=module', '-e', script);
}
