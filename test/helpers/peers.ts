import { spawn, execFile, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { memoryLogger } from '../../src/log/index.js';

/** Helpers for tests that run a real DNS peer (knot, unbound, dnsdist) beside lexa, from the configs in examples/. */

export const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples');

/** A port free for both UDP and TCP on 127.0.0.1 right now (DNS peers listen on both). */
export async function freePort(): Promise<number> {
  for (;;) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((r) => udp.bind(0, '127.0.0.1', () => r(udp.address().port)));
    const tcp = net.createServer();
    const ok = await new Promise<boolean>((r) => {
      tcp.once('error', () => r(false));
      tcp.listen(port, '127.0.0.1', () => r(true));
    });
    await new Promise<void>((r) => udp.close(() => r()));
    if (ok) {
      await new Promise<void>((r) => tcp.close(() => r()));
      return port;
    }
  }
}

/** A copy of example `relPath` with each [from, to] replaced (every occurrence; each `from` must occur), in `dir`. */
export function exampleCopy(relPath: string, dir: string, replace: readonly (readonly [string, string])[]): string {
  let text = readFileSync(join(EXAMPLES, relPath), 'utf8');
  for (const [from, to] of replace) {
    if (!text.includes(from)) throw new Error(`examples/${relPath} no longer contains ${JSON.stringify(from)}`);
    text = text.split(from).join(to);
  }
  const out = join(dir, relPath.split('/').pop()!);
  writeFileSync(out, text);
  return out;
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `lexa-${name}-`));
}

/** lexa from an HCL file, in this process (the same loader and daemon as `lexa server --config`). */
export async function lexaFrom(file: string): Promise<{ daemon: Daemon; log: ReturnType<typeof memoryLogger> }> {
  const log = memoryLogger();
  const daemon = await startDaemon(await loadConfig({ path: file }), log);
  return { daemon, log };
}

/** A peer daemon in the foreground; its output is collected in `output()`; `stop()` ends it by its pid. */
export interface Peer {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export function startPeer(cmd: string, args: readonly string[]): Peer {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** `kdig +short` against 127.0.0.1:port (answers sorted; [] for none); `extra` e.g. ['+tcp']. */
export function short(port: number, name: string, type: string, extra: readonly string[] = []): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile('kdig', ['@127.0.0.1', '-p', String(port), name, type, '+short', '+time=2', '+retry=0', ...extra], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kdig ${name} ${type}: ${stderr || err.message}`));
      else resolve(stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith(';;')).sort());
    });
  });
}

/** Full kdig output (for status and TSIG checks). */
export function kdigRaw(args: readonly string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('kdig', [...args], { timeout: 20_000 }, (_err, stdout, stderr) => resolve(stdout + stderr));
  });
}

/** A reply as kdig saw it: the status ('TIMEOUT' when none came) and the answer rdata, sorted. */
export interface Seen {
  readonly status: string;
  readonly answers: readonly string[];
}

/**
 * Asks 127.0.0.1:port once (1 s timeout, no retry) and never rejects: a timeout is status TIMEOUT. A `name` of
 * `-x <address>` (with type PTR) is `kdig -x`.
 */
export function ask(port: number, name: string, type: string, extra: readonly string[] = []): Promise<Seen> {
  // `kdig -x <address>` asks the address's PTR: the name is then kdig's to build, not the test's.
  const question = name.startsWith('-x ') ? ['-x', name.slice(3)] : [name, type];
  return new Promise((resolve) => {
    execFile('kdig', ['@127.0.0.1', '-p', String(port), ...question, '+time=1', '+retry=0', '+noquestion', '+nostats', ...extra], { timeout: 10_000 }, (_err, stdout) => {
      const status = /status: ([A-Z]+)/.exec(stdout)?.[1] ?? 'TIMEOUT';
      const answers = stdout
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith(';;'))
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f[3] === type)
        .map((f) => f.slice(4).join(' '))
        .sort();
      resolve({ status, answers });
    });
  });
}

/** A self-signed ECDSA certificate and key for `hostname` (openssl), in `dir`. */
export function selfSigned(dir: string, hostname: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'lexa-dot.crt');
  const key = join(dir, 'lexa-dot.key');
  const args = ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${hostname}`, '-addext', `subjectAltName=DNS:${hostname}`, '-keyout', key, '-out', cert];
  return new Promise((resolve, reject) => execFile('openssl', args, (err, _o, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve({ cert, key }))));
}
