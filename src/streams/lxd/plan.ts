import { eventInstance, eventProfile, instanceKey, type LxdEvent } from './lxd-model.js';

/**
 * What one LXD lifecycle event asks of the reflector. Pure: the reflector does the I/O.
 * LXD events say what happened, rarely what the result is (`instance-updated` carries no context), so most
 * events mean "re-read that instance"; only deletion and renaming can be applied without asking.
 */
export interface EventPlan {
  /** Instance keys to drop from the snapshot now. */
  readonly remove: readonly string[];
  /** Instances to re-read. */
  readonly refetch: readonly { readonly project: string; readonly name: string }[];
  /**
   * Whether to keep re-reading their state for a few seconds: LXD emits no event when an instance gets its
   * addresses (IPv4 by DHCP ~0.1 s after start, the SLAAC IPv6 after 1–2 s).
   */
  readonly settle: boolean;
  /** A profile changed: re-read every instance of that project using it. */
  readonly profile?: { readonly project: string; readonly name: string };
  /** Cluster membership may have changed. */
  readonly members: boolean;
}

const NOTHING: EventPlan = { remove: [], refetch: [], settle: false, members: false };

/** Actions after which an instance's addresses are still arriving. */
const SETTLING = new Set(['instance-started', 'instance-restarted', 'instance-updated', 'instance-resumed']);

/** `site`: the named site the event comes from, which its instance keys carry (lxd-model.ts `instanceKey`). */
export function planEvent(ev: LxdEvent, site?: string): EventPlan {
  if (ev?.type !== 'lifecycle') return NOTHING;
  const action = ev.metadata?.action ?? '';
  if (action.startsWith('instance-') && !action.startsWith('instance-snapshot') && !action.startsWith('instance-backup')) {
    const target = eventInstance(ev);
    if (!target) return NOTHING;
    if (action === 'instance-deleted') return { ...NOTHING, remove: [instanceKey(target.project, target.name, site)] };
    if (action === 'instance-renamed') {
      const old = ev.metadata?.context?.['old_name'];
      return {
        ...NOTHING,
        remove: typeof old === 'string' && old !== target.name ? [instanceKey(target.project, old, site)] : [],
        refetch: [target],
        settle: false,
      };
    }
    return { ...NOTHING, refetch: [target], settle: SETTLING.has(action) };
  }
  if (action === 'profile-updated' || action === 'profile-renamed' || action === 'profile-deleted') {
    const profile = eventProfile(ev);
    return profile ? { ...NOTHING, profile } : NOTHING;
  }
  if (action.startsWith('cluster-member-')) return { ...NOTHING, members: true };
  return NOTHING;
}
