import { randomUUID, timingSafeEqual } from 'node:crypto';
import tls from 'node:tls';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import { AGENT_TOKEN_KEY, refusedServices, tokenDigest as digest, type Action, type AgentService, type View } from '../../streams/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import type { TlsMaterial } from '../../tls/index.js';
import type { ConnectionLimits } from '../fairness.js';
import { contextOptions, listenTls, type TlsListeners } from '../tls-servers.js';
import { clip, decodeAgentMessage, encodeFrame, FrameReader, type AgentMessage, type ServerMessage } from '../../agent/protocol.js';

/** The agent actions this endpoint produces; it changes the store through these only. */
export type AgentAction = Extract<Action, { type: 'agent-services' | 'agent-gone' }>;

/**
 * The narrow view of the store the endpoint needs: the current snapshot (to bind a connection to the instance
 * holding its source address) and a way to hand it actions. It never sees the reflector.
 */
export interface AgentRegistry {
  snapshot(): View;
  dispatch(action: AgentAction): void;
}

/**
 * Fair admission (fairness.ts): one connection per container, each from its own address, so thousands in all are
 * normal and a handful per address is plenty (a reconnect briefly overlaps the connection it replaces).
 */
export interface AgentLimits extends ConnectionLimits {
  /** A connection must say hello (with its credential) within this, or it is closed. */
  readonly helloTimeoutMs: number;
  /** A client that has not finished the TLS handshake in this time is dropped. */
  readonly handshakeTimeoutMs: number;
  /**
   * A connection that sends nothing for this long is closed. Agents ping every AGENT_PING_MS (agent/agent.ts);
   * a container stopped with `lxc stop -f` leaves a half-open connection that only this notices.
   */
  readonly idleTimeoutMs: number;
  /**
   * State messages one session may have applied back to back, and the interval at which it earns one more (a
   * token bucket). Each applied state publishes a new snapshot to every SSE and blocking-query client; states
   * beyond the bucket are coalesced (the latest wins) and applied when it refills, never dropped.
   */
  readonly stateBurst: number;
  readonly stateRefillMs: number;
}

/** The defaults the configuration declares (config/schema.ts, server.agent.limits), for tests. */
export const AGENT_LIMITS: AgentLimits = Object.freeze({
  maxConnections: 8192,
  maxPerSource: 4,
  // Containers on one LXD bridge share its /64: each address is its own source.
  ipv6SourcePrefix: 128,
  handshakeTimeoutMs: 5_000,
  helloTimeoutMs: 10_000,
  // Three missed pings of the agent's 5 s interval.
  idleTimeoutMs: 15_000,
  // A healthy agent sends one state on connect and one per check transition (transitions of one tick share one
  // message): ten at once and one a second after that is far above it, and caps a flapping or hostile agent.
  stateBurst: 10,
  stateRefillMs: 1_000,
});

/**
 * Distinct (instance, service) refusals remembered so each is logged once; when full the memory starts over, so a
 * container cycling through names costs at most one log line per name per this many.
 */
const MAX_REMEMBERED_REFUSALS = 4096;

/** What SIGHUP may change under running listeners: read on every hello and state. */
export interface AgentPolicy {
  /** The shared secret (`server.agent.token`) every hello must also carry, or null: the credential alone admits. */
  readonly token: string | null;
  /** `server.agent.services`: the allow list of instances without `user.lexa.agent.services`. */
  readonly services: readonly string[];
}

export interface AgentServerOptions {
  readonly binds: readonly Bind[];
  readonly tls: TlsMaterial;
  readonly log: Logger;
  readonly limits: AgentLimits;
  /** The trust settings in force, read on every hello and state, so a reload applies to running listeners. */
  readonly policy: () => AgentPolicy;
  /** How long an agent's services outlive its connection. */
  readonly graceMs: number;
  readonly registry: AgentRegistry;
  /** Drives the hello and idle timeouts, the state bucket and the grace (default the process's own): tests pass a FakeClock. */
  readonly clock?: Clock;
}

/** The endpoint's listeners plus what tests and operators read. */
export interface AgentListeners extends TlsListeners {
  /** Instance keys with a connected agent right now. */
  connected(): string[];
}

/**
 * The agent endpoint: TLS, length-prefixed JSON (protocol.ts). Trust: a connection is accepted only when its
 * credential is the `user.lexa.agent.token` of a running instance holding its source address in the current
 * snapshot (plus the shared token, when one is configured); from then on it speaks for that instance only (its
 * state messages carry no instance name at all), and each state re-checks that binding. Neither a spoofed address
 * (without the token) nor a leaked token (from another address) admits anything, and a refused connection never
 * touches an established session: a later connection replaces an instance's session only once it has proven the
 * same credential (an agent restarting). The services a state may add are the instance's allow list's
 * (agents.ts); the rest are reported back in the ack and logged once. Any protocol violation closes that
 * connection alone, with its reason (clipped: MAX_LOGGED_CHARS) logged.
 */
export async function startAgentServer(opts: AgentServerOptions): Promise<AgentListeners> {
  const { log, limits, registry } = opts;
  const clock = opts.clock ?? realClock;
  /** The live connection of each instance, by key. */
  const sessions = new Map<string, Session>();
  /** Grace timers of instances whose agent disconnected, by key. */
  const graces = new Map<string, unknown>();
  const refusalsLogged = new Set<string>();
  /** Set by close(): connections it ends start no grace timer (their services leave with the server). */
  let stopped = false;

  interface Session {
    readonly id: string;
    readonly key: string;
    readonly socket: tls.TLSSocket;
    readonly address: string;
    readonly credential: string;
    seq: number;
    services: readonly AgentService[] | undefined;
  }

  const onConnection = (socket: tls.TLSSocket) => {
    const address = plainAddress(socket.remoteAddress ?? '');
    const reader = new FrameReader();
    let session: Session | undefined;
    let closed = false;
    socket.setNoDelay(true);
    const send = (m: ServerMessage) => {
      if (!socket.destroyed) socket.write(encodeFrame(m));
    };
    /** Ends this connection, telling the agent why (it logs it and backs off). */
    const refuse = (reason: string, level: 'info' | 'warn' = 'warn') => {
      if (closed) return;
      log[level]('agent connection closed', { from: address, instance: session?.key, reason });
      send({ type: 'error', reason });
      socket.end();
      socket.destroySoon();
      closed = true;
    };
    // Cleared by an accepted hello only: trickling bytes does not extend it.
    const helloTimer = clock.setTimeout(() => refuse('no hello in time'), limits.helloTimeoutMs);
    let idle: unknown;
    const touch = () => {
      clock.clearTimeout(idle);
      idle = clock.setTimeout(() => refuse('silent for too long (no ping)', 'info'), limits.idleTimeoutMs);
    };
    // The state token bucket: `tokens` earned by `refilledAt`; `pending` is the latest state waiting for one.
    let tokens = limits.stateBurst;
    let refilledAt = clock.now();
    let pending: Extract<AgentMessage, { type: 'state' }> | undefined;
    let refill: unknown;
    const earn = () => {
      const now = clock.now();
      const earned = Math.floor((now - refilledAt) / limits.stateRefillMs);
      if (earned <= 0) return;
      tokens = Math.min(limits.stateBurst, tokens + earned);
      refilledAt = tokens === limits.stateBurst ? now : refilledAt + earned * limits.stateRefillMs;
    };

    /** Applies a state: the binding re-checked now, then the whole set to the store and refusals to the agent. */
    const apply = (s: Session, m: Extract<AgentMessage, { type: 'state' }>) => {
      const snap = registry.snapshot();
      const still = bindInstance(snap, address, s.credential);
      if (still !== s.key) return refuse(`no longer bound to ${s.key}: ${still.replace(/^!/, '')}`);
      const policy = opts.policy();
      const refused = refusedServices(snap.instances.get(s.key)!, policy.services, m.services);
      for (const r of refused) {
        const id = `${s.key}\u0000${r.name}`;
        if (refusalsLogged.has(id)) continue;
        if (refusalsLogged.size >= MAX_REMEMBERED_REFUSALS) refusalsLogged.clear();
        refusalsLogged.add(id);
        log.warn('agent service refused', { instance: s.key, service: r.name, reason: r.reason });
      }
      s.services = m.services;
      // The whole set goes to the store: the fold applies the allow list on every derivation, so a name the
      // operator allows later appears without the agent having to say it again.
      registry.dispatch({ type: 'agent-services', key: s.key, session: s.id, services: m.services, connected: true, defaultServices: policy.services, at: clock.now() });
      send(refused.length > 0 ? { type: 'ack', seq: m.seq, refused } : { type: 'ack', seq: m.seq });
    };
    const flush = () => {
      refill = undefined;
      if (closed || !session || !pending) return;
      earn();
      if (tokens < 1) {
        refill = clock.setTimeout(flush, limits.stateRefillMs - (clock.now() - refilledAt));
        return;
      }
      tokens--;
      const m = pending;
      pending = undefined;
      apply(session, m);
    };

    const onMessage = (m: AgentMessage) => {
      if (m.type === 'hello') {
        if (session) return refuse('hello sent twice');
        const shared = opts.policy().token;
        if (shared !== null && (m.token === undefined || !sameSecret(digest(m.token), digest(shared)))) return refuse('wrong token');
        const credential = digest(m.credential);
        const bound = bindInstance(registry.snapshot(), address, credential);
        if (bound.startsWith('!')) return refuse(bound.slice(1));
        clock.clearTimeout(helloTimer);
        session = { id: randomUUID(), key: bound, socket, address, credential, seq: -1, services: undefined };
        const previous = sessions.get(bound);
        sessions.set(bound, session);
        clock.clearTimeout(graces.get(bound));
        graces.delete(bound);
        if (previous) {
          log.info('agent connection replaced by a newer one with the same credential', { instance: bound });
          previous.socket.destroy();
        }
        log.info('agent connected', { instance: bound, from: address });
        send({ type: 'welcome', instance: bound, graceMs: opts.graceMs });
        return;
      }
      if (!session) return refuse(`${m.type} before hello`);
      if (m.type === 'ping') return send({ type: 'pong' });
      // state: the whole set, in order; applied now if the bucket allows, else it replaces the one waiting.
      if (m.seq <= session.seq) return refuse(`state ${m.seq} out of order (last ${session.seq})`);
      session.seq = m.seq;
      earn();
      if (tokens >= 1 && pending === undefined) {
        tokens--;
        return apply(session, m);
      }
      pending = m;
      refill ??= clock.setTimeout(flush, Math.max(0, limits.stateRefillMs - (clock.now() - refilledAt)));
    };

    socket.on('data', (chunk: Buffer) => {
      if (closed) return;
      touch();
      const { bodies, error } = reader.push(chunk);
      for (const body of bodies) {
        if (closed) return;
        const decoded = decodeAgentMessage(body);
        if (!decoded.ok) return refuse(`bad message: ${decoded.reason}`);
        onMessage(decoded.message);
      }
      if (error && !closed) refuse(error);
    });
    socket.on('error', (err) => log.debug('agent socket error', { from: address, error: clip(err.message) }));
    socket.on('close', () => {
      closed = true;
      clock.clearTimeout(idle);
      clock.clearTimeout(helloTimer);
      clock.clearTimeout(refill);
      if (!session || sessions.get(session.key) !== session) return;
      sessions.delete(session.key);
      const { key, id, services } = session;
      log.info('agent disconnected', { instance: key, graceMs: opts.graceMs });
      // A state still waiting for the bucket was never checked against the binding: the last applied one stays.
      if (services === undefined || stopped) return;
      registry.dispatch({ type: 'agent-services', key, session: id, services, connected: false, defaultServices: opts.policy().services, at: clock.now() });
      graces.set(
        key,
        clock.setTimeout(() => {
          graces.delete(key);
          registry.dispatch({ type: 'agent-gone', key, session: id, at: clock.now() });
        }, opts.graceMs),
      );
    });
  };

  const create = () => tls.createServer({ ...contextOptions(opts.tls), handshakeTimeout: limits.handshakeTimeoutMs }, onConnection);
  const listeners = await listenTls(opts.binds, create, limits, log, 'agent');
  return {
    ports: listeners.ports,
    setTls: (m) => listeners.setTls(m),
    connected: () => [...sessions.keys()],
    async close() {
      stopped = true;
      for (const t of graces.values()) clock.clearTimeout(t);
      graces.clear();
      await listeners.close();
    },
  };
}

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

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** Equal digests (hex of the same length), compared in constant time. */
function sameSecret(a: string, b: string): boolean {
  const [x, y] = [Buffer.from(a, 'hex'), Buffer.from(b, 'hex')];
  return x.length === y.length && timingSafeEqual(x, y);
}
