import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import tls from 'node:tls';
import type { Bind } from '../../config/index.js';
import type { Logger } from '../../log/index.js';
import type { Action, AgentService, Snapshot } from '../../streams/index.js';
import type { TlsMaterial } from '../../tls/index.js';
import { contextOptions, listenTls, type TlsListeners } from '../tls-servers.js';
import { decodeAgentMessage, encodeFrame, FrameReader, type AgentMessage, type ServerMessage } from './protocol.js';

/** The agent actions this endpoint produces; it changes the store through these only. */
export type AgentAction = Extract<Action, { type: 'agent-services' | 'agent-gone' }>;

/**
 * The narrow view of the store the endpoint needs: the current snapshot (to bind a connection to the instance
 * holding its source address) and a way to hand it actions. It never sees the reflector.
 */
export interface AgentRegistry {
  snapshot(): Snapshot;
  dispatch(action: AgentAction): void;
}

export interface AgentLimits {
  /** Connections beyond this are closed on accept: one per container, so thousands are normal. */
  readonly maxConnections: number;
  /** A connection must say hello (with the token) within this, or it is closed. */
  readonly helloTimeoutMs: number;
  /**
   * A connection that sends nothing for this long is closed. Agents ping every AGENT_PING_MS (agent/client.ts);
   * a container stopped with `lxc stop -f` leaves a half-open connection that only this notices.
   */
  readonly idleTimeoutMs: number;
}

export const AGENT_LIMITS: AgentLimits = Object.freeze({
  maxConnections: 8192,
  helloTimeoutMs: 10_000,
  // Three missed pings of the agent's 5 s interval.
  idleTimeoutMs: 15_000,
});

export interface AgentServerOptions {
  readonly binds: readonly Bind[];
  readonly tls: TlsMaterial;
  readonly log: Logger;
  readonly limits: AgentLimits;
  /**
   * The shared secret every agent must present in its hello, read at each hello: a reload that changes it
   * admits the new token at once, while agents already connected stay connected.
   */
  readonly token: () => string;
  /** How long an agent's services outlive its connection. */
  readonly graceMs: number;
  readonly registry: AgentRegistry;
}

/** The endpoint's listeners plus what tests and operators read. */
export interface AgentListeners extends TlsListeners {
  /** Instance keys with a connected agent right now. */
  connected(): string[];
}

/**
 * The agent endpoint: TLS, length-prefixed JSON (protocol.ts). Trust: a connection is accepted only with the
 * token, and is bound to the one running instance that holds its source address in the current snapshot; from
 * then on it speaks for that instance only (its state messages carry no instance name at all). A source address
 * no running instance holds, or one that two hold, is refused. A later connection from the same instance replaces
 * the earlier one. Any protocol violation closes that connection alone, with its reason logged.
 */
export async function startAgentServer(opts: AgentServerOptions): Promise<AgentListeners> {
  const { log, limits, registry } = opts;
  /** The live connection of each instance, by key. */
  const sessions = new Map<string, Session>();
  /** Grace timers of instances whose agent disconnected, by key. */
  const graces = new Map<string, NodeJS.Timeout>();

  interface Session {
    readonly id: string;
    readonly key: string;
    readonly socket: tls.TLSSocket;
    readonly address: string;
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
    const helloTimer = setTimeout(() => refuse('no hello in time'), limits.helloTimeoutMs);
    let idle: NodeJS.Timeout | undefined;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => refuse('silent for too long (no ping)', 'info'), limits.idleTimeoutMs);
    };

    const onMessage = (m: AgentMessage) => {
      if (m.type === 'hello') {
        if (session) return refuse('hello sent twice');
        if (!timingSafeEqual(digest(m.token), digest(opts.token()))) return refuse('wrong token');
        const bound = bindInstance(registry.snapshot(), address);
        if (typeof bound !== 'string' || bound.startsWith('!')) return refuse(String(bound).slice(1));
        clearTimeout(helloTimer);
        session = { id: randomUUID(), key: bound, socket, address, seq: -1, services: undefined };
        const previous = sessions.get(bound);
        sessions.set(bound, session);
        clearTimeout(graces.get(bound));
        graces.delete(bound);
        if (previous) {
          log.info('agent connection replaced by a newer one', { instance: bound });
          previous.socket.destroy();
        }
        log.info('agent connected', { instance: bound, from: address });
        send({ type: 'welcome', instance: bound, graceMs: opts.graceMs });
        return;
      }
      if (!session) return refuse(`${m.type} before hello`);
      if (m.type === 'ping') return send({ type: 'pong' });
      // state: the whole set, in order, from an address still held by this instance alone.
      if (m.seq <= session.seq) return refuse(`state ${m.seq} out of order (last ${session.seq})`);
      const still = bindInstance(registry.snapshot(), address);
      if (still !== session.key) return refuse(`source address no longer bound to ${session.key}`);
      session.seq = m.seq;
      session.services = m.services;
      registry.dispatch({ type: 'agent-services', key: session.key, session: session.id, services: m.services, connected: true, at: Date.now() });
      send({ type: 'ack', seq: m.seq });
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
    socket.on('error', (err) => log.debug('agent socket error', { from: address, error: err.message }));
    socket.on('close', () => {
      closed = true;
      clearTimeout(idle);
      clearTimeout(helloTimer);
      if (!session || sessions.get(session.key) !== session) return;
      sessions.delete(session.key);
      const { key, id, services } = session;
      log.info('agent disconnected', { instance: key, graceMs: opts.graceMs });
      if (services === undefined) return;
      registry.dispatch({ type: 'agent-services', key, session: id, services, connected: false, at: Date.now() });
      graces.set(
        key,
        setTimeout(() => {
          graces.delete(key);
          registry.dispatch({ type: 'agent-gone', key, session: id, at: Date.now() });
        }, opts.graceMs),
      );
    });
  };

  const create = () => tls.createServer({ ...contextOptions(opts.tls), handshakeTimeout: limits.helloTimeoutMs }, onConnection);
  const listeners = await listenTls(opts.binds, create, limits.maxConnections, log, 'agent');
  return {
    ports: listeners.ports,
    setTls: (m) => listeners.setTls(m),
    connected: () => [...sessions.keys()],
    async close() {
      for (const t of graces.values()) clearTimeout(t);
      graces.clear();
      await listeners.close();
    },
  };
}

/**
 * The key of the one running instance holding `address` in `snapshot`, or a reason (prefixed with `!`) to refuse.
 */
export function bindInstance(snapshot: Snapshot, address: string): string {
  if (!snapshot.synced) return '!not ready: LXD has not been listed yet';
  const holders = snapshot.holders(address);
  if (holders.length === 0) return `!no running instance holds ${address}`;
  if (holders.length > 1) return `!${address} is held by ${holders.length} instances (${holders.map((i) => i.key).join(', ')})`;
  return holders[0]!.key;
}

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) → `10.0.0.1`. */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}
