import type { LxdEvent } from './lxd-model.js';

/**
 * What happens while a full list is in flight. A list takes a while (~1–2 s for 200 instances) and shows LXD at
 * some moment during that time; anything learnt meanwhile may be newer, and must not be replaced by it:
 * - events are buffered and applied after the list has landed, so the reads they cause start after it;
 * - reads already under way (coalesced re-reads, settle loops) that land meanwhile are recorded, and the list
 *   keeps their result instead of its own copy (`keep` in the `listed` action).
 * The same holds on connect and on every periodic resync.
 */
export interface Listing {
  /** Events that arrived meanwhile (and when), applied once the list has landed. */
  readonly events: { readonly ev: LxdEvent; readonly at: number }[];
  /** Keys whose instance was read (or found gone) one by one meanwhile. */
  readonly read: Set<string>;
}

/** The list in flight, if any, and what it fences off (see Listing). At most one list is in flight at a time. */
export class ListFence {
  #current: Listing | undefined;

  /** Whether a list is in flight. */
  get busy(): boolean {
    return this.#current !== undefined;
  }

  /** Starts buffering events for a list about to be sent. */
  begin(): Listing {
    const listing: Listing = { events: [], read: new Set() };
    this.#current = listing;
    return listing;
  }

  /**
   * `listing` has landed (or failed): stop buffering and hand what was buffered to `apply`, in arrival order,
   * unless the connection ended (`signal`) or a newer list replaced this one.
   */
  end(listing: Listing, signal: AbortSignal, apply: (ev: LxdEvent, arrived: number) => void): void {
    if (this.#current !== listing) return;
    this.#current = undefined;
    if (signal.aborted) return;
    for (const { ev, at } of listing.events.splice(0)) apply(ev, at);
  }

  /** Drops the list in flight: its connection ended, and the next one lists afresh. */
  drop(): void {
    this.#current = undefined;
  }

  /** Buffers `ev` (arrived at `at`) if a list is in flight; false if none is, and the caller applies it now. */
  hold(ev: LxdEvent, at: number): boolean {
    this.#current?.events.push({ ev, at });
    return this.#current !== undefined;
  }

  /** An instance was read (or found gone) one by one: the list in flight, if any, keeps that result. */
  read(key: string): void {
    this.#current?.read.add(key);
  }
}
