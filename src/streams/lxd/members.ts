import { describeError, type Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import { originOf } from './failover-client.js';
import type { LxdClient } from './lxd-client.js';
import { toMember } from './lxd-model.js';
import { lxdMembersOf } from './wire-shapes.js';
import { resolveMemberHosts } from './member-addresses.js';
import type { ClusterMember } from '../model/model.js';
import type { SnapshotStore } from '../state/store.js';

/**
 * How often the member list is read while LXD is clustered. A member that dies emits no event; LXD marks it
 * Offline after missed heartbeats (~10–20 s on LXD 5.0), and lexa learns that only by asking. Every 5 s adds at
 * most a quarter of that to the time a dead member's instances keep answering (see unreachable.ts).
 */
export const MEMBER_POLL_MS = 5_000;
/**
 * A member that comes back forwards its events again only some seconds after it is Online (measured ~7 s on LXD
 * 5.0.2), and events of that gap are lost: one more full re-list this long after a member's return repairs them.
 */
export const MEMBER_RETURN_RESYNC_MS = 10_000;

/**
 * The cluster's members with their addresses (host names resolved), taught to the client as failover
 * candidates.
 */
export async function readMembers(client: LxdClient, log: Logger, signal: AbortSignal): Promise<ClusterMember[]> {
  const raw = lxdMembersOf(await client.get<unknown>('/1.0/cluster/members?recursion=1', signal));
  const members = await resolveMemberHosts(raw.map(toMember), undefined, (member, host, error) =>
    log.warn('cluster member host name does not resolve', { member, host, error }),
  );
  client.learnMembers?.(members.map((m) => m.url).filter((u) => u !== ''));
  return members;
}

/** The member whose URL has `target`'s origin (the last such), or null (a standalone LXD, or before the first list). */
export function memberAt(target: string, members: Iterable<ClusterMember>): string | null {
  const origin = originOf(target);
  let member: string | null = null;
  for (const m of members) if (origin !== undefined && originOf(m.url) === origin) member = m.name;
  return member;
}

export interface MemberPollerDeps {
  readonly client: LxdClient;
  readonly store: SnapshotStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Starts a full re-list (the reflector's, fenced like any other). */
  readonly resync: () => void;
}

/**
 * Polls a clustered LXD's member list every MEMBER_POLL_MS during one connection, storing it, and asks for a
 * re-list when a member's status changed: LXD reports its instances differently now (unreachable.ts), and no
 * event said so. A member back Online gets a second re-list MEMBER_RETURN_RESYNC_MS later, for the events it did
 * not forward meanwhile. `stop()` leaves no timer behind.
 */
export class MemberPoller {
  readonly #deps: MemberPollerDeps;
  #timer: unknown;
  #returnTimer: unknown;
  #polling: Promise<void> | undefined;

  constructor(deps: MemberPollerDeps) {
    this.#deps = deps;
  }

  /** Starts polling for the connection `signal` belongs to, if LXD is clustered; a timer tick skips while a poll is under way. */
  start(signal: AbortSignal): void {
    const { clock, store } = this.#deps;
    clock.clearInterval(this.#timer);
    if (!store.current.clustered) return;
    this.#timer = clock.setInterval(() => {
      if (!this.#polling) void this.poll(signal);
    }, MEMBER_POLL_MS);
  }

  /** Stops the polling and any pending return re-list. */
  stop(): void {
    this.#deps.clock.clearInterval(this.#timer);
    this.#deps.clock.clearTimeout(this.#returnTimer);
  }

  /** Reads the member list once now (an event said members changed, or the timer ticked). Never rejects. */
  poll(signal: AbortSignal): Promise<void> {
    const { client, store, clock, logger: log, resync } = this.#deps;
    const poll = (async () => {
      const before = store.current.members;
      const members = await readMembers(client, log, signal);
      if (signal.aborted) return;
      store.dispatch({ type: 'members', members, clustered: true, at: clock.now() });
      const changed = members.filter((m) => before.get(m.name)?.status !== m.status);
      if (changed.length === 0 && members.length === before.size) return;
      log.info('cluster members changed; re-listing', {
        members: changed.map((m) => `${m.name}: ${before.get(m.name)?.status ?? 'new'} → ${m.status}`),
      });
      resync();
      if (changed.some((m) => m.status === 'Online')) {
        clock.clearTimeout(this.#returnTimer);
        this.#returnTimer = clock.setTimeout(resync, MEMBER_RETURN_RESYNC_MS);
      }
    })()
      .catch((err) => {
        if (!signal.aborted) log.warn('lxd member list failed', { error: describeError(err) });
      })
      .finally(() => (this.#polling = undefined));
    this.#polling = poll;
    return poll;
  }
}
