import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A stand-in for LXD's /dev/lxd/sock for hermetic agent tests (no container): answers
 * `GET /1.0/config/user.lexa.agent.token` with the raw value, as LXD 5.0's devlxd does, or 404 while `token()`
 * gives undefined. The real devlxd is exercised by test/integration/agent.test.ts.
 */
export async function fakeDevlxd(token: () => string | undefined): Promise<{ readonly path: string; close(): Promise<void> }> {
  const path = join(mkdtempSync(join(tmpdir(), 'lexa-devlxd-')), 'sock');
  const server = http.createServer((req, res) => {
    const value = token();
    if (req.url !== '/1.0/config/user.lexa.agent.token' || value === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(value);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
