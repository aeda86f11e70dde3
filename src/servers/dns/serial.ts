import { createHash } from 'node:crypto';
import type { Answer, SoaAnswer } from 'dns-packet';
import type { Snapshot } from '../../streams/index.js';
import { recordKey, zoneContent, type ContentOptions } from './zone.js';

/** One version of a zone: its transferable records (zone.ts) and the serial they go by. */
export interface ZoneVersion {
  readonly serial: number;
  readonly records: readonly Answer[];
}

/**
 * SOA serials that move exactly when a zone's transferable content changes (zone.ts), never on an update that
 * leaves it equal (a snapshot change elsewhere, a connection flap, a re-list that found the same). The next
 * serial is the current time in seconds, or the last serial + 1 when changes come faster than one a second:
 * so a restart, which starts again from the clock, does not make the serial go backwards unless the zone changed
 * more often than once a second on average before it (RFC 1982 arithmetic would see such a step back as older).
 *
 * Each (snapshot, zone) is computed once: the daemon asks on every new snapshot (so NOTIFY goes out at once and
 * queries find the serial ready); a query asking first pays the O(N) pass itself. Old snapshots are held weakly.
 */
export class ZoneSerials {
  readonly #opts: ContentOptions;
  readonly #now: () => number;
  readonly #memo = new WeakMap<Snapshot, Map<string, ZoneVersion>>();
  /** Per zone: the last content's hash and serial. */
  readonly #last = new Map<string, { readonly hash: string; readonly serial: number }>();

  constructor(opts: ContentOptions, now: () => number = Date.now) {
    this.#opts = opts;
    this.#now = now;
  }

  /** The zone's content and serial in `snapshot`. */
  version(zone: string, snapshot: Snapshot): ZoneVersion {
    let perZone = this.#memo.get(snapshot);
    if (perZone === undefined) this.#memo.set(snapshot, (perZone = new Map()));
    const known = perZone.get(zone);
    if (known !== undefined) return known;
    const records = zoneContent(snapshot, zone, this.#opts);
    const hash = contentHash(records);
    const last = this.#last.get(zone);
    let serial: number;
    if (last !== undefined && last.hash === hash) serial = last.serial;
    else {
      const clock = Math.floor(this.#now() / 1000) >>> 0;
      serial = last === undefined ? clock : Math.max(clock, (last.serial + 1) >>> 0);
      this.#last.set(zone, { hash, serial });
    }
    const version = { serial, records };
    perZone.set(zone, version);
    return version;
  }

  serial(zone: string, snapshot: Snapshot): number {
    return this.version(zone, snapshot).serial;
  }

  /** The forward zone's name. */
  get suffix(): string {
    return this.#opts.suffix;
  }

  /** The SOA of `zone` at `serial`, as the resolver builds it (same MNAME, RNAME and timers). */
  soa(zone: string, serial: number): SoaAnswer {
    const s = this.#opts.soa;
    return { name: zone, type: 'SOA', class: 'IN', ttl: s.minimum, data: { ...s, serial } };
  }
}

function contentHash(records: readonly Answer[]): string {
  const h = createHash('sha256');
  for (const r of records) h.update(`${recordKey(r)}\n`);
  return h.digest('hex');
}
