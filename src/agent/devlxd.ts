import http from 'node:http';
import { clip } from './protocol.js';
import { AGENT_TOKEN_KEY } from '../streams/model/agents.js';

/** Where LXD's guest API answers inside every instance (unless `security.devlxd=false`). */
export const DEVLXD_SOCKET = '/dev/lxd/sock';
/** devlxd answers locally in milliseconds; a hung socket must not hold the agent's connect loop. */
export const DEVLXD_TIMEOUT_MS = 5_000;
/** A token is at most 1024 characters (protocol.ts); anything longer is not one. */
const MAX_REPLY_BYTES = 4096;

/**
 * The instance's own `user.lexa.agent.token`, read from devlxd (`GET /1.0/config/<key>`): the host writes it into
 * the instance's config and only this instance can read it here. Rejects with a sentence an operator can act on
 * when the socket is missing (devlxd disabled), the key is not set yet, or the reply is unusable. devlxd answers the
 * value as the raw body (LXD 5.0) or as a JSON string (later versions); both are accepted.
 */
export function readInstanceToken(socketPath: string = DEVLXD_SOCKET): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: `/1.0/config/${AGENT_TOKEN_KEY}`, timeout: DEVLXD_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_REPLY_BYTES) return req.destroy(new Error(`devlxd reply over ${MAX_REPLY_BYTES} bytes`));
        chunks.push(c);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 404) return reject(new Error(`${AGENT_TOKEN_KEY} is not set on this instance yet (lexa issues it, or the operator sets it)`));
        if (res.statusCode !== 200) return reject(new Error(`devlxd answered HTTP ${res.statusCode}: ${clip(body)}`));
        let value: unknown = body;
        if (body.startsWith('"') || /json/.test(String(res.headers['content-type']))) {
          try {
            value = JSON.parse(body);
          } catch {
            value = body;
          }
        }
        const token = typeof value === 'string' ? value.trim() : '';
        if (token === '') return reject(new Error(`${AGENT_TOKEN_KEY} is empty`));
        resolve(token);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`devlxd did not answer within ${DEVLXD_TIMEOUT_MS} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error(`${socketPath} is missing: the instance has security.devlxd=false, so its credential cannot be read`)
          : err,
      ),
    );
  });
}
