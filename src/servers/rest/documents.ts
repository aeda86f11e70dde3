import type { View } from '../../streams/index.js';

/**
 * Per-document change indexes for blocking queries and server-sent events (Consul's X-Consul-Index, per
 * document): every REST document (the `/containers/` list, one host's `/containers/<name>`) has an index that
 * moves only when that document's bytes change, and waiters are woken only for their document.
 *
 * Contract:
 * - `index` values come from one counter seeded with the start time in milliseconds, so they only grow, never
 *   repeat within a process, and a restarted lexa hands out indexes above the previous one's (unless it changed
 *   documents more than 1000 times a millisecond on average).
 * - A document is re-rendered when the snapshot or the suffix it was rendered for changed: at once when someone
 *   waits on it (`changed()`, called on every new snapshot), otherwise lazily when next read. Where the owner
 *   says what a document is made of (`depends`: parts of the snapshot compared by identity, which persistent
 *   structures keep when unrelated parts change), a new snapshot whose parts are all the same ones costs that
 *   comparison only: a change to `web` renders no document about `db`.
 * - While nothing changes, waiting costs no CPU: a waiter is one entry in its document's set and one timer.
 * - At most MAX_DOCUMENTS documents (or the `maxDocuments` given) are remembered; beyond that the least recently
 *   read one nobody waits on is forgotten (its next read gives it a new, larger index: a spurious wake, never a
 *   missed change).
 */

/** Remembered documents: hosts are looked up by name, so clients could otherwise grow this without bound. */
export const MAX_DOCUMENTS = 10_000;

export interface Doc {
  readonly key: string;
  /** The document's change index (X-Lexa-Index). */
  readonly index: number;
  /** The JSON body, or null when the document does not exist (404: no such host). */
  readonly body: string | null;
}

interface Entry {
  key: string;
  index: number;
  body: string | null;
  version: number;
  suffix: string;
  /** What the body was rendered from (`depends`), or undefined: re-render on every new snapshot. */
  deps: readonly unknown[] | undefined;
  /** Called once each when the index moves (or at close); they remove themselves. */
  readonly watchers: Set<(doc: Doc) => void>;
}

export class Documents {
  readonly #render: (key: string, snap: View, suffix: string) => string | null;
  readonly #depends: ((key: string, snap: View) => readonly unknown[] | undefined) | undefined;
  readonly #snapshot: () => View;
  readonly #suffix: () => string;
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  #generation = Date.now();
  #closed = false;

  constructor(opts: {
    readonly render: (key: string, snap: View, suffix: string) => string | null;
    readonly snapshot: () => View;
    readonly suffix: () => string;
    /** How many documents to remember (MAX_DOCUMENTS by default): fewer where each can be large. */
    readonly maxDocuments?: number;
    /**
     * The parts of `snap` document `key` is rendered from, cheap to collect (undefined: all of it). Two snapshots
     * whose parts are identical (Object.is, element by element) must render the same body.
     */
    readonly depends?: (key: string, snap: View) => readonly unknown[] | undefined;
  }) {
    this.#depends = opts.depends;
    this.#max = opts.maxDocuments ?? MAX_DOCUMENTS;
    this.#render = opts.render;
    this.#snapshot = opts.snapshot;
    this.#suffix = opts.suffix;
  }

  /** The document as of the current snapshot. */
  get(key: string): Doc {
    let entry = this.#entries.get(key);
    if (entry) {
      this.#entries.delete(key); // re-inserted below: the map's order is least recently read first
      this.#entries.set(key, entry);
      this.#refresh(entry);
      return view(entry);
    }
    const snap = this.#snapshot();
    const suffix = this.#suffix();
    const deps = this.#depends?.(key, snap);
    entry = { key, index: ++this.#generation, body: this.#render(key, snap, suffix), version: snap.version, suffix, deps, watchers: new Set() };
    this.#entries.set(key, entry);
    this.#evict();
    return view(entry);
  }

  /**
   * Calls `onChange` once with the document as soon as its index differs from `index` (at once if it already
   * does), or when `close()` is called. Returns a cancel function; a watcher must cancel when its client leaves.
   */
  watch(key: string, index: number, onChange: (doc: Doc) => void): () => void {
    const doc = this.get(key);
    if (doc.index !== index || this.#closed) {
      onChange(doc);
      return () => undefined;
    }
    const entry = this.#entries.get(key)!;
    const once = (d: Doc) => {
      entry.watchers.delete(once);
      onChange(d);
    };
    entry.watchers.add(once);
    return () => void entry.watchers.delete(once);
  }

  /** The snapshot (or the suffix) changed: re-render the documents someone waits on, waking those that moved. */
  changed(): void {
    for (const entry of this.#entries.values()) if (entry.watchers.size > 0) this.#refresh(entry);
  }

  /** Wakes every watcher with its current document; later watches return at once. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) for (const w of [...entry.watchers]) w(view(entry));
  }

  /** How many watchers wait now (for tests and metrics). */
  get waiting(): number {
    let n = 0;
    for (const entry of this.#entries.values()) n += entry.watchers.size;
    return n;
  }

  #refresh(entry: Entry): void {
    const snap = this.#snapshot();
    const suffix = this.#suffix();
    if (entry.version === snap.version && entry.suffix === suffix) return;
    entry.version = snap.version;
    const deps = this.#depends?.(entry.key, snap);
    const same = entry.suffix === suffix && deps !== undefined && entry.deps !== undefined && sameParts(deps, entry.deps);
    entry.suffix = suffix;
    entry.deps = deps;
    if (same) return;
    const body = this.#render(entry.key, snap, suffix);
    if (body === entry.body) return;
    entry.body = body;
    entry.index = ++this.#generation;
    const doc = view(entry);
    for (const w of [...entry.watchers]) w(doc);
  }

  #evict(): void {
    if (this.#entries.size <= this.#max) return;
    for (const [key, entry] of this.#entries) {
      if (entry.watchers.size > 0) continue;
      this.#entries.delete(key);
      if (this.#entries.size <= this.#max) return;
    }
  }
}

/** What readers get: the document as it is now, which later changes do not alter. */
function view(entry: Entry): Doc {
  return Object.freeze({ key: entry.key, index: entry.index, body: entry.body });
}

function sameParts(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
}
