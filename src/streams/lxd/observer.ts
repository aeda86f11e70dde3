/**
 * What the reflector tells an observer about its work, for metrics. Every method is optional and called
 * synchronously; an observer must be cheap and must not throw (a throw is caught and ignored).
 */
export interface ReflectorObserver {
  /** A lifecycle event arrived on the events socket (`action` as LXD names it, e.g. "instance-started"). */
  event?(action: string): void;
  /** The events connection is up and its list has landed; `reconnect` from the second connection on. */
  connected?(reconnect: boolean): void;
  /**
   * A snapshot reflecting an event about one instance was published, `ms` after that event arrived: the time
   * from LXD telling lexa to lexa answering with the change (the instance's re-read, or its removal).
   */
  eventApplied?(ms: number): void;
}

/** Calls `f`, swallowing what it throws: metrics must never break the watch. */
export function notify(f: () => void): void {
  try {
    f();
  } catch {
    // an observer's failure is not the reflector's
  }
}
