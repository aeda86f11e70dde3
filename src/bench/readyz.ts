import https from 'node:https';

/** The status of lexa's `GET /readyz` on 127.0.0.1:port (its own certificate, not verified), or 0 when unreachable. */
export function readyz(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/readyz', rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
  });
}
