import { isIP } from 'node:net';
import tls from 'node:tls';
import { describeError, type Logger } from '../log/index.js';
import { decodeServerMessage, encodeFrame, AgentFrameReader, PROTOCOL_VERSION, type AgentMessage } from './protocol.js';
import { reconnectDelay } from '../time/backoff.js';
import type { AgentService } from '../streams/model/model.js';
import { Check } from './checks.js';
import { readInstanceToken } from './devlxd.js';
import type { AgentConfig, AgentServiceConfig } from './config.js';

/**
 * How often the agent pings the server. The server closes a connection silent for three of these
 * (AGENT_LIMITS.idleTimeoutMs), which is how it notices a container that vanished without closing.
 */
export const AGENT_PING_MS = 5_000;
/** No byte from the server for this long (three pings unanswered) means it is gone or hung: reconnect. */
export const SERVER_SILENCE_MS = 15_000;
/** The TLS handshake and the server's welcome must come within this. */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The lexa agent: runs its services' checks and keeps one TLS connection to the server, over which it sends its
 * whole service set (each service with its health) on every connect and on every check transition. It is
 * authoritative for its own container (Consul's anti-entropy): after any reconnect, including a server restart, it
 * simply announces everything again. Reconnects back off with full jitter (0.5 s doubling to 5 s).
 */
export class Agent {
  readonly #config: AgentConfig;
  readonly #log: Logger;
  readonly #random: () => number;
  readonly #checks: { readonly service: AgentServiceConfig; readonly checks: readonly Check[] }[];
  #socket: tls.TLSSocket | undefined;
  #send: ((m: AgentMessage) => void) | undefined;
  #seq = 0;
  #stopped = false;
  #running: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #pending = false;
  /** The last ack's refused names (JSON), so each change is logged once. */
  #refused = '[]';

  constructor(config: AgentConfig, log: Logger, random: () => number = Math.random) {
    this.#config = config;
    this.#log = log;
    this.#random = random;
    this.#checks = config.services.map((service) => ({
      service,
      checks: service.checks.map(
        (c) =>
          new Check(c, (status) => {
            this.#log.info('check changed', { service: service.name, check: c.target, status });
            this.#announceSoon();
          }),
      ),
    }));
  }

  /** Every declared service with its health now: passing when all its checks pass (or it has none). */
  services(): AgentService[] {
    return this.#checks.map(({ service: s, checks }) => ({
      name: s.name,
      port: s.port,
      proto: s.proto,
      tags: [...s.tags],
      interface: s.interface,
      priority: s.priority,
      weight: s.weight,
      source: 'agent',
      health: checks.every((c) => c.status === 'passing') ? 'passing' : 'critical',
    }));
  }

  start(): void {
    if (this.#running) return;
    for (const { checks } of this.#checks) for (const c of checks) c.start();
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { checks } of this.#checks) for (const c of checks) c.stop();
    this.#socket?.destroy();
    this.#wake?.();
    await this.#running;
  }

  /** Several checks may change in one tick: one state message carries them all. */
  #announceSoon(): void {
    if (this.#pending) return;
    this.#pending = true;
    setImmediate(() => {
      this.#pending = false;
      this.#announce();
    });
  }

  #announce(): void {
    this.#send?.({ type: 'state', seq: ++this.#seq, services: this.services() });
  }

  async #loop(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      const welcomed = await this.#connectOnce().catch((err: unknown) => {
        this.#log.warn('agent connection failed', { server: this.#target(), error: describeError(err) });
        return false;
      });
      if (this.#stopped) break;
      failures = welcomed ? 0 : failures + 1;
      const delay = reconnectDelay(failures, this.#random);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  #target(): string {
    const { host, port } = this.#config.server;
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  }

  /**
   * One connection's life; resolves when it ends, with whether the server accepted it. The credential is read
   * from devlxd before every attempt: lexa may issue it after the agent started, and the operator may rotate it.
   */
  async #connectOnce(): Promise<boolean> {
    const credential = await readInstanceToken(this.#config.devlxd);
    return this.#session(credential);
  }

  #session(credential: string): Promise<boolean> {
    const { host, port } = this.#config.server;
    const trust = this.#config.trust;
    return new Promise((resolve) => {
      let welcomed = false;
      const socket = tls.connect({
        host,
        port,
        ...(trust.kind === 'ca' ? { ca: trust.pem } : { rejectUnauthorized: false }),
        // SNI only for a name (RFC 6066 forbids an address); the certificate is checked against `host` either way.
        ...(isIP(host) ? {} : { servername: host }),
      });
      this.#socket = socket;
      const reader = new AgentFrameReader();
      let silence: NodeJS.Timeout | undefined;
      let ping: NodeJS.Timeout | undefined;
      const connectTimer = setTimeout(() => fail('no welcome from the server in time'), CONNECT_TIMEOUT_MS);
      const heard = () => {
        clearTimeout(silence);
        silence = setTimeout(() => fail('the server went silent'), SERVER_SILENCE_MS);
      };
      const fail = (reason: string) => {
        this.#log.warn('agent connection closed', { server: this.#target(), reason });
        socket.destroy();
      };
      const send = (m: AgentMessage) => {
        if (!socket.destroyed) socket.write(encodeFrame(m));
      };
      socket.once('secureConnect', () => {
        if (trust.kind === 'fingerprint') {
          const got = socket.getPeerCertificate().fingerprint256 ?? '';
          if (got.toUpperCase() !== trust.sha256) return fail(`server certificate fingerprint sha256:${got} is not the configured one`);
        }
        heard();
        const token = this.#config.token;
        send(token === null ? { type: 'hello', version: PROTOCOL_VERSION, credential } : { type: 'hello', version: PROTOCOL_VERSION, credential, token });
        this.#seq++;
        send({ type: 'state', seq: this.#seq, services: this.services() });
        this.#send = send;
        ping = setInterval(() => send({ type: 'ping' }), AGENT_PING_MS);
      });
      socket.on('data', (chunk: Buffer) => {
        heard();
        const { bodies, error } = reader.push(chunk);
        for (const body of bodies) {
          const d = decodeServerMessage(body);
          if (!d.ok) return fail(`bad message from the server: ${d.reason}`);
          const m = d.message;
          if (m.type === 'welcome') {
            welcomed = true;
            clearTimeout(connectTimer);
            this.#log.info('agent connected', { server: this.#target(), instance: m.instance, services: this.#checks.length });
          } else if (m.type === 'ack') {
            // Logged when the refused set changes (every state is acked): the operator's allow list decides.
            const refused = JSON.stringify(m.refused ?? []);
            if (refused !== this.#refused && refused !== '[]') this.#log.warn('services refused by the server', { refused: m.refused });
            this.#refused = refused;
          } else if (m.type === 'error') {
            welcomed = false; // a refusal counts as a failed attempt for the backoff
            return fail(`refused by the server: ${m.reason}`);
          }
        }
        if (error) fail(error);
      });
      socket.on('error', (err) => this.#log.debug('agent socket error', { error: err.message }));
      socket.once('close', () => {
        clearTimeout(silence);
        clearTimeout(connectTimer);
        clearInterval(ping);
        if (this.#send === send) this.#send = undefined;
        resolve(welcomed);
      });
    });
  }
}
