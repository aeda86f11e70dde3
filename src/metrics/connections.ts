/**
 * Connections the listeners refused on accept (servers/fairness.ts), by listener name (e.g. `dns/tcp`) and reason
 * (`source-limit`, `reserved-for-others`, `listener-full`). Process-wide, like the runtime's own metrics: a
 * listener reopened by a reload keeps counting where the old one stopped. Read at scrape time (registry.ts).
 */
const refused = new Map<string, { readonly listener: string; readonly reason: string; count: number }>();

/** Counts one refused connection. */
export function countRefusedConnection(listener: string, reason: string): void {
  const key = `${listener} ${reason}`;
  const seen = refused.get(key);
  if (seen) seen.count++;
  else refused.set(key, { listener, reason, count: 1 });
}

/** Every (listener, reason) counted so far, with its count. */
export function refusedConnections(): Iterable<{ readonly listener: string; readonly reason: string; readonly count: number }> {
  return refused.values();
}
