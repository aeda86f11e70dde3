// Helpers for integration tests that drive the real LXD prepared by scripts/testbed.sh (or the real Incus of
// scripts/incus.sh, with LEXA_TEST_DAEMON=incus), through its CLI (local unix socket, default project).
//
// Tests share one daemon: give every instance a test-specific name prefix and remove them
// with deleteByPrefix() before and after the test.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** State dir of scripts/testbed.sh (client certificate, LXD's server certificate, image cache). */
export const TESTBED_DIR = process.env['LEXA_TESTBED_DIR'] || '/var/lib/lexa-testbed';

/**
 * The daemon the integration tests drive: LXD (default) or Incus, chosen by `LEXA_TEST_DAEMON=lxd|incus`. Both
 * run side by side on the test machine (scripts/testbed.sh, scripts/incus.sh), each with its own socket, HTTPS
 * port, bridge and subnet; everything below follows the choice, so a test written against `lxc()` and these
 * constants runs against either.
 */
export interface TestDaemon {
  readonly kind: 'lxd' | 'incus';
  /** Its command-line client. */
  readonly cli: 'lxc' | 'incus';
  readonly socket: string;
  /** host:port of its HTTPS API. */
  readonly https: string;
  /** Copy of its self-signed server certificate, to pin it (its SAN covers 127.0.0.1). */
  readonly serverCert: string;
  readonly bridge: string;
  /** The bridge's IPv4 /24 and IPv6 /64 as address prefixes ("10.99.0.", "fd42:99::"). */
  readonly v4Prefix: string;
  readonly v6Prefix: string;
}

const DAEMONS: Record<'lxd' | 'incus', TestDaemon> = {
  lxd: {
    kind: 'lxd',
    cli: 'lxc',
    socket: '/var/lib/lxd/unix.socket',
    https: '127.0.0.1:8443',
    serverCert: join(TESTBED_DIR, 'lxd-server.crt'),
    bridge: 'lxdbr0',
    v4Prefix: '10.99.0.',
    v6Prefix: 'fd42:99::',
  },
  incus: {
    kind: 'incus',
    cli: 'incus',
    socket: '/var/lib/incus/unix.socket',
    https: '127.0.0.1:8444',
    serverCert: join(TESTBED_DIR, 'incus-server.crt'),
    bridge: 'incusbr0',
    v4Prefix: '10.98.0.',
    v6Prefix: 'fd42:98::',
  },
};

function chooseDaemon(value: string | undefined): TestDaemon {
  if (value === undefined || value === '' || value === 'lxd') return DAEMONS.lxd;
  if (value === 'incus') return DAEMONS.incus;
  throw new Error(`LEXA_TEST_DAEMON=${value}: expected lxd or incus`);
}

export const DAEMON: TestDaemon = chooseDaemon(process.env['LEXA_TEST_DAEMON']);

/** Client certificate and key trusted by the daemon for its HTTPS API (ECDSA P-256, PEM); the same for both. */
export const CLIENT_CERT = join(TESTBED_DIR, 'client.crt');
export const CLIENT_KEY = join(TESTBED_DIR, 'client.key');
/** The daemon's server certificate (the name predates Incus support). */
export const LXD_SERVER_CERT = DAEMON.serverCert;
/** host:port of the daemon's HTTPS API. */
export const LXD_HTTPS = DAEMON.https;
/** The daemon's unix socket (Debian packages; a snap LXD would use /var/snap/lxd/common/lxd/unix.socket). */
export const LXD_SOCKET = DAEMON.socket;
/** Alias of the busybox test image (DHCPv4 + SLAAC on eth0, clean stop in under 1 s), on both daemons. */
export const IMAGE = 'lexa-busybox';

/** A failed `lxc` run; `stderr` holds what lxc printed (usually "Error: ..."). */
export class LxcError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly exitCode: number | string | null,
  ) {
    super(`${DAEMON.cli} ${args.join(' ')} failed (${exitCode ?? 'signal'}): ${stderr.trim()}`);
    this.name = 'LxcError';
  }
}

/**
 * Runs a daemon's command-line client (`lxc`, `incus`) with `env`; rejects with an LxcError carrying its stderr.
 * Shared by the helpers for the standalone daemon, the cluster bed and the sites tests.
 */
export function runCli(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new LxcError(args, stderr || err.message, err.code ?? err.signal ?? null));
      else resolve(stdout);
    });
    child.stdin?.end();
  });
}

/** The standalone LXD's and Incus's own clients, whichever daemon LEXA_TEST_DAEMON picks (the sites tests use both). */
export const standaloneLxc = (...args: string[]) => runCli('lxc', args, { ...process.env, LXD_DIR: '/var/lib/lxd' });
export const incusCli = (...args: string[]) => runCli('incus', args);

/**
 * Runs `lxc ...args` (or `incus ...args` under LEXA_TEST_DAEMON=incus: the two clients take the same arguments for
 * everything the tests do) and resolves with its stdout. Rejects with an LxcError carrying stderr
 * if lxc exits non-zero or runs longer than 2 minutes.
 */
export function lxc(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(DAEMON.cli, args, { maxBuffer: 256 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new LxcError(args, stderr || err.message, err.code ?? err.signal ?? null));
      else resolve(stdout);
    });
    // stdin must reach EOF: when it is not a terminal, `lxc launch`/`lxc init` read YAML
    // config from it and would wait forever on an open pipe.
    child.stdin?.end();
  });
}

export interface LaunchOptions {
  /** Instance config set at creation (`-c key=value`), e.g. `user.lexa.service.http.port`. */
  config?: Record<string, string>;
  /** Profiles to apply instead of ["default"]; include "default" to keep the eth0 nic. */
  profiles?: string[];
}

/**
 * Creates and starts instance `name` from the test image. Resolves once LXD reports it
 * started; its addresses come later (IPv4 after ~0.1–0.3 s, global IPv6 after ~1–2 s).
 */
export async function launch(name: string, opts: LaunchOptions = {}): Promise<void> {
  const args = ['launch', IMAGE, name, '--quiet'];
  for (const p of opts.profiles ?? []) args.push('--profile', p);
  for (const [k, v] of Object.entries(opts.config ?? {})) args.push('--config', `${k}=${v}`);
  await lxc(...args);
}

/** Force-deletes instance `name` (running or not); an instance that does not exist is fine. */
export async function deleteInstance(name: string): Promise<void> {
  try {
    await lxc('delete', '--force', name);
  } catch (err) {
    if (err instanceof LxcError && /not found/i.test(err.stderr)) return;
    throw err;
  }
}

/** Force-deletes every instance whose name starts with `prefix`; resolves with their names. */
export async function deleteByPrefix(prefix: string): Promise<string[]> {
  const urls = JSON.parse(await lxc('query', '/1.0/instances')) as string[];
  const names = urls
    .map((u) => decodeURIComponent(u.slice(u.lastIndexOf('/') + 1)))
    .filter((n) => n.startsWith(prefix));
  // A few at a time: each delete is a separate lxc process and takes up to ~1 s.
  const queue = [...names];
  const worker = async (): Promise<void> => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) await deleteInstance(n);
  };
  await Promise.all(Array.from({ length: Math.min(6, queue.length) }, worker));
  return names;
}

export interface InstanceAddress {
  family: 'inet' | 'inet6';
  address: string;
  netmask: string;
  /** "global", "link" or "local". */
  scope: string;
}

/** The parts of GET /1.0/instances/<name>/state that tests use (the rest is there too). */
export interface InstanceState {
  status: string;
  status_code: number;
  pid: number;
  network: Record<string, { addresses: InstanceAddress[]; hwaddr: string; state: string }> | null;
  [key: string]: unknown;
}

/** Live state of instance `name` (`lxc query /1.0/instances/<name>/state`); rejects if it does not exist. */
export async function instanceState(name: string): Promise<InstanceState> {
  return JSON.parse(await lxc('query', `/1.0/instances/${encodeURIComponent(name)}/state`)) as InstanceState;
}

export interface WaitOptions {
  /** Named in the rejection message, e.g. "web-1 to get a global IPv6". */
  what: string;
  /** Default 10 000. */
  timeoutMs?: number;
  /** Pause between attempts; default 100. */
  intervalMs?: number;
}

/**
 * Calls `fn` until it returns something other than `undefined` or `false`, and resolves with
 * that. A throw counts as "not yet" (the error is remembered). After `timeoutMs`, rejects with
 * an Error naming `what` and the last value or error seen.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { what, timeoutMs = 10_000, intervalMs = 100 }: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${describe(last)}`);
    await sleep(Math.min(intervalMs, left));
  }
}

function describe(v: unknown): string {
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 500 ? `${s.slice(0, 500)}…` : s;
}
