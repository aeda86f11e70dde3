/**
 * Reads that concurrent callers share, per key, without ever handing a caller a result older than its request.
 *
 * Contract: `read(key, start)` resolves with the result of a read (`start()`) that began no earlier than the call.
 * Per key at most one read is in flight and at most one more is queued: a caller that arrives while a read is in
 * flight waits for the queued one, which starts when the one in flight ends, and every caller that arrived
 * meanwhile shares it. So N concurrent callers cost at most two reads, where each on its own would cost N, and none
 * sees a result that might predate what made it ask (the reason it cannot simply join the read in flight).
 *
 * Why (docs/performance.md, "Propagation"): a burst of changes (a host's containers restarting) re-reads each
 * instance together with its bridge's whole DHCP lease list; 500 instances on one bridge of 10,000 leases read and
 * indexed that list 500 times over. A rejected read rejects the callers that share it; the queued read still runs.
 */
export class SharedReads<T> {
  readonly #slots = new Map<string, Slot<T>>();

  read(key: string, start: () => Promise<T>): Promise<T> {
    const slot = this.#slots.get(key);
    if (slot === undefined) return this.#run(key, start);
    if (slot.queued === undefined) {
      let resolve!: (p: Promise<T>) => void;
      const promise = new Promise<T>((r) => (resolve = r));
      slot.queued = { promise, resolve, start };
    }
    return slot.queued.promise;
  }

  /** Keys with a read in flight (for tests and metrics). */
  get inFlight(): number {
    return this.#slots.size;
  }

  #run(key: string, start: () => Promise<T>): Promise<T> {
    let running: Promise<T>;
    try {
      running = start();
    } catch (err) {
      running = Promise.reject(err);
    }
    const slot: Slot<T> = { queued: undefined };
    this.#slots.set(key, slot);
    // One chain decides what follows, so the queued read starts exactly when this one has ended.
    running.then(ignore, ignore).then(() => {
      const next = slot.queued;
      if (next === undefined) this.#slots.delete(key);
      else next.resolve(this.#run(key, next.start));
    });
    return running;
  }
}

interface Slot<T> {
  /** The read that starts when the one in flight ends, and whoever is waiting for it. */
  queued: { readonly promise: Promise<T>; readonly resolve: (p: Promise<T>) => void; readonly start: () => Promise<T> } | undefined;
}

const ignore = (): void => undefined;
