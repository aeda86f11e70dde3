// Helpers for test/reliability: the standalone LXD daemon of scripts/fault-bed.sh (see its header for the layout),
// the one daemon tests may kill, freeze (SIGSTOP) and untrust. Nobody else's tests use it.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_CERT, CLIENT_KEY, IMAGE, LxcError, runCli } from './lxd-cli.js';

export const FAULT_DIR = process.env['LEXA_FAULTBED_DIR'] || '/var/lib/lexa-faultbed';
export const FAULT_LXD_DIR = join(FAULT_DIR, 'lxd');
/** Its HTTPS API, on its network namespace's address (reached from the host through the lexafb0 bridge). */
export const FAULT_HOST = '10.76.0.11';
export const FAULT_PORT = 8443;
/** Its self-signed server certificate, to pin it (copied here by the bed script). */
export const FAULT_SERVER_CERT = join(FAULT_DIR, 'server.crt');
const BED = new URL('../../scripts/fault-bed.sh', import.meta.url).pathname;
/** The name the bed gives lexa's client certificate in the trust store. */
const TRUST_NAME = 'lexa-testbed';

/** `lxc ...args` against the fault bed's daemon through its unix socket. */
export function flxc(...args: string[]): Promise<string> {
  return runCli('lxc', args, { ...process.env, LXD_DIR: FAULT_LXD_DIR });
}

/** `lxc query <path>` against the fault bed: LXD's own answer, the truth tests compare lexa with. */
export const faultQuery = (path: string): Promise<string> => flxc('query', path);

/** Creates and starts `name` from the busybox image, with `config` as instance keys. */
export async function faultLaunch(name: string, config: Record<string, string> = {}): Promise<void> {
  const args = ['launch', IMAGE, name, '--quiet'];
  for (const [k, v] of Object.entries(config)) args.push('--config', `${k}=${v}`);
  await flxc(...args);
}

/** Force-deletes every fault-bed instance whose name starts with `prefix`. */
export async function faultDeletePrefix(prefix: string): Promise<void> {
  const urls = JSON.parse(await faultQuery('/1.0/instances')) as string[];
  const names = urls.map((u) => decodeURIComponent(u.slice(u.lastIndexOf('/') + 1))).filter((n) => n.startsWith(prefix));
  for (const n of names) await flxc('delete', '--force', n).catch((err: unknown) => {
    if (!(err instanceof LxcError && /not found/i.test(err.stderr))) throw err;
  });
}

/** The daemon's pid (the bed script writes it). */
export function faultDaemonPid(): number {
  return Number(readFileSync(join(FAULT_DIR, 'daemon.pid'), 'utf8').trim());
}

/** SIGKILLs the daemon: its containers keep running, no event is emitted, the events socket drops without a close. */
export function killFaultDaemon(): void {
  process.kill(faultDaemonPid(), 'SIGKILL');
}

/** SIGSTOPs the daemon: connections stay open and nothing flows, what a hung daemon looks like. */
export function freezeFaultDaemon(): void {
  process.kill(faultDaemonPid(), 'SIGSTOP');
}

export function thawFaultDaemon(): void {
  process.kill(faultDaemonPid(), 'SIGCONT');
}

/** Starts the daemon again in its namespace (after a kill); resolves once it answers. */
export async function startFaultDaemon(): Promise<void> {
  await runCli('bash', [BED, 'start']);
}

/** Removes lexa's client certificate from the daemon's trust store (its HTTPS clients then get 403). */
export async function untrustClient(): Promise<void> {
  await flxc('config', 'trust', 'remove', clientFingerprint());
}

/** Adds lexa's client certificate back to the trust store. */
export async function trustClient(): Promise<void> {
  await flxc('config', 'trust', 'add', CLIENT_CERT, '--name', TRUST_NAME);
}

/** The SHA-256 fingerprint of lexa's test client certificate, as LXD names it in /1.0/certificates. */
function clientFingerprint(): string {
  const pem = readFileSync(CLIENT_CERT, 'utf8');
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex');
}

/** The body of an HCL `lxd { ... }` block watching the fault bed over HTTPS at host:port (a proxy's, or its own). */
export function faultLxdBlock(target: { host: string; port: number } = { host: FAULT_HOST, port: FAULT_PORT }, extra = ''): string {
  return `    bind {
      host = "${target.host}"
      port = ${target.port}
    }
    certificate = "${CLIENT_CERT}"
    key = "${CLIENT_KEY}"
    server_certificate = "${FAULT_SERVER_CERT}"${extra ? `\n${extra}` : ''}`;
}
