/**
 * A signal that aborts when `parent` does or after `ms`, and a `done()` that lets go of both; call it once the work
 * the signal guards has ended (in a `finally`).
 *
 * Why not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 every signal `any` derives stays
 * registered with its long-lived parent until the parent aborts (measured: ~33 bytes per request that garbage
 * collection never frees), and lexa's LXD requests hang off one connection signal that lives for hours. Here the
 * parent holds one listener per request in flight, removed by `done()`, and the timer is cleared.
 */
export function deadline(parent: AbortSignal | undefined, ms: number): { readonly signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  const onAbort = () => controller.abort(parent!.reason);
  if (parent?.aborted) controller.abort(parent.reason);
  else parent?.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onAbort);
    },
  };
}
