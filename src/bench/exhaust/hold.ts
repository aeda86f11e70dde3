import net from 'node:net';
import tls from 'node:tls';

/**
 * Holding connections open from a set of attacker addresses, as an exhaustion attacker does: `count` slots, slot i
 * from addresses[i mod n]; a connection lexa closes (refused, or past a deadline) is opened again RECONNECT_MS later,
 * so the pressure lasts, until stop() or until `maxAttempts` connections were opened in all (every loop bounded).
 */
export interface Holder {
  /**
   * Opens nothing new for SETTLE_MS, then reads `measure` (how many connections lexa holds, counted on its side)
   * and goes on (the slots closed meanwhile reopen at once).
   */
  count(measure: () => number): Promise<number>;
  /** Connections opened so far. */
  readonly attempts: number;
  /** Closes every connection and opens no more. */
  stop(): void;
}

/**
 * How long count() opens nothing new before lexa's connections are counted: lexa must have worked through the
 * accept queue (a connection refused on accept is open for a moment first). The count is lexa's own (its open
 * descriptors), not the attacker's: a connection waiting in the kernel's accept queue is connected as far as the
 * attacker can tell, but lexa holds nothing for it yet.
 */
export const SETTLE_MS = 1_500;

/** Long enough that refused connections, reopened, cost lexa little; short enough to refill a freed slot at once. */
export const RECONNECT_MS = 1_000;

/**
 * What one attacking connection does once open; returns the socket (plain or TLS) whose close ends it. `address`
 * is the attacker's own address, `port` lexa's.
 */
export type Behaviour = (address: string, port: number) => net.Socket;

export function hold(opts: {
  readonly port: number;
  readonly addresses: readonly string[];
  readonly count: number;
  readonly maxAttempts: number;
  readonly behaviour: Behaviour;
  readonly reconnectMs?: number;
}): Holder {
  const open = new Set<net.Socket>();
  let stopped = false;
  let attempts = 0;
  let paused = false;
  /** Slots whose connection closed while paused. */
  const waiting: number[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const start = (slot: number) => {
    if (paused) return void waiting.push(slot);
    if (stopped || attempts >= opts.maxAttempts) return;
    attempts++;
    const socket = opts.behaviour(opts.addresses[slot % opts.addresses.length]!, opts.port);
    socket.on('error', () => undefined);
    socket.once(socket instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => open.add(socket));
    socket.once('close', () => {
      if (stopped) return;
      open.delete(socket);
      const timer = setTimeout(() => {
        timers.delete(timer);
        start(slot);
      }, opts.reconnectMs ?? RECONNECT_MS);
      timers.add(timer);
    });
  };
  for (let slot = 0; slot < opts.count; slot++) start(slot);
  return {
    async count(measure) {
      paused = true;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const held = measure();
      paused = false;
      for (const slot of waiting.splice(0)) start(slot);
      return held;
    },
    get attempts() {
      return attempts;
    },
    stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const s of open) s.destroy();
    },
  };
}

/** A plain TCP connection from `address`. */
export const tcpFrom = (address: string, port: number): net.Socket => net.connect({ host: '127.0.0.1', port, localAddress: address });

/**
 * One client context for every attacking TLS connection: without it each tls.connect builds its own (~1 ms of CPU),
 * and thousands of reconnections a second would cost the attacking process more than lexa.
 */
let clientContext: tls.SecureContext | undefined;

/** A TLS connection from `address` (node:tls takes no localAddress: over a TCP socket bound there). */
export const tlsFrom = (address: string, port: number, alpn?: string): tls.TLSSocket =>
  tls.connect({
    socket: tcpFrom(address, port),
    secureContext: (clientContext ??= tls.createSecureContext()),
    rejectUnauthorized: false,
    ...(alpn === undefined ? {} : { ALPNProtocols: [alpn] }),
  });

/**
 * Writes one byte of `text` (then of its last character, for ever) to each socket every TRICKLE_MS: a slow-loris
 * that never completes what it started. One timer for every socket it is given.
 */
export const TRICKLE_MS = 500;

export class Trickler {
  readonly #sockets = new Map<net.Socket, { text: string; at: number }>();
  readonly #timer = setInterval(() => {
    for (const [socket, state] of this.#sockets) {
      if (socket.destroyed) {
        this.#sockets.delete(socket);
        continue;
      }
      socket.write(state.text[Math.min(state.at, state.text.length - 1)]!);
      state.at++;
    }
  }, TRICKLE_MS);

  add(socket: net.Socket, text: string): void {
    this.#sockets.set(socket, { text, at: 0 });
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#sockets.clear();
  }
}
