/**
 * Datagrams the DoQ sockets dropped before the QUIC library saw them (servers/doq/quic.ts), by reason: what
 * servers/doq/datagram.ts found wrong with them, the per-source handshake budget, or no room to wait
 * (servers/doq/backlog.ts). Process-wide, as refused connections are (connections.ts): a listener reopened by a reload
 * keeps counting where the old one stopped. Counted per datagram under a flood, so a plain object of numbers, not a
 * Map of records; read at scrape time (registry.ts).
 */
const dropped: Record<string, number> = Object.create(null) as Record<string, number>;

/** Counts one dropped datagram. */
export function countDroppedDatagram(reason: string): void {
  dropped[reason] = (dropped[reason] ?? 0) + 1;
}

/** Every reason counted so far, with its count. */
export function droppedDatagrams(): Iterable<{ readonly reason: string; readonly count: number }> {
  return Object.entries(dropped).map(([reason, count]) => ({ reason, count }));
}
