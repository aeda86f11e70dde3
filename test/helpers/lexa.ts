import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { startDaemon, type Daemon } from '../../src/daemon.js';
import { memoryLogger } from '../../src/log/index.js';
import type { HostDoc } from '../../src/servers/rest/hosts.js';

export type { HostDoc };

/** A lexa daemon started in this process from a real HCL file, with its REST and DNS ports bound on 127.0.0.1:0. */
export interface TestLexa {
  readonly daemon: Daemon;
  readonly restUrl: string;
  readonly dnsPort: number;
  readonly log: ReturnType<typeof memoryLogger>;
  close(): Promise<void>;
}

/**
 * A configuration file's text: `lxdBlock` as the body of `server.lxd { ... }`, `extra` appended inside
 * `server { ... }`; REST and DNS bind to 127.0.0.1 port 0 unless `extra` configures them.
 */
export function lexaHcl(lxdBlock: string, extra = ''): string {
  const rest = extra.includes('tls {') ? '' : '  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n';
  const dns = extra.includes('dns {') ? '' : '  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n';
  return `server {\n  lxd {\n${lxdBlock}\n  }\n${rest}${dns}${extra}\n}\n`;
}

/** Starts lexa in this process from the file lexaHcl(lxdBlock, extra) writes. */
export async function startLexa(lxdBlock: string, extra = ''): Promise<TestLexa> {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-it-'));
  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, lexaHcl(lxdBlock, extra));
  const config = await loadConfig({ path: file });
  const log = memoryLogger();
  const daemon = await startDaemon(config, log);
  return {
    daemon,
    restUrl: `https://127.0.0.1:${daemon.ports.rest[0] ?? 0}`,
    dnsPort: daemon.ports.dns[0] ?? 0,
    log,
    close: () => daemon.close(),
  };
}

export interface CurlResult {
  readonly status: number;
  readonly body: string;
  json<T = unknown>(): T;
}

/** GET `url` with the real curl (certificate not verified: lexa's REST certificate is self-signed here). */
export function curl(url: string, ...args: string[]): Promise<CurlResult> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sk', '--max-time', '5', '-w', '\n%{http_code}', ...args, url], (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl ${url}: ${stderr || err.message}`));
      const cut = stdout.lastIndexOf('\n');
      const body = stdout.slice(0, cut);
      resolve({ status: Number(stdout.slice(cut + 1)), body, json: <T>() => JSON.parse(body) as T });
    });
  });
}

/** `/containers/` hosts by name, via curl. */
export async function hosts(restUrl: string): Promise<Map<string, HostDoc>> {
  const res = await curl(`${restUrl}/containers/`);
  if (res.status !== 200) throw new Error(`/containers/ answered ${res.status}: ${res.body}`);
  return new Map(res.json<{ hosts: HostDoc[] }>().hosts.map((h) => [h.name, h]));
}

/**
 * A TCP proxy in front of LXD's HTTPS port: the test can cut every connection (as a network failure would, no
 * close frame) and refuse new ones for a while.
 */
export class CuttableProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #blocked = false;
  port = 0;

  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  #frozen = false;
  readonly #waiting: net.Socket[] = [];

  constructor(private readonly target: { host: string; port: number }) {
    this.#server = net.createServer((client) => {
      if (this.#blocked) return client.destroy();
      client.on('error', () => undefined);
      if (this.#frozen) {
        client.pause();
        this.#waiting.push(client);
        this.#sockets.add(client);
        return;
      }
      this.#forward(client);
    });
  }

  #forward(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.#pairs.add(pair);
    for (const s of pair) {
      this.#sockets.add(s);
      s.on('close', () => {
        this.#sockets.delete(s);
        this.#pairs.delete(pair);
      });
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Stops every byte in both directions while keeping connections open: what a hung (SIGSTOPped) LXD looks like. */
  freeze(): void {
    this.#frozen = true;
    for (const [a, b] of this.#pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  }

  thaw(): void {
    this.#frozen = false;
    for (const [a, b] of this.#pairs) {
      a.pipe(b);
      b.pipe(a);
    }
    for (const c of this.#waiting.splice(0)) if (!c.destroyed) this.#forward(c);
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Destroys every open connection and refuses new ones until `restore()`. */
  cut(): void {
    this.#blocked = true;
    for (const s of this.#sockets) s.destroy();
  }

  restore(): void {
    this.#blocked = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/** Milliseconds since `start`, for reporting how fast a change showed up. */
export const since = (start: number): number => Date.now() - start;
