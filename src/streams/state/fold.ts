import type { AgentService, CheckResult, ClusterMember, Instance } from '../model/model.js';
import type { Snapshot } from './snapshot.js';
import { unreachableHeld } from './unreachable.js';

/**
 * What can happen to the snapshot. The reflector turns LXD's events and the replies to its requests into these;
 * `fold` applies them. Every action carries its time so the fold stays pure.
 */
export type Action =
  /**
   * A full list of LXD: replaces everything (LXD replays nothing after a reconnect), except the instances named in
   * `keep`: those were read one by one while the list was in flight, so the snapshot's entry (or its absence,
   * after a 404) is at least as new as the list's and stays.
   */
  | {
      readonly type: 'listed';
      readonly instances: readonly Instance[];
      readonly members: readonly ClusterMember[];
      readonly clustered: boolean;
      readonly keep?: readonly string[];
      readonly at: number;
    }
  /** One instance as just read from LXD. */
  | { readonly type: 'instance'; readonly instance: Instance; readonly at: number }
  /** An instance LXD no longer has (deleted, renamed away, or 404 on re-read). */
  | { readonly type: 'instance-gone'; readonly key: string; readonly at: number }
  | { readonly type: 'members'; readonly members: readonly ClusterMember[]; readonly clustered: boolean; readonly at: number }
  /** The subnets of LXD's managed networks (CIDR), as just read. */
  | { readonly type: 'networks'; readonly subnets: readonly string[]; readonly at: number }
  /** The events connection went up (after its list) or down. */
  | { readonly type: 'connection'; readonly connected: boolean; readonly at: number }
  /**
   * The agent inside instance `key` (connection `session`) declares exactly `services` (the whole set, each with
   * its health), or its connection went down (`connected: false`: the services stay until `agent-gone`). Ignored
   * when the instance is not running.
   */
  | {
      readonly type: 'agent-services';
      readonly key: string;
      readonly session: string;
      readonly services: readonly AgentService[];
      readonly connected: boolean;
      /** The server's default allow list in force (AgentState.defaultServices). */
      readonly defaultServices: readonly string[];
      readonly at: number;
    }
  /**
   * The server's default allow list changed (SIGHUP): every agent state is re-checked against it, in one snapshot.
   */
  | { readonly type: 'agent-default'; readonly services: readonly string[]; readonly at: number }
  /** Connection `session`'s grace period ended: its services leave (unless a newer connection spoke since). */
  | { readonly type: 'agent-gone'; readonly key: string; readonly session: string; readonly at: number }
  /**
   * A server-side check of service `service` on instance `key` changed state (checks/checker.ts). Ignored when the
   * instance is not running or no longer declares that check.
   */
  | { readonly type: 'check'; readonly key: string; readonly service: string; readonly result: CheckResult; readonly at: number };

/**
 * The reducer: `scan(fold, Snapshot.empty())`. Pure, never throws; an action that changes nothing returns the
 * same snapshot object, so readers can skip it by identity.
 */
export function fold(snapshot: Snapshot, action: Action): Snapshot {
  switch (action.type) {
    case 'listed':
      return snapshot.withList(listedInstances(snapshot, action), action.members, action.clustered, action.at);
    case 'instance':
      return snapshot.withInstance(
        unreachableHeld(snapshot.instances.get(action.instance.key), action.instance, snapshot.members, snapshot.clustered),
        action.at,
      );
    case 'instance-gone':
      return snapshot.withoutInstance(action.key, action.at);
    case 'members':
      return snapshot.withMembers(action.members, action.clustered, action.at);
    case 'networks':
      return snapshot.withSubnets(action.subnets, action.at);
    case 'connection':
      return snapshot.withConnected(action.connected, action.at);
    case 'agent-services': {
      const { key, session, services, connected, defaultServices, at } = action;
      return snapshot.withAgent(key, { session, services, connected, defaultServices, at }, at);
    }
    case 'agent-default': {
      let next = snapshot;
      for (const [key, state] of snapshot.agents) next = next.withAgent(key, { ...state, defaultServices: action.services }, action.at);
      return next;
    }
    case 'agent-gone':
      return snapshot.withoutAgent(action.key, action.session, action.at);
    case 'check':
      return snapshot.withCheck(action.key, action.service, action.result, action.at);
    default:
      return snapshot;
  }
}

/**
 * The list's instances, with the snapshot's own entry for every key in `keep` (none when it has none), and the
 * last known record of instances on a member LXD cannot reach but still lists Online (unreachable.ts).
 */
function listedInstances(snapshot: Snapshot, action: Extract<Action, { type: 'listed' }>): readonly Instance[] {
  const members = new Map(action.members.map((m) => [m.name, m]));
  const listed = action.instances.map((inst) =>
    unreachableHeld(snapshot.instances.get(inst.key), inst, members, action.clustered),
  );
  if (!action.keep?.length) return listed;
  const keep = new Set(action.keep);
  const out = listed.filter((inst) => !keep.has(inst.key));
  for (const key of keep) {
    const current = snapshot.instances.get(key);
    if (current) out.push(current);
  }
  return out;
}
