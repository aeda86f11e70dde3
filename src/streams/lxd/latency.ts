import type { Clock } from '../../time/clock.js';
import { notify, type ReflectorObserver } from './observer.js';

/**
 * Times how soon events show in the snapshot, for the observer's `eventApplied`. When an event asks to re-read
 * an instance, the oldest such event's arrival is remembered by the instance's key; its next stored read (or
 * removal) reports the delay. Does nothing without an observer that listens. Cleared per connection.
 */
export class EventLatency {
  readonly #observer: ReflectorObserver | undefined;
  readonly #clock: Clock;
  readonly #pendingSince = new Map<string, number>();

  constructor(observer: ReflectorObserver | undefined, clock: Clock) {
    this.#observer = observer;
    this.#clock = clock;
  }

  /** An event that arrived at `arrived` asked to re-read `key`: remember when, unless an older one already waits. */
  awaitRead(key: string, arrived: number): void {
    if (!this.#observer?.eventApplied) return;
    if (!this.#pendingSince.has(key)) this.#pendingSince.set(key, arrived);
  }

  /** The snapshot now reflects events about `key`: report the delay since the oldest of them (or `arrived`). */
  reflected(key: string, arrived?: number): void {
    const observer = this.#observer;
    if (!observer?.eventApplied) return;
    const since = this.#pendingSince.get(key) ?? arrived;
    this.#pendingSince.delete(key);
    if (since !== undefined) notify(() => observer.eventApplied?.(this.#clock.now() - since));
  }

  /** Forgets every waiting read: the connection they belong to has ended. */
  clear(): void {
    this.#pendingSince.clear();
  }
}
