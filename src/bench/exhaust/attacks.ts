import { Buffer } from 'node:buffer';
import http2 from 'node:http2';
import { encodeFrame } from '../../agent/protocol.js';
import { reservedSlots, type ConnectionLimits } from '../../servers/fairness.js';
import { hold, tcpFrom, tlsFrom, Trickler, type Holder } from './hold.js';

/**
 * The exhaustion attacks, one per listener and kind, each from the attacker addresses only. An attack runs until
 * stopped; `size` is how many connections (or requests) it keeps trying to hold, `maxAttempts` bounds every loop.
 */
export interface AttackRun {
  /**
   * Connections lexa holds for the attacker now: `lexaOpen` (lexa's own count) once the attacker paused for the
   * accept queue to be worked through (Holder.count); or, where lexa's count cannot tell, the attacker's.
   */
  held(lexaOpen: () => number): Promise<number>;
  /** Stops the attack; what lexa answered it. */
  stop(): Promise<AttackOutcome>;
}

export interface AttackOutcome {
  /** Connections (or, for request floods, requests) the attacker opened. */
  readonly attempts: number;
  /** What lexa answered, beyond holding or refusing connections (e.g. HTTP statuses of refused bodies). */
  readonly answers: Record<string, number>;
}

export interface AttackContext {
  readonly port: number;
  readonly addresses: readonly string[];
  readonly size: number;
  readonly maxAttempts: number;
  /** X-Lexa-Index / X-Consul-Index to block on (blocking queries). */
  readonly index?: { readonly lexa: string; readonly consul: string };
}

/**
 * The most connections `addresses` may hold at once under `limits` (fairness.ts): each at most max_per_source, and
 * a source already holding one never takes the reserved last quarter.
 */
export function allowedHeld(limits: ConnectionLimits, addresses: number): number {
  const perSource = Math.min(limits.maxPerSource, limits.maxConnections - reservedSlots(limits.maxConnections));
  return Math.min(addresses * perSource, limits.maxConnections - reservedSlots(limits.maxConnections) + addresses);
}

/** Stops `h`: how many connections it opened. */
function outcomeOf(h: Holder, answers: Record<string, number> = {}): AttackOutcome {
  h.stop();
  return { attempts: h.attempts, answers };
}

/** Idle connections that send nothing at all: plain TCP (DNS), or TLS that finishes its handshake and stops. */
export function idle(ctx: AttackContext, tls: false | { alpn?: string }): AttackRun {
  const h = hold({ ...ctx, count: ctx.size, behaviour: (a, p) => (tls === false ? tcpFrom(a, p) : tlsFrom(a, p, tls.alpn)) });
  return { held: (lexaOpen) => h.count(lexaOpen), stop: async () => outcomeOf(h) };
}

/**
 * Slow-loris over HTTPS: half the connections trickle a request head that never ends, half send a complete head
 * announcing a body of BODY_ANNOUNCED bytes and trickle the body.
 */
const BODY_ANNOUNCED = 512;
export function slowLoris(ctx: AttackContext, path: string): AttackRun {
  const trickler = new Trickler();
  let n = 0;
  const h = hold({
    ...ctx,
    count: ctx.size,
    behaviour: (a, p) => {
      const s = tlsFrom(a, p, 'http/1.1');
      const body = n++ % 2 === 1;
      s.once('secureConnect', () => {
        if (body) {
          s.write(`POST ${path} HTTP/1.1\r\nHost: lexa\r\nContent-Type: application/dns-message\r\nContent-Length: ${BODY_ANNOUNCED}\r\n\r\n`);
          trickler.add(s, '\0');
        } else trickler.add(s, `GET ${path} HTTP/1.1\r\nHost: lexa\r\nX-Slow: ${'a'.repeat(64)}`);
      });
      s.resume();
      return s;
    },
  });
  return { held: (lexaOpen) => h.count(lexaOpen), stop: async () => (trickler.stop(), outcomeOf(h)) };
}

/**
 * Oversized DoH bodies over HTTP/2: each held session POSTs bodies of OVERSIZED bytes, STREAMS_PER_SESSION at a
 * time, again as each is answered; half announce their length (refused on the header), half stream it unannounced
 * (refused once past 65,535 bytes). Every request counts toward maxAttempts.
 */
const OVERSIZED = 1024 * 1024;
const STREAMS_PER_SESSION = 8;
export function oversizedDoh(ctx: AttackContext): AttackRun {
  const answers: Record<string, number> = {};
  const body = Buffer.alloc(OVERSIZED, 0x41);
  let requests = 0;
  let stopped = false;
  const sessions = new Set<http2.ClientHttp2Session>();
  const post = (session: http2.ClientHttp2Session, announced: boolean) => {
    if (stopped || session.destroyed || session.closed || requests >= ctx.maxAttempts) return;
    requests++;
    const headers = { ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message', ...(announced ? { 'content-length': String(OVERSIZED) } : {}) };
    let req: http2.ClientHttp2Stream;
    try {
      req = session.request(headers);
    } catch {
      return;
    }
    req.on('response', (h) => (answers[String(h[':status'])] = (answers[String(h[':status'])] ?? 0) + 1));
    req.on('error', () => undefined);
    req.on('close', () => post(session, !announced));
    req.resume();
    req.end(body);
  };
  const h = hold({
    ...ctx,
    count: ctx.size,
    behaviour: (a, p) => {
      const socket = tlsFrom(a, p, 'h2');
      const session = http2.connect(`https://127.0.0.1:${p}`, { createConnection: () => socket });
      session.on('error', () => undefined);
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
      session.once('connect', () => {
        for (let i = 0; i < STREAMS_PER_SESSION; i++) post(session, i % 2 === 0);
      });
      return socket;
    },
  });
  return {
    held: (lexaOpen) => h.count(lexaOpen),
    stop: async () => {
      stopped = true;
      h.stop();
      for (const s of sessions) s.destroy();
      return { attempts: requests, answers };
    },
  };
}

/**
 * Blocking queries and SSE readers over HTTP/1.1, one per connection (as HTTP/1.1 allows): a third each of lexa's
 * own blocking `/containers/?index=`, Consul's `/v1/health/service/...?index=` and `/events` streams, each reading
 * what it is sent.
 */
export function blockingReaders(ctx: AttackContext): AttackRun {
  const paths = [`/containers/?index=${ctx.index?.lexa ?? 1}&wait=5m`, `/v1/catalog/services?index=${ctx.index?.consul ?? 1}&wait=5m`, '/events'];
  let n = 0;
  const h = hold({
    ...ctx,
    count: ctx.size,
    behaviour: (a, p) => {
      const s = tlsFrom(a, p, 'http/1.1');
      const path = paths[n++ % paths.length]!;
      s.once('secureConnect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: lexa\r\nAccept: text/event-stream\r\n\r\n`));
      s.resume();
      return s;
    },
  });
  return { held: (lexaOpen) => h.count(lexaOpen), stop: async () => outcomeOf(h) };
}

/**
 * A flood of agent messages from connections that cannot prove an instance: each, once its handshake is done,
 * writes AGENT_BURST frames at once (a hello with a credential no instance has, then pings; or pings before any
 * hello; or a frame announcing more than the protocol allows) and is reopened at once when lexa closes it.
 */
const AGENT_BURST = 200;
export const AGENT_RECONNECT_MS = 50;
export function agentFlood(ctx: AttackContext): AttackRun {
  const hello = encodeFrame({ type: 'hello', version: 2, credential: 'a-credential-no-instance-has' });
  const ping = encodeFrame({ type: 'ping' });
  const kinds = [
    Buffer.concat([hello, ...Array<Buffer>(AGENT_BURST).fill(ping)]),
    Buffer.concat(Array<Buffer>(AGENT_BURST).fill(ping)),
    Buffer.from([0x7f, 0xff, 0xff, 0xff, ...Array<number>(1024).fill(0x20)]),
  ];
  let n = 0;
  const h = hold({
    ...ctx,
    count: ctx.size,
    reconnectMs: AGENT_RECONNECT_MS,
    behaviour: (a, p) => {
      const s = tlsFrom(a, p);
      const burst = kinds[n++ % kinds.length]!;
      s.once('secureConnect', () => s.write(burst));
      s.resume();
      return s;
    },
  });
  return { held: (lexaOpen) => h.count(lexaOpen), stop: async () => outcomeOf(h) };
}
