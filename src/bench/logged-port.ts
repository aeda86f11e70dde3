/**
 * The port lexa logged for a listener (`{..."port":N,...,"msg":"<msg>"}`, e.g. msg "dns/udp: listening"), from its
 * JSON log as read so far, or undefined: lets a benchmark run lexa on port 0. Parses whole lines, so it does not
 * depend on the order of a line's fields; a partial last line is skipped until it is complete.
 */
export function portFrom(log: string, msg: string): number | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes(`"${msg}"`)) continue;
    try {
      const port = (JSON.parse(line) as { port?: number }).port;
      if (port) return port;
    } catch {
      // partial line
    }
  }
  return undefined;
}
