import { randomBytes } from 'node:crypto';
import type { Logger } from '../../log/index.js';
import { AGENT_TOKEN_KEY, mayRunAgent } from '../model/agents.js';
import type { LxdClient } from '../lxd/lxd-client.js';
import type { Instance } from '../model/model.js';
import type { Snapshot } from '../state/snapshot.js';

/** Random bytes in an issued token: 256 bits, base64url (43 characters), beyond guessing. */
export const AGENT_TOKEN_BYTES = 32;
/**
 * Every token lexa issues starts with this: base64url may begin with '-', which `lxc config set` and shells then read
 * as an option when an operator copies the token (one token in 64); a fixed prefix also lets secret scanners find it.
 */
export const AGENT_TOKEN_PREFIX = 'lexa_';

/** A fresh token: the prefix, then AGENT_TOKEN_BYTES random bytes in base64url. */
export function newAgentToken(): string {
  return AGENT_TOKEN_PREFIX + randomBytes(AGENT_TOKEN_BYTES).toString('base64url');
}
/**
 * An instance written to (or whose write failed) is not written again for this long: LXD's `instance-updated`
 * brings the token into the snapshot within milliseconds, and a credential that may not write (a read-only
 * trust) must cost one log line a minute, not one request per snapshot.
 */
export const TOKEN_RETRY_MS = 60_000;

export interface IssuerOptions {
  readonly client: Pick<LxdClient, 'get' | 'patch'>;
  readonly log: Logger;
  /** `server.agent.services` now (an instance without its own list may run an agent when this is not empty). */
  readonly defaults: () => readonly string[];
  readonly now?: () => number;
}

/**
 * Gives each running instance that may run an agent (its allow list, or the server's default, names a service) its
 * own `user.lexa.agent.token`, written into the instance's own config over the LXD API lexa already holds. The
 * agent inside reads it from /dev/lxd/sock, the one channel no other container can read. A token the operator set
 * is never overwritten: the instance's config is read again just before writing, and one found there is kept.
 */
export class AgentTokenIssuer {
  readonly #opts: IssuerOptions;
  /** Instances written to (or tried), by key, with when: see TOKEN_RETRY_MS. */
  readonly #tried = new Map<string, number>();

  constructor(opts: IssuerOptions) {
    this.#opts = opts;
  }

  /** Starts a write for every instance of `snapshot` that needs a token; never throws (failures are logged). */
  observe(snapshot: Snapshot): void {
    const now = (this.#opts.now ?? Date.now)();
    const defaults = this.#opts.defaults();
    for (const [key, at] of this.#tried) if (now - at >= TOKEN_RETRY_MS) this.#tried.delete(key);
    for (const inst of snapshot.running()) {
      if (inst.agentTokenDigest !== undefined || this.#tried.has(inst.key) || !mayRunAgent(inst, defaults)) continue;
      // A token set on a profile is refused (agents.ts) and reported in the instance's configErrors; it is left
      // to the operator rather than shadowed by one lexa writes.
      if (inst.configErrors.some((e) => e.startsWith(AGENT_TOKEN_KEY))) continue;
      this.#tried.set(inst.key, now);
      void this.#issue(inst);
    }
  }

  async #issue(inst: Instance): Promise<void> {
    const { client, log } = this.#opts;
    const path = `/1.0/instances/${encodeURIComponent(inst.name)}?project=${encodeURIComponent(inst.project)}`;
    try {
      const current = await client.get<{ config?: Record<string, string> }>(path);
      if (typeof current.config?.[AGENT_TOKEN_KEY] === 'string') return; // set meanwhile (by the operator): theirs
      if (!client.patch) throw new Error('this LXD client cannot write');
      await client.patch(path, { config: { [AGENT_TOKEN_KEY]: newAgentToken() } });
      log.info('agent token issued', { instance: inst.key, key: AGENT_TOKEN_KEY });
    } catch (err) {
      log.warn('agent token not issued; retrying later (set server.agent.issue_tokens = false if lexa may not write)', {
        instance: inst.key,
        retryMs: TOKEN_RETRY_MS,
        error: (err as Error).message,
      });
    }
  }
}
