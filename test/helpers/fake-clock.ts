import type { Clock } from '../../src/time/clock.js';
import { AT } from './model.js';

/**
 * A clock that moves only when the test says so. Timers fire in time order (then in the order they were set)
 * inside `advance`, and after each one the promises it set going are given the chance to settle, so async code
 * driven by the clock runs as it would in real time, minus the waiting.
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; fn: () => void; every: number; ms: number }>();

  constructor(start = AT) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    return this.#add(fn, ms, 0);
  }

  setInterval(fn: () => void, ms: number): unknown {
    return this.#add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  clearInterval(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** A fake clock keeps no process alive, so there is nothing to release. */
  unref(): void {}

  /** How many timers and intervals are set and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** How many of them were set for `ms`: timers of one kind, where others (a connection's idle deadline) run beside. */
  pendingFor(ms: number): number {
    let n = 0;
    for (const timer of this.#timers.values()) if (timer.ms === ms) n++;
    return n;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await settle();
    for (;;) {
      let due: [number, { at: number; fn: () => void; every: number; ms: number }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (due === undefined || entry[1].at < due[1].at)) due = entry;
      }
      if (due === undefined) break;
      const [id, timer] = due;
      this.#now = timer.at;
      if (timer.every > 0) timer.at += timer.every;
      else this.#timers.delete(id);
      timer.fn();
      await settle();
    }
    this.#now = end;
    await settle();
  }

  #add(fn: () => void, ms: number, every: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn, every, ms });
    return id;
  }
}

/** Lets every promise callback and `process.nextTick` that is ready run (a few turns of the event loop). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
