/**
 * A signal that aborts when `parent` does or after `ms`, and a `done()` that lets go of both; call it once the work
 * the signal guards has ended (in a `finally`).
 *
 * Why not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 every signal `any` derives stays
 * registered with its long-lived parent until the parent aborts (measured: ~33 bytes per request that garbage
 * collection never frees), and lexa's LXD requests hang off one connection signal that lives for hours. Here a
 * parent carries at most one listener, whatever the number of requests in flight (one per request would also trip
 * Node's "possible EventTarget memory leak" warning past 10 during a burst of re-reads): it aborts the requests
 * registered with it, and `done()` unregisters one, removing the listener with the last.
 */
export function deadline(parent: AbortSignal | undefined, ms: number): { readonly signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  if (parent === undefined) return { signal: controller.signal, done: () => clearTimeout(timer) };
  if (parent.aborted) {
    clearTimeout(timer);
    controller.abort(parent.reason);
    return { signal: controller.signal, done: () => undefined };
  }
  let children = inFlight.get(parent);
  if (children === undefined) {
    const set = new Set<AbortController>();
    children = set;
    inFlight.set(parent, set);
    parent.addEventListener('abort', () => {
      inFlight.delete(parent);
      for (const child of set) child.abort(parent.reason);
    }, { once: true });
  }
  children.add(controller);
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      const set = inFlight.get(parent);
      if (set === undefined) return;
      set.delete(controller);
      // The listener stays (a parent that aborts later finds an empty set): removing it would need its identity,
      // and one listener per parent, ever, is the bound that matters.
    },
  };
}

/** The requests in flight under each parent signal, aborted with it. */
const inFlight = new WeakMap<AbortSignal, Set<AbortController>>();
