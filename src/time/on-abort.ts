/**
 * `onAbort(parent, fn)`: calls `fn` once when `parent` aborts (at once when it already has), unless the returned
 * `off()` was called first. However many callers wait on one parent, the parent carries a single abort listener.
 *
 * Why: lexa hangs its LXD work off one connection signal that lives for hours, and a burst of work (re-reads and
 * settle loops as a batch of instances starts) would otherwise add one listener each: Node warns of a "possible
 * EventTarget memory leak" past 10, and a listener per waiter is a cost the burst need not pay. The one listener
 * stays on the parent after the last waiter leaves (removing it would need bookkeeping for no gain): one per parent,
 * ever, is the bound.
 */
export function onAbort(parent: AbortSignal, fn: () => void): () => void {
  if (parent.aborted) {
    fn();
    return noop;
  }
  let waiting = waiters.get(parent);
  if (waiting === undefined) {
    const set = new Set<() => void>();
    waiting = set;
    waiters.set(parent, set);
    parent.addEventListener('abort', () => {
      waiters.delete(parent);
      for (const waiter of set) waiter();
    }, { once: true });
  }
  // A fresh function per registration: the same `fn` registered twice is two waiters, each with its own off().
  const waiter = () => fn();
  const set = waiting;
  set.add(waiter);
  return () => void set.delete(waiter);
}

const noop = (): void => undefined;

/** The waiters of each parent signal not yet aborted. */
const waiters = new WeakMap<AbortSignal, Set<() => void>>();
