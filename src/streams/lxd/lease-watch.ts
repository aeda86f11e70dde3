import { closeSync, constants, fstatSync, openSync, readSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { describeError, type Logger } from '../../log/index.js';
import type { Clock } from '../../time/clock.js';
import { parseLeaseFile } from './lease-file.js';
import type { LxdLease } from './lxd-model.js';

/**
 * Watches the dnsmasq lease files of LXD's bridges on the host lexa runs on, so a new instance's DHCP lease is
 * known the moment dnsmasq writes it (and answers for it itself), not at the next poll of LXD's lease API. Only
 * where lexa reads LXD's local socket: the files live under the socket's directory (LXD_DIR, the snap's
 * `/var/snap/lxd/common/lxd`, or Incus's `/var/lib/incus`), `networks/<bridge>/dnsmasq.leases`. The directory is
 * watched, not the file: dnsmasq may replace the file by rename, which ends a watch on the file itself.
 *
 * A network whose directory cannot be watched or whose file cannot be read has no leases here (`leases` answers
 * undefined) and its instances keep the polled path; that is logged at debug level only, since every remote or
 * non-bridge network is such a case. Work is bounded: at most MAX_WATCHED_NETWORKS directories, at most
 * MAX_LEASE_FILE_BYTES read per file, and reads of one file at least MIN_READ_GAP_MS (and READ_COST_FACTOR times
 * the last read's duration) apart.
 */

/**
 * The bytes of a lease file read. A lease line is ~70 bytes: LXD's default /24 bridge holds at most 253 leases
 * (~18 KB, read and parsed in well under a millisecond), and 256 KiB ~3,700, more than a /22. Reading and parsing
 * is synchronous (see readBounded): 1 MiB took 8–21 ms on the busy 2-core test host, a stall no query should wait
 * behind, so the cap is a quarter of that.
 */
export const MAX_LEASE_FILE_BYTES = 256 * 1024;
/** Bridges watched at once: a host has a handful; each costs one inotify watch. */
export const MAX_WATCHED_NETWORKS = 64;
/**
 * The least time between two reads of one file. The first change is read at once (the launch path waits for
 * nothing); a container flooding dnsmasq with DHCP requests makes lexa read the file at most 100 times a second.
 */
export const MIN_READ_GAP_MS = 10;
/**
 * And at least this many times the last read's own duration: however large the file and slow the host, reading
 * it takes at most about a tenth of the event loop, which answers queries.
 */
export const READ_COST_FACTOR = 10;
/** After a directory could not be watched, it is tried again on a later ask at most this often (a bridge created later). */
export const RETRY_WATCH_MS = 30_000;
/** The file dnsmasq keeps its leases in, in each network's directory (LXD's `networks/<name>/`). */
export const LEASE_FILE = 'dnsmasq.leases';
/** An LXD network name as it may appear in a path: LXD allows no `/`, and `.`/`..` are not names. */
const NETWORK_NAME = /^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$/;

export interface LeaseWatchOptions {
  /** LXD's directory: the one holding its unix socket. */
  readonly directory: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The lease file of `network` was read anew (after a change): `leases(network)` has its leases. */
  readonly onChange: (network: string) => void;
}

/** One network's watch: its directory watcher, the leases last read, and when. */
interface NetworkWatch {
  watcher: FSWatcher | undefined;
  /** When the directory could not be watched (then `watcher` is undefined). */
  failedAt: number;
  leases: readonly LxdLease[] | undefined;
  lastRead: number;
  /**
   * How long the last read (with its parse) took, ms, on the injected clock: the daemon's clock counts whole
   * milliseconds, so a read of tens of microseconds counts 0 and only a slow one (≥ 1 ms) widens the gap; a test's
   * fake clock counts 0, so a busy test host cannot stretch the gap past what the test advances.
   */
  readCost: number;
  /** A read waiting for MIN_READ_GAP_MS to pass. */
  timer: unknown;
}

export class LeaseWatch {
  readonly #opts: LeaseWatchOptions;
  readonly #networks = new Map<string, NetworkWatch>();
  #closed = false;

  constructor(opts: LeaseWatchOptions) {
    this.#opts = opts;
  }

  /**
   * The unexpired IPv4 leases in `network`'s lease file as last read (lease-file.ts), or undefined when that file
   * is not watched or not (yet) read. The first ask starts watching it and reads it at once; each later read
   * (after a change) is announced with `onChange`.
   * What this returns must not be modified.
   */
  leases(network: string): readonly LxdLease[] | undefined {
    if (this.#closed || !NETWORK_NAME.test(network)) return undefined;
    let w = this.#networks.get(network);
    if (w !== undefined && w.watcher === undefined && this.#opts.clock.now() - w.failedAt >= RETRY_WATCH_MS) {
      this.#networks.delete(network);
      w = undefined;
    }
    if (w === undefined) {
      if (this.#networks.size >= MAX_WATCHED_NETWORKS) return undefined;
      w = this.#start(network);
    }
    return w.leases;
  }

  /** Stops every watch and pending read; `leases` answers undefined from now on. */
  close(): void {
    this.#closed = true;
    for (const w of this.#networks.values()) {
      w.watcher?.close();
      this.#opts.clock.clearTimeout(w.timer);
    }
    this.#networks.clear();
  }

  #start(network: string): NetworkWatch {
    const w: NetworkWatch = { watcher: undefined, failedAt: 0, leases: undefined, lastRead: -Infinity, readCost: 0, timer: undefined };
    this.#networks.set(network, w);
    const dir = join(this.#opts.directory, 'networks', network);
    try {
      w.watcher = watch(dir, { persistent: false }, (_event, file) => {
        if (file === null || file === LEASE_FILE) this.#changed(network, w);
      });
      w.watcher.on('error', (err) => {
        this.#opts.logger.debug('lxd lease file watch ended; polling leases', { network, error: describeError(err) });
        w.watcher?.close();
        if (this.#networks.get(network) === w) this.#networks.delete(network);
      });
    } catch (err) {
      w.failedAt = this.#opts.clock.now();
      this.#opts.logger.debug('lxd lease file not watched; polling leases', { network, directory: dir, error: describeError(err) });
      return w;
    }
    this.#opts.logger.debug('lxd lease file watched', { network, directory: dir });
    this.#read(network, w);
    return w;
  }

  /** The file may have changed: read it now, or once the gap after the last read (see READ_COST_FACTOR) has passed. */
  #changed(network: string, w: NetworkWatch): void {
    if (this.#closed || this.#networks.get(network) !== w || w.timer !== undefined) return;
    const wait = w.lastRead + Math.max(MIN_READ_GAP_MS, READ_COST_FACTOR * w.readCost) - this.#opts.clock.now();
    if (wait > 0) {
      w.timer = this.#opts.clock.setTimeout(() => {
        w.timer = undefined;
        this.#changed(network, w);
      }, wait);
      return;
    }
    if (this.#read(network, w)) this.#opts.onChange(network);
  }

  /** Reads `network`'s lease file into `w`; true when its leases were replaced. */
  #read(network: string, w: NetworkWatch): boolean {
    const file = join(this.#opts.directory, 'networks', network, LEASE_FILE);
    const began = this.#opts.clock.now();
    try {
      const text = readBounded(file);
      // dnsmasq rewrites the file in place (truncate, then write): an empty read is the middle of a rewrite
      // (or a bridge with no lease yet), so it neither replaces the leases nor holds off the read of the write.
      if (text === '' && w.leases !== undefined) return false;
      w.leases = parseLeaseFile(text, Math.floor(began / 1000));
      w.lastRead = this.#opts.clock.now();
      w.readCost = w.lastRead - began;
      return true;
    } catch (err) {
      // Gone or unreadable: the leases last read stay (the next change reads again); never read: polling.
      this.#opts.logger.debug('lxd lease file not read', { network, file, error: describeError(err) });
      return false;
    }
  }
}

/**
 * The complete lines (each ends in a newline, as dnsmasq writes them) among the first MAX_LEASE_FILE_BYTES of the
 * regular file `path`: a line cut off by the cap, or by dnsmasq still writing, is left out, so no address is ever
 * read short. Opened without following a symlink and without blocking (a FIFO put there cannot hang it).
 *
 * Synchronous on purpose: the asynchronous open, stat, read and close are four trips through libuv's thread pool,
 * which took 3–22 ms on the busy 2-core test host (most of the time lexa was still behind dnsmasq), while a file of
 * a few hundred leases is read in some tens of microseconds; the cap and READ_COST_FACTOR bound the worst case.
 */
function readBounded(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
    const buf = Buffer.allocUnsafe(Math.min(fstatSync(fd).size, MAX_LEASE_FILE_BYTES));
    let length = 0;
    while (length < buf.length) {
      const n = readSync(fd, buf, length, buf.length - length, length);
      if (n === 0) break;
      length += n;
    }
    const read = buf.subarray(0, length);
    return read.toString('latin1', 0, read.lastIndexOf(0x0a) + 1);
  } finally {
    closeSync(fd);
  }
}
