/**
 * What "correct" means for DNS answers recorded while real containers start and stop (src/bench/churn.ts): a pure
 * function of LXD's timeline (when each `lxc start` / `lxc stop` was issued and when it returned) and the answers
 * (when each query was sent and its reply received). Times are milliseconds on one clock.
 *
 * An answer reflects lexa's state at some instant between its send and its receipt, so an answer is judged
 * against every state the instance was in during that window, and a verdict is given only when the instance was in
 * one settled state throughout it:
 *
 * - an address that is not the instance's (not among the addresses LXD reported for it) is always wrong;
 * - a reply code other than NOERROR or NXDOMAIN, or no reply, is always wrong;
 * - STALE: an address while the instance had been stopped for at least `stopBoundMs` (its `lxc stop` returned at
 *   least that long before the query was sent, and its next `lxc start` was issued after the reply arrived);
 * - MISSING: no address (NXDOMAIN, or NOERROR without one: NODATA) while the instance had been running for at
 *   least `startBoundMs` (its `lxc start` returned that long before the query was sent, and its next `lxc stop` was
 *   issued after the reply arrived). Before that, no address is correct: LXD emits no event when an instance gets
 *   its address (IPv4 by DHCP ~0.1 s after start, IPv6 by SLAAC 1–2 s after), so lexa cannot know it yet;
 * - anything during a transition (start or stop in flight, or within its bound) is correct either way.
 */

export type Operation = 'start' | 'stop';

/** One `lxc start` or `lxc stop` of one instance: issued when the command was spawned, returned when it exited. */
export interface Step {
  readonly name: string;
  readonly op: Operation;
  readonly issuedAt: number;
  readonly returnedAt: number;
}

/** One recorded reply (rcode "TIMEOUT" when none came). `addresses` are the answer's A or AAAA records. */
export interface Answer {
  readonly name: string;
  readonly type: 'A' | 'AAAA';
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly rcode: string;
  readonly addresses: readonly string[];
}

export interface Bounds {
  /** After `lxc stop` returns, lexa may name the instance for at most this long. */
  readonly stopBoundMs: number;
  /** After `lxc start` returns, lexa must name it (A and AAAA) within this. */
  readonly startBoundMs: number;
}

export type Fault = 'timeout' | 'rcode' | 'foreign-address' | 'stale' | 'missing';

export interface Violation {
  readonly fault: Fault;
  readonly answer: Answer;
  /** The step the verdict leans on (the stop or start it was settled after), if any. */
  readonly after?: Step;
}

export interface Verdict {
  readonly answers: number;
  readonly violations: readonly Violation[];
  /** Per stop: how long after `lxc stop` returned the last reply naming the instance was received (0: none after). */
  readonly stopLagsMs: readonly number[];
  /**
   * Per start issued while recording: how long after `lxc start` returned the first A reply (to a query sent after
   * it) naming the instance was received. Starts before the first query (the launches) have none.
   */
  readonly startLagsMs: readonly number[];
}

/** Each instance's steps, in the order they were issued. */
function timelines(steps: readonly Step[]): Map<string, Step[]> {
  const by = new Map<string, Step[]>();
  for (const s of steps) {
    const list = by.get(s.name) ?? [];
    list.push(s);
    by.set(s.name, list);
  }
  for (const list of by.values()) list.sort((a, b) => a.issuedAt - b.issuedAt);
  return by;
}

/** The last step of `list` issued at or before `t`, and the first issued after it. */
function around(list: readonly Step[], t: number): { last?: Step; next?: Step } {
  let last: Step | undefined;
  for (const s of list) {
    if (s.issuedAt > t) return { ...(last ? { last } : {}), next: s };
    last = s;
  }
  return last ? { last } : {};
}

/**
 * Judges every answer. `steps` must include, per instance, the step that brought it into its state at the start of
 * the recording (its launch, as a `start`). `known` maps each instance to every address LXD reported for it.
 */
export function judge(steps: readonly Step[], answers: readonly Answer[], known: ReadonlyMap<string, ReadonlySet<string>>, bounds: Bounds): Verdict {
  const lines = timelines(steps);
  const violations: Violation[] = [];
  const lastNamed = new Map<Step, number>();
  const firstNamed = new Map<Step, number>();
  for (const a of answers) {
    if (a.rcode === 'TIMEOUT') {
      violations.push({ fault: 'timeout', answer: a });
      continue;
    }
    if (a.rcode !== 'NOERROR' && a.rcode !== 'NXDOMAIN') {
      violations.push({ fault: 'rcode', answer: a });
      continue;
    }
    const mine = known.get(a.name) ?? new Set<string>();
    if (a.addresses.some((x) => !mine.has(x))) {
      violations.push({ fault: 'foreign-address', answer: a });
      continue;
    }
    const { last, next } = around(lines.get(a.name) ?? [], a.sentAt);
    // Settled throughout [sentAt, receivedAt]: the last step returned before the send, the next not issued before receipt.
    if (last === undefined || last.returnedAt > a.sentAt || (next !== undefined && next.issuedAt <= a.receivedAt)) continue;
    const named = a.addresses.length > 0;
    if (last.op === 'stop' && named) {
      lastNamed.set(last, Math.max(lastNamed.get(last) ?? -Infinity, a.receivedAt - last.returnedAt));
      if (a.sentAt - last.returnedAt >= bounds.stopBoundMs) violations.push({ fault: 'stale', answer: a, after: last });
    }
    if (last.op === 'start') {
      if (named && a.type === 'A' && !firstNamed.has(last)) firstNamed.set(last, a.receivedAt - last.returnedAt);
      if (!named && a.sentAt - last.returnedAt >= bounds.startBoundMs) violations.push({ fault: 'missing', answer: a, after: last });
    }
  }
  const stops = steps.filter((s) => s.op === 'stop');
  const recordingFrom = Math.min(...answers.map((a) => a.sentAt));
  return {
    answers: answers.length,
    violations,
    stopLagsMs: stops.map((s) => lastNamed.get(s) ?? 0),
    startLagsMs: [...firstNamed].filter(([s]) => s.issuedAt >= recordingFrom).map(([, lag]) => lag),
  };
}
