import tls from 'node:tls';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import type { AgentIngest, AgentSession } from '../../streams/agents/ingest.js';
import { realClock, type Clock } from '../../time/clock.js';
import type { TlsMaterial } from '../../tls/index.js';
import type { ConnectionLimits } from '../fairness.js';
import { contextOptions, listenTls, type TlsListeners } from '../tls-servers.js';
import { clip, decodeAgentMessage, encodeFrame, AgentFrameReader, type AgentMessage, type ServerMessage } from '../../agent/protocol.js';

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

/**
 * Replies (pongs, acks) an agent may leave unread before lexa stops reading from it, as the DNS stream transports
 * do (MAX_BUFFERED_BYTES): without it, an agent that sends pings and never reads made lexa queue a pong for every
 * ping, without end. Reading goes on when the agent has read them. A healthy agent's replies are a few bytes each.
 */
export const MAX_UNREAD_REPLY_BYTES = 64 * 1024;

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

export interface AgentServerOptions {
  readonly binds: readonly Bind[];
  readonly tls: TlsMaterial;
  readonly log: Logger;
  readonly limits: AgentLimits;
  /** Where admitted connections' services go: one ingest for every agent listener (streams/agents/ingest.ts). */
  readonly agents: AgentIngest;
  /** Drives the hello and idle timeouts and the state bucket (default the process's own): tests pass a FakeClock. */
  readonly clock?: Clock;
}

/** The endpoint's listeners plus what tests and operators read. */
export interface AgentListeners extends TlsListeners {
  /** Instance keys with an agent connected through this listener right now. */
  connected(): string[];
}

/**
 * The agent endpoint: TLS, length-prefixed JSON (protocol.ts). It owns the sockets: framing, the hello and idle
 * deadlines, and the state rate limit; who a connection speaks for and what its services become is the ingest's
 * (streams/agents/ingest.ts: the credential, the shared token, the binding to an instance, the allow list, grace).
 * A state message carries no instance name at all: the session it arrives on is the only identity. Any protocol
 * violation closes that connection alone, with its reason (clipped: MAX_LOGGED_CHARS) logged.
 */
export async function startAgentServer(opts: AgentServerOptions): Promise<AgentListeners> {
  const { log, limits, agents } = opts;
  const clock = opts.clock ?? realClock;
  /** The sessions admitted through this listener and still open. */
  const open = new Set<AgentSession>();

  const onConnection = (socket: tls.TLSSocket) => {
    const address = plainAddress(socket.remoteAddress ?? '');
    const reader = new AgentFrameReader();
    let session: AgentSession | undefined;
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
    let lastSeq = -1;
    let refill: unknown;
    const earn = () => {
      const now = clock.now();
      const earned = Math.floor((now - refilledAt) / limits.stateRefillMs);
      if (earned <= 0) return;
      tokens = Math.min(limits.stateBurst, tokens + earned);
      refilledAt = tokens === limits.stateBurst ? now : refilledAt + earned * limits.stateRefillMs;
    };

    /** Applies a state through the ingest, then acks it with the services the allow list refused. */
    const apply = (s: AgentSession, m: Extract<AgentMessage, { type: 'state' }>) => {
      const outcome = agents.state(s, m.services);
      if (!outcome.ok) return refuse(outcome.reason);
      send(outcome.refused.length > 0 ? { type: 'ack', seq: m.seq, refused: outcome.refused } : { type: 'ack', seq: m.seq });
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
        const admitted = agents.hello(address, m, () => socket.destroy());
        if (!admitted.ok) return refuse(admitted.reason);
        clock.clearTimeout(helloTimer);
        session = admitted.session;
        open.add(session);
        send({ type: 'welcome', instance: session.key, graceMs: admitted.graceMs });
        return;
      }
      if (!session) return refuse(`${m.type} before hello`);
      if (m.type === 'ping') return send({ type: 'pong' });
      // state: the whole set, in order; applied now if the bucket allows, else it replaces the one waiting.
      if (m.seq <= lastSeq) return refuse(`state ${m.seq} out of order (last ${lastSeq})`);
      lastSeq = m.seq;
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
      if (!closed && socket.writableLength > MAX_UNREAD_REPLY_BYTES && !socket.isPaused()) {
        socket.pause();
        socket.once('drain', () => socket.resume());
      }
    });
    socket.on('error', (err) => log.debug('agent socket error', { from: address, error: clip(err.message) }));
    socket.on('close', () => {
      closed = true;
      clock.clearTimeout(idle);
      clock.clearTimeout(helloTimer);
      clock.clearTimeout(refill);
      if (!session) return;
      open.delete(session);
      // A state still waiting for the bucket was never checked against the binding: the last applied one stays.
      agents.disconnect(session);
    });
  };

  const create = () => tls.createServer({ ...contextOptions(opts.tls), handshakeTimeout: limits.handshakeTimeoutMs }, onConnection);
  const listeners = await listenTls(opts.binds, create, limits, log, 'agent');
  return {
    ports: listeners.ports,
    setTls: (m) => listeners.setTls(m),
    connected: () => [...open].map((s) => s.key),
    async close() {
      await listeners.close();
    },
  };
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
