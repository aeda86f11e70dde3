// Helpers for test/cluster: the real 2-member LXD cluster that scripts/cluster-bed.sh forms (see its header for
// the layout). Member 1 (lexa-c1) holds the only database voter; member 2 (lexa-c2) is the one tests may kill
// or freeze.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_CERT, CLIENT_KEY, IMAGE, runCli } from './lxd-cli.js';
import { startLexa, type TestLexa } from './lexa.js';

export const CLUSTER_DIR = process.env['LEXA_CLUSTER_DIR'] || '/var/lib/lexa-cluster';
/** The one certificate every member presents (members of an LXD cluster share it). */
export const CLUSTER_CERT = join(CLUSTER_DIR, 'cluster.crt');
export const MEMBERS = {
  1: { name: 'lexa-c1', address: '10.77.0.11', dir: join(CLUSTER_DIR, 'm1') },
  2: { name: 'lexa-c2', address: '10.77.0.12', dir: join(CLUSTER_DIR, 'm2') },
} as const;
export type MemberNo = keyof typeof MEMBERS;
const BED = new URL('../../scripts/cluster-bed.sh', import.meta.url).pathname;

/** `lxc ...args` against the cluster through member `via`'s unix socket. */
export function clxc(via: MemberNo, ...args: string[]): Promise<string> {
  return runCli('lxc', args, { ...process.env, LXD_DIR: MEMBERS[via].dir });
}

/** Creates and starts `name` on member `on` (through member 1, or 2 when 1 is not the target's peer). */
export async function launchOn(on: MemberNo, name: string, config: Record<string, string> = {}): Promise<void> {
  const args = ['launch', IMAGE, name, '--quiet', '--target', MEMBERS[on].name];
  for (const [k, v] of Object.entries(config)) args.push('--config', `${k}=${v}`);
  await clxc(1, ...args);
}

/** Force-deletes every cluster instance whose name starts with `prefix`. */
export async function deleteClusterPrefix(prefix: string): Promise<void> {
  const urls = JSON.parse(await clxc(1, 'query', '/1.0/instances')) as string[];
  const names = urls.map((u) => decodeURIComponent(u.slice(u.lastIndexOf('/') + 1))).filter((n) => n.startsWith(prefix));
  await Promise.all(names.map((n) => clxc(1, 'delete', '--force', n).catch(() => undefined)));
}

/** Member `n`'s daemon PID, from the file scripts/netns-bed.sh's bed_start_lxd writes. */
function memberPid(n: MemberNo): number {
  return Number(readFileSync(join(MEMBERS[n].dir, 'daemon.pid'), 'utf8').trim());
}

/** Kills member `n`'s daemon with SIGKILL (its containers keep running, as LXD's do); no event is emitted. */
export function killMember(n: MemberNo): void {
  process.kill(memberPid(n), 'SIGKILL');
}

/**
 * Freezes member `n`'s daemon (SIGSTOP): its TCP connections stay open and nothing flows, as on a member under
 * memory pressure, a stuck disk or a paused VM. Its containers keep running. Undo with thawMember.
 */
export function freezeMember(n: MemberNo): void {
  process.kill(memberPid(n), 'SIGSTOP');
}

/** Lets a frozen member `n` run again (SIGCONT); harmless on one that is not frozen. */
export function thawMember(n: MemberNo): void {
  process.kill(memberPid(n), 'SIGCONT');
}

/** Starts member `n`'s daemon again in its namespace (it rejoins by itself); resolves once it answers. */
export async function startMember(n: MemberNo): Promise<void> {
  await runCli('bash', [BED, 'start', String(n)]);
}

/** Cluster members' status by name, as LXD reports them (through member `via`). */
export async function memberStatus(via: MemberNo = 1): Promise<Record<string, string>> {
  const list = JSON.parse(await clxc(via, 'query', '/1.0/cluster/members?recursion=1')) as { server_name: string; status: string }[];
  return Object.fromEntries(list.map((m) => [m.server_name, m.status]));
}

/**
 * lexa in this process watching the cluster over HTTPS through `via` (in order), the cluster certificate pinned;
 * `extra` goes inside `server { }`, `lxdExtra` inside its `lxd { }` block.
 */
export function startClusterLexa(via: readonly MemberNo[], extra = '', lxdExtra = ''): Promise<TestLexa> {
  const binds = via.map((n) => `    bind {\n      host = "${MEMBERS[n].address}"\n      port = 8443\n    }`).join('\n');
  return startLexa(
    `${binds}
    certificate = "${CLIENT_CERT}"
    key = "${CLIENT_KEY}"
    server_certificate = "${CLUSTER_CERT}"
${lxdExtra}`,
    extra,
  );
}
