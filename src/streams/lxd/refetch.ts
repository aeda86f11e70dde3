import { describeError, type Logger } from '../../log/index.js';
import { sleep, type Clock } from '../../time/clock.js';
import { onAbort } from '../../time/on-abort.js';
import { LxdError, type LxdClient } from './lxd-client.js';
import { instanceKey, leasedIpv4, primaryNic, toInstance, type LxdInstance, type LxdLease } from './lxd-model.js';
import { lxdInstanceOf, lxdLeasesOf } from './wire-shapes.js';
import type { Instance } from '../model/model.js';
import { leaseScope, leasesByMac, leasingNetworks, NO_EVIDENCE, withLeaseIndex, type Evidence, type LeaseIndex } from './trust.js';
import { SharedReads } from './shared-reads.js';

/**
 * When to re-read an instance after it starts, restarts or changes (ms after the previous read). LXD emits no
 * event when an instance gets its addresses: IPv4 arrives by DHCP ~0.1 s after start and the SLAAC IPv6 after
 * 1–2 s. So poll densely for 3 s, then thin out to ~13 s for slow DHCP or a static address applied late. Stops
 * early once addresses are complete.
 */
export const SETTLE_DELAYS_MS = [100, 150, 250, 250, 250, 250, 250, 250, 250, 250, 250, 500, 1000, 2000, 3000, 4000];
/**
 * Before that schedule, while the instance has no IPv4 yet (the address a new name is first asked for), it is
 * read every FIRST_ADDRESS_POLL_MS for FIRST_ADDRESS_WINDOW_MS, together with its bridge's DHCP leases: a read
 * costs LXD ~1–2 ms over its socket, and DHCP completes 50–150 ms after `lxc launch` returns. The lease is the
 * earlier signal: dnsmasq holds it (and answers for it) some 20–40 ms before the container has configured the
 * address and LXD's state shows it. So the leased IPv4 is served from then until the state shows an IPv4, as
 * LXD's own DNS would. The period stretches with the number of instances settling at once (×N), so a mass start
 * asks LXD no more than ~200 pairs of reads a second.
 */
export const FIRST_ADDRESS_POLL_MS = 5;
export const FIRST_ADDRESS_WINDOW_MS = 400;
/**
 * The first-address poll period instead, for an instance of a standalone LXD whose bridge's lease file is watched
 * (lease-watch.ts): the file brings the lease the moment dnsmasq writes it, so the polls only catch what no lease
 * shows (an address the container sets itself) and a lost file event. Each read took 15–30 ms on the busy 2-core
 * test host, back to back, and LXD's work for it is CPU that dnsmasq and the starting container need too. In a cluster the instance may lease from another
 * member's dnsmasq, whose file is not on this host: those keep FIRST_ADDRESS_POLL_MS.
 */
export const WATCHED_POLL_MS = 50;

/**
 * How long a lease list read beside an instance read (see #read) may take before the instance is stored without
 * it. dnsmasq's list answers in milliseconds, but in a cluster LXD gathers it from every member, and a member that
 * hangs (SIGSTOP) holds it: no answer while LXD still lists that member Online (measured on LXD 5.0.2; "peer node
 * ... is down" once it is Offline). The instance state read beside it is as old as the slower of the two when
 * stored, so waiting out a late lease list stored a state that old over what a list or read had stored since:
 * test/cluster/frozen.test.ts saw a launched instance lose its addresses 45 s after it got them.
 */
export const LEASE_BESIDE_MS = 2_000;

export interface RefetchOptions {
  readonly client: LxdClient;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Receives each instance as just read from LXD. */
  readonly onRead: (inst: Instance) => void;
  /** LXD answered 404 for this key: the instance is gone. */
  readonly onGone: (key: string) => void;
  /** The named site the instances belong to; absent for the unnamed one. */
  readonly site?: string;
  /**
   * The DHCP leases dnsmasq wrote for a network (lease-watch.ts), where lexa reads LXD's local socket; undefined
   * for a network whose lease file is not read (remote LXD, no such file), whose instances keep the polled path.
   * A lease found here counts as one LXD's lease list shows (see #leased): it is the file that list is read from.
   */
  readonly leaseFiles?: { leases(network: string): readonly LxdLease[] | undefined };
}

/**
 * Re-reads single instances when events name them, and keeps re-reading ("settles") those whose addresses are
 * still arriving. Holds no copy of LXD: what it reads goes to `onRead`/`onGone`.
 *
 * Contract: at most one read per instance is in flight; requests that arrive meanwhile coalesce into one more
 * read after it, so the last read always starts after the last request. Every read and wait ends when the
 * `signal` passed with it aborts (the connection it belongs to ended), and nothing is stored after that.
 */
export class Refetcher {
  readonly #opts: RefetchOptions;
  readonly #log: Logger;
  /** Reads in flight by key: `dirty` asks for one more read after this one, `settle` for a settle loop after it. */
  readonly #fetching = new Map<string, { dirty: boolean; settle: boolean }>();
  /** The settle loop that owns each key, by a number no other loop gets: a newer loop or a removal supersedes it. */
  readonly #settling = new Map<string, number>();
  #nextLoop = 0;
  /**
   * IPv4 addresses taken from a DHCP lease for running instances whose state does not show one yet, by key. Every
   * read of the instance carries it until the state shows an IPv4 or the instance stops (so no read in between
   * takes the answer away again).
   */
  readonly #leased = new Map<string, string>();
  /**
   * Running instances without an IPv4 yet, as last read (with the signal of the read): a lease file change
   * (`leaseFileChanged`) that brings the lease of one's primary NIC gives it that IPv4 at once, without a read.
   */
  readonly #awaiting = new Map<string, { inst: Instance; signal: AbortSignal }>();
  /** The primary NIC (bridge and MAC) of running instances as last read, to ask for their lease in parallel. */
  readonly #nics = new Map<string, { network: string; hwaddr: string }>();
  /**
   * The lease-backed networks (trust.ts) of running instances whose last read showed an address LXD did not vouch
   * for, by key: their next read asks for those networks' leases beside the instance, so an address whose lease
   * lexa has not seen yet is trusted from then on.
   */
  readonly #unvouched = new Map<string, readonly string[]>();
  /**
   * What LXD last said about its networks and leases (the reflector's list sets it; the lease lists read here
   * update it): how each read's addresses are trusted.
   */
  #evidence: Evidence = NO_EVIDENCE;
  /**
   * Lease list reads shared between the instance reads that want them (shared-reads.ts), per connection signal and
   * lease scope: a burst of re-reads on one bridge reads and indexes its list at most twice at a time, not once each.
   */
  readonly #leaseReads = new WeakMap<AbortSignal, SharedReads<LeaseRead | undefined>>();

  constructor(opts: RefetchOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
  }

  /** Re-reads one instance (coalesced, see above); with `settle`, then settles it if it is running. */
  refetch(project: string, name: string, settle: boolean, signal: AbortSignal): void {
    const key = instanceKey(project, name, this.#opts.site);
    const inflight = this.#fetching.get(key);
    if (inflight) {
      inflight.dirty = true;
      inflight.settle ||= settle;
      return;
    }
    const entry = { dirty: false, settle };
    this.#fetching.set(key, entry);
    const run = async (): Promise<void> => {
      do {
        entry.dirty = false;
        const doSettle = entry.settle;
        entry.settle = false;
        const inst = await this.#read(project, name, signal);
        if (doSettle && inst?.running) void this.settle(project, name, inst, signal);
      } while (entry.dirty && !signal.aborted);
    };
    run()
      .catch((err) => {
        if (!signal.aborted) this.#log.warn('lxd instance read failed', { instance: key, error: describeError(err) });
      })
      .finally(() => this.#fetching.delete(key));
  }

  /**
   * Re-reads `first`'s instance on SETTLE_DELAYS_MS until its addresses are complete, it stops running, a newer
   * settle loop or `forget` takes the key over, or `signal` aborts. Never rejects.
   */
  async settle(project: string, name: string, first: Instance, signal: AbortSignal): Promise<void> {
    const key = instanceKey(project, name, this.#opts.site);
    const loop = ++this.#nextLoop;
    this.#settling.set(key, loop);
    try {
      let prev = first;
      const started = this.#opts.clock.now();
      while (!hasIpv4(prev) && this.#opts.clock.now() - started < FIRST_ADDRESS_WINDOW_MS) {
        const period = this.#fileLeased(key, prev) ? WATCHED_POLL_MS : FIRST_ADDRESS_POLL_MS * Math.max(1, this.#settling.size);
        await sleep(this.#opts.clock, period, signal);
        if (signal.aborted || this.#settling.get(key) !== loop) return;
        const inst = await this.#read(project, name, signal, true).catch(() => prev);
        if (!inst?.running) return;
        prev = inst;
      }
      for (const delay of SETTLE_DELAYS_MS) {
        if (complete(prev)) return;
        await sleep(this.#opts.clock, delay, signal);
        if (signal.aborted || this.#settling.get(key) !== loop) return;
        let inst: Instance | undefined;
        try {
          inst = await this.#read(project, name, signal);
        } catch (err) {
          if (!signal.aborted) this.#log.debug('lxd settle read failed', { instance: key, error: describeError(err) });
          continue;
        }
        if (!inst?.running) return;
        prev = inst;
      }
    } finally {
      if (this.#settling.get(key) === loop) this.#settling.delete(key);
    }
  }

  /** Ends any settle loop for `key`: the instance is gone, so there is nothing left to wait for. */
  forget(key: string): void {
    this.#settling.delete(key);
    this.#leased.delete(key);
    this.#nics.delete(key);
    this.#unvouched.delete(key);
    this.#awaiting.delete(key);
  }

  /**
   * `network`'s lease file was read anew: every instance awaiting its first IPv4 whose primary NIC's MAC holds a
   * lease there is stored with that IPv4 now (a copy of its last read; the next read keeps it, see #leased).
   */
  leaseFileChanged(network: string): void {
    for (const [key, { inst, signal }] of this.#awaiting) {
      const nic = this.#nics.get(key);
      if (signal.aborted || nic?.network !== network) continue;
      const ip = leasedIpv4(this.#opts.leaseFiles?.leases(network), nic.hwaddr);
      if (ip === undefined) continue;
      this.#awaiting.delete(key);
      this.#leased.set(key, ip);
      this.#opts.onRead(withPrimaryIpv4(inst, ip));
    }
  }

  /** What LXD last said about its networks and leases (see #evidence). */
  get evidence(): Evidence {
    return this.#evidence;
  }

  /** A full list's evidence: its networks' facts, its lease lists merged into those read here (reflector.ts). */
  set evidence(evidence: Evidence) {
    this.#evidence = evidence;
  }

  /** Whether `inst` (of a standalone LXD) leases on a bridge whose lease file is watched (see WATCHED_POLL_MS). */
  #fileLeased(key: string, inst: Instance): boolean {
    const nic = this.#nics.get(key);
    return inst.location === 'none' && nic !== undefined && this.#opts.leaseFiles?.leases(nic.network) !== undefined;
  }

  /**
   * The leases of `network`, as listed and indexed by MAC, from a read that began no earlier than this call and
   * that concurrent callers share (#leaseReads), given up after LEASE_BESIDE_MS. Never rejects: a failed or late
   * read is no lease.
   */
  #leases(network: string, project: string, signal: AbortSignal): Promise<LeaseRead | undefined> {
    let reads = this.#leaseReads.get(signal);
    if (reads === undefined) {
      reads = new SharedReads();
      this.#leaseReads.set(signal, reads);
    }
    const path = `/1.0/networks/${encodeURIComponent(network)}/leases?project=${encodeURIComponent(project)}`;
    const { clock } = this.#opts;
    return reads.read(leaseScope(project, network), () => {
      const limit = new AbortController();
      const timer = clock.setTimeout(() => limit.abort(), LEASE_BESIDE_MS);
      const off = onAbort(signal, () => limit.abort());
      return this.#opts.client
        .get<unknown>(path, limit.signal)
        .then(
          (raw) => {
            const list = lxdLeasesOf(raw);
            return { list, byMac: leasesByMac(list) };
          },
          () => undefined,
        )
        .finally(() => {
          clock.clearTimeout(timer);
          off();
        });
    });
  }

  /**
   * Reads one instance (with state); a 404 reports it gone. With `lease`, an instance whose state shows no IPv4 yet
   * also has its bridge's DHCP leases read, and a lease for its MAC gives it that IPv4 (see #leased). An instance
   * whose last read showed an address LXD did not vouch for has its networks' leases read too (see #unvouched).
   * Returns what it stored, or undefined.
   */
  async #read(project: string, name: string, signal: AbortSignal, lease = false): Promise<Instance | undefined> {
    const key = instanceKey(project, name, this.#opts.site);
    let inst: Instance;
    let raw: LxdInstance;
    // The leases are read beside the instance (not after it) so the lease costs no extra round trip; the bridge
    // is the one the instance's primary NIC was on at its last read.
    const nic = lease && !this.#leased.has(key) ? this.#nics.get(key) : undefined;
    const networks = new Set(this.#unvouched.get(key));
    if (nic !== undefined) networks.add(nic.network);
    const reads = [...networks].map(async (n) => [n, await this.#leases(n, project, signal)] as const);
    let lists: Map<string, LeaseRead | undefined>;
    try {
      raw = lxdInstanceOf(await this.#opts.client.get<unknown>(
        `/1.0/instances/${encodeURIComponent(name)}?recursion=1&project=${encodeURIComponent(project)}`,
        signal,
      ));
      lists = new Map(await Promise.all(reads));
      if (signal.aborted) return undefined;
      for (const [n, read] of lists) if (read !== undefined) this.#evidence = withLeaseIndex(this.#evidence, project, n, read.byMac);
      inst = toInstance({ ...raw, project: raw.project || project }, this.#evidence, this.#opts.site);
    } catch (err) {
      if (err instanceof LxdError && err.status === 404) {
        this.#leased.delete(key);
        this.#nics.delete(key);
        this.#unvouched.delete(key);
        this.#awaiting.delete(key);
        if (signal.aborted) return undefined;
        this.#opts.onGone(key);
        return undefined;
      }
      throw err;
    }
    const current = primaryNic(raw);
    if (current !== undefined && inst.running) this.#nics.set(key, current);
    else this.#nics.delete(key);
    const leasing = inst.running && unvouched(inst) ? leasingNetworks(raw.expanded_devices, this.#evidence.networks) : [];
    if (leasing.length > 0) this.#unvouched.set(key, leasing);
    else this.#unvouched.delete(key);
    if (!inst.running || hasIpv4(inst)) this.#leased.delete(key);
    else {
      if (nic !== undefined && current !== undefined && current.hwaddr === nic.hwaddr) {
        const ip = leasedIpv4(lists.get(nic.network)?.list, current.hwaddr);
        if (ip !== undefined) this.#leased.set(key, ip);
      }
      // The lease file costs no request, so every such read looks there (not only the first-address polls).
      if (!this.#leased.has(key) && current !== undefined) {
        const ip = leasedIpv4(this.#opts.leaseFiles?.leases(current.network), current.hwaddr);
        if (ip !== undefined) this.#leased.set(key, ip);
      }
      const leased = this.#leased.get(key);
      if (leased !== undefined) inst = withPrimaryIpv4(inst, leased);
    }
    if (inst.running && !hasIpv4(inst) && current !== undefined) this.#awaiting.set(key, { inst, signal });
    else this.#awaiting.delete(key);
    this.#opts.onRead(inst);
    return inst;
  }
}

/**
 * `inst` with `ip` as its primary interface's IPv4 (the instance is never modified: a copy). LXD's lease list
 * gave it, so it is trusted.
 */
function withPrimaryIpv4(inst: Instance, ip: string): Instance {
  const [primary, ...rest] = inst.interfaces;
  if (primary === undefined) return inst;
  return { ...inst, interfaces: [{ ...primary, ipv4: [ip], trustedIpv4: [ip] }, ...rest] };
}

/** The primary interface has a global IPv4: what `<name>.<suffix>` A answers with. */
function hasIpv4(inst: Instance): boolean {
  return (inst.interfaces[0]?.ipv4.length ?? 0) > 0;
}

/**
 * Every interface of a running instance has both a global IPv4 and a global IPv6, and LXD vouches for every one
 * of them (an address whose lease lexa has not seen yet keeps the instance settling, its leases read each time).
 */
export function complete(inst: Instance): boolean {
  return inst.interfaces.length > 0 && inst.interfaces.every((i) => i.ipv4.length > 0 && i.ipv6.length > 0) && !unvouched(inst);
}

/** Some interface shows an address LXD does not vouch for (trust.ts). */
function unvouched(inst: Instance): boolean {
  return inst.interfaces.some((i) => i.trustedIpv4.length < i.ipv4.length || i.trustedIpv6.length < i.ipv6.length);
}

/** One read of a network's lease list: the list as LXD gave it, and its index by MAC (trust.ts). */
interface LeaseRead {
  readonly list: LxdLease[];
  readonly byMac: LeaseIndex;
}
