import os from 'node:os';

/**
 * Tests that bind `::1` require IPv6 on loopback, as every machine lexa is tested on has (Linux enables it
 * unless disabled by sysctl). The suite allows no skips, so a machine without it fails here with the reason
 * rather than passing quietly.
 */
export function requireIPv6Loopback(): void {
  const has = Object.values(os.networkInterfaces()).some((list) => (list ?? []).some((a) => a.family === 'IPv6' && a.address === '::1'));
  if (!has) throw new Error('this test binds ::1, and this machine has no IPv6 loopback (sysctl net.ipv6.conf.lo.disable_ipv6?)');
}

/**
 * The port a lexa process reported for a listener, from its JSON log (`{...,"port":N,...,"msg":"<name>: listening"}`):
 * lets tests run lexa with port 0 everywhere instead of fixed ports another process may hold.
 */
export function loggedPort(log: string, name: string): number | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes(`"${name}: listening"`)) continue;
    try {
      const port = (JSON.parse(line) as { port?: unknown }).port;
      if (typeof port === 'number' && port > 0) return port;
    } catch {
      // a partial line: not yet complete
    }
  }
  return undefined;
}
