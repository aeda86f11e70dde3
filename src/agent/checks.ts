import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { ServiceHealth } from '../streams/model/model.js';
import type { CheckConfig } from './config.js';

/** One probe: resolves true when the target answered as it should within `timeoutMs`. Never rejects. */
export type Probe = (target: string, timeoutMs: number) => Promise<boolean>;

/** Passes when a TCP connection to `host:port` opens. */
export const tcpProbe: Probe = (target, timeoutMs) =>
  new Promise((resolve) => {
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(target);
    if (!m) return resolve(false);
    const socket = net.connect({ host: m[1]!, port: Number(m[2]) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

/** Passes on a 2xx answer to GET `url` (Consul's rule); the body is not read beyond what arrives. */
export const httpProbe: Probe = (url, timeoutMs) =>
  new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(ok);
    };
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { timeout: timeoutMs, headers: { 'user-agent': 'lexa-agent' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 300);
    });
    req.on('timeout', () => done(false));
    req.on('error', () => done(false));
  });

/**
 * One health check, run every `intervalMs` (the next probe starts when the last one ended). Its status starts
 * `critical` (Consul's rule: nothing is passing until shown to pass), turns `passing` after
 * `successBeforePassing` consecutive successes and `critical` again after `failuresBeforeCritical` consecutive
 * failures. `onChange` is called on every transition.
 */
export class Check {
  #status: ServiceHealth = 'critical';
  #successes = 0;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    readonly config: CheckConfig,
    private readonly onChange: (status: ServiceHealth) => void,
    private readonly probe: Probe = config.kind === 'tcp' ? tcpProbe : httpProbe,
  ) {}

  get status(): ServiceHealth {
    return this.#status;
  }

  start(): void {
    this.#stopped = false;
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Records one probe result and applies the thresholds; exported through the class for tests. */
  record(ok: boolean): void {
    if (ok) {
      this.#failures = 0;
      this.#successes++;
      if (this.#status === 'critical' && this.#successes >= this.config.successBeforePassing) this.#set('passing');
    } else {
      this.#successes = 0;
      this.#failures++;
      if (this.#status === 'passing' && this.#failures >= this.config.failuresBeforeCritical) this.#set('critical');
    }
  }

  #set(status: ServiceHealth): void {
    this.#status = status;
    this.onChange(status);
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const ok = await this.probe(this.config.target, this.config.timeoutMs);
    if (this.#stopped) return;
    this.record(ok);
    this.#timer = setTimeout(() => void this.#run(), this.config.intervalMs);
  }
}
