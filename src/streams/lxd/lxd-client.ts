import { readFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import type { LxdEndpoint } from '../../config/types.js';
import { FailoverClient } from './failover-client.js';
import { deadline } from '../../time/deadline.js';

/**
 * A minimal LXD REST client: GETs that return the `metadata` of a sync response, and the events websocket.
 * It works over the local unix socket or over HTTPS with a client certificate (optionally pinning LXD's own
 * certificate). It holds no state about LXD; the reflector does.
 */

/**
 * How long one request may take. A `recursion=2` list of 200 instances takes ~1–1.7 s on a small host; a hung
 * daemon would otherwise hold the request forever. It must exceed LXD's own wait for a cluster member that does
 * not answer: a list through a healthy member while another is frozen (SIGSTOP) and still Online answers after
 * 30.0 s, without the frozen member's state (measured on LXD 5.0.2, test/cluster/frozen.test.ts). A limit of 30 s
 * gave up ~40 ms before that answer, and lexa failed over away from the healthy member for nothing.
 */
export const REQUEST_TIMEOUT_MS = 45_000;

/** An error LXD reported (its `error_code`), or a transport failure (status 0). */
export class LxdError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'LxdError';
  }
}

/** The part of a `ws` WebSocket the events connection uses. Narrow so tests can hand in a fake. */
export interface EventSocket {
  readonly readyState: number;
  readonly OPEN: number;
  once(event: 'open', listener: () => void): unknown;
  on(event: 'message', listener: (data: WebSocket.RawData, isBinary: boolean) => void): unknown;
  on(event: 'ping' | 'pong', listener: (data: Buffer) => void): unknown;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'unexpected-response', listener: (req: ClientRequest, res: IncomingMessage) => void): unknown;
  ping(): void;
  terminate(): void;
}

export interface LxdClient {
  /** Human-readable endpoint, for logs. */
  readonly target: string;
  /** GET `path` (starting with /1.0) and return the response's metadata. */
  get<T>(path: string, signal?: AbortSignal): Promise<T>;
  /**
   * PATCH `path` with the JSON `body` (LXD merges a PATCHed instance `config` key by key). Only the agent-token
   * issuer writes (agent-tokens.ts); absent on clients that cannot (a test's fake).
   */
  patch?(path: string, body: unknown, signal?: AbortSignal): Promise<void>;
  /** Open the events websocket for `query` (e.g. `type=lifecycle&all-projects=true`). */
  events(query: string): EventSocket;
  close(): Promise<void>;
  /**
   * A client that can reach several members of an LXD cluster (FailoverClient) has these; one that reaches a
   * single endpoint (the unix socket, a test's fake) does not.
   * `learnMembers`: the API URLs of the cluster's members, as LXD lists them, become candidates to fail over to.
   * `failover`: the current target failed; the next call goes to the next candidate. Returns the new target.
   */
  learnMembers?(urls: readonly string[]): void;
  failover?(): string;
}

export function createLxdClient(endpoint: LxdEndpoint): LxdClient {
  if (endpoint.kind === 'unix') {
    const agent = new Agent({ connect: { socketPath: endpoint.socket } });
    return makeClient(`unix:${endpoint.socket}`, 'http://lxd', agent, (path) => {
      return new WebSocket(`ws+unix://${endpoint.socket}:${path}`);
    });
  }
  const tls = {
    cert: readFileSync(endpoint.certificate),
    key: readFileSync(endpoint.key),
    ...(endpoint.serverCertificate !== null
      ? // Pinning: LXD's self-signed certificate is its own CA, so the chain check is the pin. Its names rarely
        // match the address we dial, so the host-name check is skipped (a pinned certificate is the identity).
        // The members of a cluster all present the one cluster certificate, so one pin covers every member.
        { ca: readFileSync(endpoint.serverCertificate), rejectUnauthorized: true, checkServerIdentity: () => undefined }
      : { rejectUnauthorized: false }),
  };
  const origins = endpoint.binds.map((b) => `https://${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`);
  return new FailoverClient(origins, (origin) => httpsClient(origin, tls));
}

/** A client for one LXD HTTPS origin (`https://host:port`), with the client certificate and pin in `tls`. */
function httpsClient(origin: string, tls: object): LxdClient {
  const agent = new Agent({ connect: tls });
  // ws hands these to tls.connect, where checkServerIdentity returning undefined means "accept"; @types/ws
  // declares a boolean return instead (a truthy return would mean an error), hence the cast.
  const wsOptions = tls as unknown as WebSocket.ClientOptions;
  const ws = origin.replace(/^https:/, 'wss:');
  return makeClient(origin, origin, agent, (path) => new WebSocket(`${ws}${path}`, wsOptions));
}

interface LxdResponse {
  type?: string;
  metadata?: unknown;
  error?: string;
  error_code?: number;
}

function makeClient(
  target: string,
  origin: string,
  agent: Agent,
  openSocket: (path: string) => WebSocket,
): LxdClient {
  return {
    target,
    async get<T>(path: string, signal?: AbortSignal): Promise<T> {
      const limit = deadline(signal, REQUEST_TIMEOUT_MS);
      try {
        let res;
        try {
          res = await request(`${origin}${path}`, { dispatcher: agent, signal: limit.signal });
        } catch (err) {
          throw new LxdError(`GET ${path}: ${(err as Error).message}`, 0);
        }
        let body: LxdResponse;
        try {
          body = (await res.body.json()) as LxdResponse;
        } catch (err) {
          throw new LxdError(`GET ${path}: unreadable reply (HTTP ${res.statusCode}): ${(err as Error).message}`, res.statusCode);
        }
        if (res.statusCode >= 400 || body.type === 'error')
          throw new LxdError(`GET ${path}: ${body.error ?? `HTTP ${res.statusCode}`}`, body.error_code ?? res.statusCode);
        return body.metadata as T;
      } finally {
        limit.done();
      }
    },
    async patch(path: string, body: unknown, signal?: AbortSignal): Promise<void> {
      const limit = deadline(signal, REQUEST_TIMEOUT_MS);
      try {
        let res;
        try {
          res = await request(`${origin}${path}`, {
            method: 'PATCH',
            dispatcher: agent,
            signal: limit.signal,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
        } catch (err) {
          throw new LxdError(`PATCH ${path}: ${(err as Error).message}`, 0);
        }
        const reply = (await res.body.json().catch(() => ({}))) as LxdResponse;
        if (res.statusCode >= 400 || reply.type === 'error')
          throw new LxdError(`PATCH ${path}: ${reply.error ?? `HTTP ${res.statusCode}`}`, reply.error_code ?? res.statusCode);
      } finally {
        limit.done();
      }
    },
    events(query: string): WebSocket {
      return openSocket(`/1.0/events?${query}`);
    },
    async close(): Promise<void> {
      await agent.close();
    },
  };
}
