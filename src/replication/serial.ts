import { createHash } from 'node:crypto';
import type { Answer, SoaAnswer } from 'dns-packet';
import type { View } from '../streams/index.js';
import { recordKey, zoneContent, type ContentOptions } from '../dns/zone.js';

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
 * Numbering a zone is a pass over the snapshot (O(N); ~30 ms for 1,000 instances of 10 records each here, ~0.4–0.5 s for 10,000), so it is
 * not done per snapshot on the query path: `refresh` numbers a given snapshot (the zone watcher in notify.ts calls
 * it, coalescing bursts of changes; a transfer calls it so it sends current data), and `serial`, which queries
 * use, returns the serial of the zone's latest numbered version. So the SOA a query sees is always the serial of
 * the content a transfer would send at that moment, possibly a moment older than the answers themselves.
 */
export class ZoneSerials {
  readonly #opts: ContentOptions;
  readonly #now: () => number;
  /** Per zone: the latest numbered version, the snapshot it is of, and its content hash. */
  readonly #current = new Map<string, ZoneVersion & { readonly of: View; readonly hash: string }>();

  constructor(opts: ContentOptions, now: () => number = Date.now) {
    this.#opts = opts;
    this.#now = now;
  }

  /** Numbers the zone's content in `snapshot` (once per snapshot) and makes it the zone's latest version. */
  refresh(zone: string, snapshot: View): ZoneVersion {
    const last = this.#current.get(zone);
    if (last !== undefined && last.of === snapshot) return last;
    const records = zoneContent(snapshot, zone, this.#opts);
    const hash = contentHash(records);
    let serial: number;
    if (last !== undefined && last.hash === hash) serial = last.serial;
    else {
      const clock = Math.floor(this.#now() / 1000) >>> 0;
      serial = last === undefined ? clock : Math.max(clock, (last.serial + 1) >>> 0);
    }
    const version = { serial, records, of: snapshot, hash };
    this.#current.set(zone, version);
    return version;
  }

  /** The zone's serial: its latest numbered version's (numbering `snapshot` if the zone has none yet). */
  serial(zone: string, snapshot: View): number {
    return (this.#current.get(zone) ?? this.refresh(zone, snapshot)).serial;
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
