import { onAbort } from './on-abort.js';

/**
 * Time as the reflector sees it. Every delay the reflector waits (reconnect backoff, watchdog, resync, settle)
 * goes through a Clock, so tests drive time instead of waiting for it. Handles are opaque: pass back what you got.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
  /**
   * Lets the process exit while `handle` (a timeout or interval of this clock) is pending: for timers that only
   * matter while something else (a socket, a server) keeps the process alive. A clock without a process may ignore it.
   */
  unref(handle: unknown): void;
}

/** The process's own clock and timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (handle) => clearInterval(handle as NodeJS.Timeout),
  unref: (handle) => void (handle as NodeJS.Timeout).unref(),
};

/**
 * Resolves after `ms` on `clock`, or at once when `signal` aborts (the timer is cleared then, so a stopped
 * reflector leaves no timer behind). Never rejects. Any number of sleepers share one listener on `signal`
 * (onAbort): a burst of settle loops on one connection stays one listener.
 */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clock.clearTimeout(timer);
      off();
      resolve();
    };
    const off = signal === undefined ? noop : onAbort(signal, done);
    const timer = clock.setTimeout(done, ms);
  });
}

const noop = (): void => undefined;
