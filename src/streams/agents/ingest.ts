import { randomUUID } from 'node:crypto';
import type { Logger } from '../../log/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import { refusedServices, tokenDigest } from '../model/agents.js';
import type { AgentService } from '../model/model.js';
import type { Action } from '../state/fold.js';
import type { View } from '../state/view.js';
import { bindInstance, sameSecret } from './binding.js';

/** The agent actions the ingest produces; agents change the store through these only. */
export type AgentAction = Extract<Action, { type: 'agent-services' | 'agent-gone' }>;

/**
 * The narrow view of the store the ingest needs: the current snapshot (to bind a connection to the instance
 * holding its source address) and a way to hand it actions. It never sees the reflector.
 */
export interface AgentStore {
  snapshot(): View;
  dispatch(action: AgentAction): void;
}

/** What SIGHUP may change under running listeners: read on every hello and state. */
export interface AgentPolicy {
  /** The shared secret (`server.agent.token`) every hello must also carry, or null: the credential alone admits. */
  readonly token: string | null;
  /** `server.agent.services`: the allow list of instances without `user.lexa.agent.services`. */
  readonly services: readonly string[];
}

export interface AgentIngestOptions {
  readonly store: AgentStore;
  /** The trust settings in force, read on every hello and state, so a reload applies to running listeners. */
  readonly policy: () => AgentPolicy;
  /** How long an agent's services outlive its connection (read at each disconnect: a reload applies). */
  readonly graceMs: () => number;
  readonly log: Logger;
  /** Drives the grace timers (default the process's own): tests pass a FakeClock. */
  readonly clock?: Clock;
}

/** One admitted connection: the instance it speaks for. Opaque to the endpoint beyond these fields. */
export interface AgentSession {
  readonly id: string;
  readonly key: string;
  readonly address: string;
}

export type Admission = { readonly ok: true; readonly session: AgentSession; readonly graceMs: number } | { readonly ok: false; readonly reason: string };

export type StateOutcome = { readonly ok: true; readonly refused: readonly { name: string; reason: string }[] } | { readonly ok: false; readonly reason: string };

/**
 * Distinct (instance, service) refusals remembered so each is logged once; when full the memory starts over, so a
 * container cycling through names costs at most one log line per name per this many.
 */
const MAX_REMEMBERED_REFUSALS = 4096;

interface Entry {
  readonly session: AgentSession;
  /** Digest of the credential the connection proved; every state re-checks the binding with it. */
  readonly credential: string;
  /** The last applied set (undefined before the first state). */
  services: readonly AgentService[] | undefined;
  /** Ends the connection: a newer one with the same credential replaced it. */
  readonly end: () => void;
}

/**
 * The agents' way into the state, as the reflector is LXD's: which instance a connection speaks for, and what its
 * agent's services become in the store. The agent endpoint (servers/agent) owns sockets, framing, deadlines and
 * the rate limit, and asks this for everything that touches the snapshot. One ingest serves every agent listener
 * (every bind, across reloads), so an instance has one session whichever address its agent reaches: a reconnect
 * through another bind replaces the older connection, whose late close then changes nothing.
 *
 * Trust: a connection is admitted only when its credential is the `user.lexa.agent.token` of a running instance
 * holding its source address in the current snapshot (plus the shared token, when one is configured); from then on
 * it speaks for that instance only, and each state re-checks that binding. A refused hello never touches an
 * established session; a later hello replaces an instance's session only once it has proven the same credential
 * (an agent restarting). The services a state may add are the instance's allow list's (model/agents.ts); the rest
 * are returned to the endpoint (for the ack) and logged once.
 */
export class AgentIngest {
  readonly #opts: AgentIngestOptions;
  readonly #clock: Clock;
  /** The live session of each instance, by key. */
  readonly #sessions = new Map<string, Entry>();
  /** Grace timers of instances whose agent disconnected, by key. */
  readonly #graces = new Map<string, unknown>();
  readonly #refusalsLogged = new Set<string>();
  /** Set by stop(): sessions ending after it start no grace timer (their services leave with the server). */
  #stopped = false;

  constructor(opts: AgentIngestOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? realClock;
  }

  /**
   * A hello from `address`: admitted (the session it now is, replacing any older one of that instance, whose `end`
   * is called) or refused with the reason to tell the agent. `end` is how this session is ended if a newer one
   * replaces it.
   */
  hello(address: string, hello: { readonly token?: string; readonly credential: string }, end: () => void): Admission {
    const shared = this.#opts.policy().token;
    if (shared !== null && (hello.token === undefined || !sameSecret(tokenDigest(hello.token), tokenDigest(shared)))) return { ok: false, reason: 'wrong token' };
    const credential = tokenDigest(hello.credential);
    const bound = bindInstance(this.#opts.store.snapshot(), address, credential);
    if (bound.startsWith('!')) return { ok: false, reason: bound.slice(1) };
    const session: AgentSession = { id: randomUUID(), key: bound, address };
    const previous = this.#sessions.get(bound);
    this.#sessions.set(bound, { session, credential, services: undefined, end });
    this.#clock.clearTimeout(this.#graces.get(bound));
    this.#graces.delete(bound);
    if (previous) {
      this.#opts.log.info('agent connection replaced by a newer one with the same credential', { instance: bound });
      previous.end();
    }
    this.#opts.log.info('agent connected', { instance: bound, from: address });
    return { ok: true, session, graceMs: this.#opts.graceMs() };
  }

  /**
   * A state of `session`: the binding re-checked now, then the whole set to the store. Returns the services the
   * allow list refused (for the ack), or a reason to end the connection (it is no longer that instance's, or a
   * newer session replaced it).
   */
  state(session: AgentSession, services: readonly AgentService[]): StateOutcome {
    const entry = this.#sessions.get(session.key);
    if (entry?.session !== session) return { ok: false, reason: 'replaced by a newer connection' };
    const snap = this.#opts.store.snapshot();
    const still = bindInstance(snap, session.address, entry.credential);
    if (still !== session.key) return { ok: false, reason: `no longer bound to ${session.key}: ${still.replace(/^!/, '')}` };
    const policy = this.#opts.policy();
    const refused = refusedServices(snap.instances.get(session.key)!, policy.services, services);
    for (const r of refused) {
      const id = `${session.key}\u0000${r.name}`;
      if (this.#refusalsLogged.has(id)) continue;
      if (this.#refusalsLogged.size >= MAX_REMEMBERED_REFUSALS) this.#refusalsLogged.clear();
      this.#refusalsLogged.add(id);
      this.#opts.log.warn('agent service refused', { instance: session.key, service: r.name, reason: r.reason });
    }
    entry.services = services;
    // The whole set goes to the store: the fold applies the allow list on every derivation, so a name the
    // operator allows later appears without the agent having to say it again.
    this.#dispatch(session, services, true);
    return { ok: true, refused };
  }

  /**
   * The connection of `session` closed. If it is still the instance's session, its services stay for the grace
   * period (marked disconnected) and then leave; a replaced session's close changes nothing.
   */
  disconnect(session: AgentSession): void {
    const entry = this.#sessions.get(session.key);
    if (entry?.session !== session) return;
    this.#sessions.delete(session.key);
    const graceMs = this.#opts.graceMs();
    this.#opts.log.info('agent disconnected', { instance: session.key, graceMs });
    if (entry.services === undefined || this.#stopped) return;
    this.#dispatch(session, entry.services, false);
    const { key, id } = session;
    this.#graces.set(
      key,
      this.#clock.setTimeout(() => {
        this.#graces.delete(key);
        this.#opts.store.dispatch({ type: 'agent-gone', key, session: id, at: this.#clock.now() });
      }, graceMs),
    );
  }

  /** Instance keys with a connected agent right now. */
  connected(): string[] {
    return [...this.#sessions.keys()];
  }

  /** The daemon is stopping: no grace timer runs from now on, and none starts. */
  stop(): void {
    this.#stopped = true;
    for (const t of this.#graces.values()) this.#clock.clearTimeout(t);
    this.#graces.clear();
  }

  #dispatch(session: AgentSession, services: readonly AgentService[], connected: boolean): void {
    const defaultServices = this.#opts.policy().services;
    this.#opts.store.dispatch({ type: 'agent-services', key: session.key, session: session.id, services, connected, defaultServices, at: this.#clock.now() });
  }
}
