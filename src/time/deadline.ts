import { onAbort } from './on-abort.js';

/**
 * A signal that aborts when `parent` does or after `ms`, and a `done()` that lets go of both; call it once the work
 * the signal guards has ended (in a `finally`).
 *
 * Why not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 every signal `any` derives stays
 * registered with its long-lived parent until the parent aborts (measured: ~33 bytes per request that garbage
 * collection never frees), and lexa's LXD requests hang off one connection signal that lives for hours. Here the
 * parent carries one listener whatever the number of requests in flight (onAbort), and `done()` unregisters.
 */
export function deadline(parent: AbortSignal | undefined, ms: number): { readonly signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  timer.unref();
  if (parent === undefined) return { signal: controller.signal, done: () => clearTimeout(timer) };
  const off = onAbort(parent, () => {
    clearTimeout(timer);
    controller.abort(parent.reason);
  });
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      off();
    },
  };
}
