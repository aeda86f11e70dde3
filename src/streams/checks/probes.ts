import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { CheckTarget } from '../model/health.js';
import type { CheckKind } from '../model/model.js';

/** What one run of a check saw. */
export interface ProbeResult {
  readonly ok: boolean;
  /** One line, free of timings, so a check that keeps seeing the same thing keeps the same output. */
  readonly output: string;
  /** The socket error's code when the run failed on one (ECONNREFUSED, EHOSTUNREACH, ...). */
  readonly code?: string;
}

/**
 * Runs one check against `target`. Never rejects; settles promptly once `signal` aborts (the checker aborts it at
 * the check's timeout, and answers the timeout itself).
 */
export type Probe = (kind: CheckKind, target: CheckTarget, signal: AbortSignal) => Promise<ProbeResult>;

/** The statuses that pass, as Consul's HTTP check says: 2xx, and 3xx (redirects are not followed). */
const PASSING_STATUS_MIN = 200;
const PASSING_STATUS_MAX = 399;
/** Sent so a service's logs can tell lexa's probes from real traffic. */
const USER_AGENT = 'lexa-check';

/** A TCP connect or an HTTP(S) GET, as `kind` says. */
export const probe: Probe = (kind, target, signal) => (kind === 'tcp' ? tcpProbe(target, signal) : httpProbe(kind, target, signal));

/** Passes when a TCP connection to the target opens; it is closed at once, nothing is sent. */
function tcpProbe(target: CheckTarget, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.address, port: target.port });
    const done = (result: ProbeResult) => {
      signal.removeEventListener('abort', aborted);
      socket.destroy();
      resolve(result);
    };
    const aborted = () => done({ ok: false, output: `TCP connect ${target.target}: aborted` });
    signal.addEventListener('abort', aborted, { once: true });
    socket.once('connect', () => done({ ok: true, output: `TCP connect ${target.target}: success` }));
    socket.once('error', (err: NodeJS.ErrnoException) => done(failure(`TCP connect ${target.target}`, err)));
  });
}

/**
 * GETs the target URL and passes on a 2xx or 3xx status. The body is never read: the response is dropped as soon
 * as its status line and headers arrived, so a service answering a huge or endless body costs one header's worth.
 * HTTPS does not verify the certificate (Consul's `tls_skip_verify`): lexa checks that the service answers, not
 * who it is, and containers' certificates are rarely issued for their bridge addresses.
 */
function httpProbe(kind: 'http' | 'https', target: CheckTarget, signal: AbortSignal): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const what = `HTTP GET ${target.target}`;
    const get = kind === 'https' ? https.get : http.get;
    const options = { signal, agent: false, headers: { 'user-agent': USER_AGENT, connection: 'close' }, ...(kind === 'https' ? { rejectUnauthorized: false } : {}) };
    let settled = false;
    const done = (result: ProbeResult) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(result);
    };
    const req = get(target.target, options, (res) => {
      const status = res.statusCode ?? 0;
      res.destroy();
      done({ ok: status >= PASSING_STATUS_MIN && status <= PASSING_STATUS_MAX, output: `${what}: ${status}` });
    });
    req.once('error', (err: NodeJS.ErrnoException) => done(failure(what, err)));
  });
}

function failure(what: string, err: NodeJS.ErrnoException): ProbeResult {
  if (err.name === 'AbortError') return { ok: false, output: `${what}: aborted` };
  const code = typeof err.code === 'string' ? err.code : undefined;
  // Only the code (or the message's first line, cut short) reaches the output: it is shown by the REST API.
  const why = code ?? err.message.split('\n')[0]!.slice(0, 120);
  return code === undefined ? { ok: false, output: `${what}: ${why}` } : { ok: false, output: `${what}: ${why}`, code };
}
