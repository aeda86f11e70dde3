import { timingSafeEqual } from 'node:crypto';
import { AGENT_TOKEN_KEY } from '../model/agents.js';
import type { View } from '../state/view.js';

/**
 * The key of the running instance that holds `address` in `snapshot` AND whose `user.lexa.agent.token` digests
 * to `credential` (tokenDigest), or a reason (prefixed with `!`) to refuse. Every holder's digest is compared,
 * timing-safe, whatever the outcome. An address two instances hold (one copied the other's onto its own
 * interface) still binds the one whose token the connection proves; only two holders with one token (an
 * `lxc copy` keeps the token) are ambiguous and refused.
 */
export function bindInstance(snapshot: View, address: string, credential: string): string {
  if (!snapshot.synced) return '!not ready: LXD has not been listed yet';
  const holders = snapshot.holders(address);
  if (holders.length === 0) return `!no running instance holds ${address}`;
  const proven = holders.filter((i) => i.agentTokenDigest !== undefined && sameSecret(i.agentTokenDigest, credential));
  if (proven.length === 1) return proven[0]!.key;
  if (proven.length > 1)
    return `!${address} is held by ${proven.length} instances with the same ${AGENT_TOKEN_KEY} (${proven.map((i) => i.key).join(', ')}; an lxc copy keeps it: unset it on the copy)`;
  if (holders.length === 1 && holders[0]!.agentTokenDigest === undefined)
    return `!${holders[0]!.key} has no ${AGENT_TOKEN_KEY} yet (lexa issues one to instances whose agent may announce a service)`;
  return holders.length === 1
    ? `!the credential is not ${holders[0]!.key}'s ${AGENT_TOKEN_KEY}`
    : `!the credential is not the ${AGENT_TOKEN_KEY} of any of the ${holders.length} instances holding ${address}`;
}

/** Equal digests (hex of the same length), compared in constant time. */
export function sameSecret(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a, 'hex'), Buffer.from(b, 'hex')];
  return x.length === y.length && timingSafeEqual(x, y);
}
