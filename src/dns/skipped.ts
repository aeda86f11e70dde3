import type { Answer } from 'dns-packet';
import type { Logger } from '../log/index.js';

/**
 * Logging for records left out because they cannot be encoded (records.ts): once per owner name and reason, not
 * once per query, since the same record would be met by every query that reaches it, thousands a second. The
 * memory is bounded: after MAX_REMEMBERED distinct names, one last line says logging of them stops.
 *
 * The snapshot offers no name that is not DNS labels (dns-label.ts), so this is the last line of defence; a line
 * here means a name slipped past that check.
 */
export function skippedRecords(log: Logger, where: string): (rec: Answer, err: unknown) => void {
  const seen = new Set<string>();
  return (rec, err) => {
    const reason = err instanceof Error ? err.message : String(err);
    const key = `${rec.name}\u0000${reason}`;
    if (seen.has(key) || seen.size > MAX_REMEMBERED) return;
    seen.add(key);
    if (seen.size > MAX_REMEMBERED) log.warn(`dns: over ${MAX_REMEMBERED} records left out of ${where}; no more are logged`);
    else log.warn(`dns: record left out of ${where}: it cannot be encoded`, { name: rec.name, type: rec.type, reason });
  };
}

/** Distinct names logged at most per process: a few hundred kilobytes of keys. */
const MAX_REMEMBERED = 1000;
