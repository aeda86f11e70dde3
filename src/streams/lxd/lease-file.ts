import { isIPv4 } from 'node:net';
import type { LxdLease } from './lxd-model.js';

/**
 * The IPv4 leases of one dnsmasq lease file (`<LXD_DIR>/networks/<bridge>/dnsmasq.leases`), the file LXD's own
 * `GET /1.0/networks/<bridge>/leases` reads. dnsmasq writes one lease a line, `<expiry> <mac> <ip> <hostname>
 * <client-id>` (expiry in epoch seconds, 0 for never; `*` for an unknown hostname or client id); IPv6 leases
 * follow a `duid <server-duid>` line, and there the second field is the IAID, not a MAC. Only the IPv4 section
 * is read: a v6 lease names no MAC to match an instance by, and the A answer is what a new name is first asked for.
 *
 * The file is input from a process a container talks to (a container chooses its DHCP hostname and client id, and
 * may send any MAC), so parsing is total and bounded: odd lines are skipped, never an exception; at most
 * MAX_LEASE_LINES lines are looked at. The hostname is never returned: only the MAC binds a lease to an instance
 * (as LXD's lease API and trust.ts do), so a container cannot claim another's name by the name it asks for.
 */

/**
 * Lines looked at per file: the shortest well-formed lease line is 32 bytes, so the 256 KiB lease-watch.ts reads
 * holds at most ~8,200; a file of empty or junk lines stops here instead of costing 256 Ki iterations.
 */
export const MAX_LEASE_LINES = 10_000;

/** A dnsmasq MAC for Ethernet: six hex octets (other hardware types are written `<type>-<octets>`: not a NIC's). */
const MAC = /^[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}$/;
const EXPIRY = /^\d{1,12}$/;

/**
 * The IPv4 leases in `text` that have not expired at `nowSeconds` (epoch seconds), in file order, MACs
 * lower-cased, as `LxdLease`s (type `dynamic`) so they take the same path as the leases LXD's API lists.
 */
export function parseLeaseFile(text: string, nowSeconds: number): LxdLease[] {
  const out: LxdLease[] = [];
  let start = 0;
  for (let n = 0; n < MAX_LEASE_LINES && start < text.length; n++) {
    const end = text.indexOf('\n', start);
    const line = text.slice(start, end < 0 ? text.length : end);
    start = end < 0 ? text.length : end + 1;
    const fields = line.trim().split(/\s+/, 4);
    if (fields[0] === 'duid') break;
    const [expiry, mac, ip] = fields;
    if (expiry === undefined || mac === undefined || ip === undefined) continue;
    if (!EXPIRY.test(expiry) || !MAC.test(mac) || !isIPv4(ip)) continue;
    const at = Number(expiry);
    if (at !== 0 && at < nowSeconds) continue;
    out.push({ hwaddr: mac.toLowerCase(), address: ip, type: 'dynamic' });
  }
  return out;
}
