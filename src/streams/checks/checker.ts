import type { Logger } from '../../log/index.js';
import { realClock, type Clock } from '../../time/clock.js';
import { declaredServices } from '../model/agents.js';
import { checkOf, checkTarget, type CheckTarget } from '../model/health.js';
import type { CheckResult, CheckStatus, Instance, Service, ServiceCheck } from '../model/model.js';
import type { Action } from '../state/fold.js';
import type { View } from '../state/view.js';
import { probe as realProbe, type Probe, type ProbeResult } from './probes.js';
import { hostNetworks, UNREACHABLE_CODES, unreachableReason, type HostNetworks } from './reach.js';
import { NEW_TALLY, tally, type Outcome, type Tally } from './tally.js';

/**
 * Runs the server-side checks that `user.lexa.service.<name>.check` keys declare, and turns what they see into
 * `check` actions. It only reads snapshots and dispatches; the fold decides what is served (health.ts).
 *
 * Contract:
 * - one scheduled check per (instance, service, target): the service's port at the first address LXD vouches
 *   for on its interface. A new check's first run falls at a random point of its first second
 *   (FIRST_RUN_WINDOW_MS), so a new service, or every service after lexa restarts, is served within about a
 *   second of its server answering rather than up to an interval later. Its second run falls at a random point
 *   of the interval after that (jitter): every check settles on a phase of its own, so thousands of services
 *   run evenly spread over the interval instead of in step; then it runs every interval (fixed rate). The first
 *   runs of a mass arrival are bounded by the in-flight limit below, not by time.
 * - at most `maxInFlight` runs at once (MAX_IN_FLIGHT); a turn that finds no free slot waits in line. A check
 *   whose previous run is still running or waiting when its next turn comes skips that turn (counted), so a slow
 *   target or a saturated host never stacks runs.
 * - a run not done within the check's timeout fails ("timed out") and is aborted.
 * - thresholds as the agent applies them: `check_failures_before_critical` consecutive failures withdraw a served
 *   service, `check_success_before_passing` consecutive successes serve a critical one. A new check starts
 *   critical (unpublished, so not served) and its first run publishes its state.
 * - only changes are dispatched (status or output line), so snapshots, documents and blocking queries move when a
 *   check's state does, not on every run.
 * - a check lexa cannot run from this host is `unreachable` (reach.ts): served, with the reason as its output.
 */

/** How many checks may run at once: enough for 1,000 services at 10 s with a 2 s timeout, few enough that a mass failure (every run waiting its full timeout) holds at most this many sockets. */
export const MAX_IN_FLIGHT = 64;
/**
 * A new check's first run falls within this (or its interval, when shorter): soon enough that a launched
 * container's service, or every service after a restart, does not wait a whole interval to be served (services
 * start critical), spread enough that a list of thousands does not start them in one instant.
 */
export const FIRST_RUN_WINDOW_MS = 1_000;

export interface CheckerOptions {
  /** Where `check` actions go (the store's dispatch). */
  readonly dispatch: (action: Action) => void;
  readonly clock?: Clock;
  /** Numbers in [0, 1) placing each new check's first and second runs (jitter); Math.random by default. */
  readonly random?: () => number;
  readonly probe?: Probe;
  readonly maxInFlight?: number;
  /** This host's networks (reach.ts); os.networkInterfaces() by default. */
  readonly hostNetworks?: () => HostNetworks;
  readonly log?: Logger;
}

/** Running totals and levels, read by the metrics at scrape time. */
export interface CheckCounters {
  /** Runs finished (probes answered or timed out), plus turns found unreachable without a probe. */
  runs: number;
  /** Runs that failed (unreachable ones excluded). */
  failures: number;
  /** Turns skipped because the previous run was still running or waiting for a slot. */
  skipped: number;
  /** Runs in progress now. */
  inFlight: number;
  /** Turns waiting for a slot now. */
  waiting: number;
  /** Checks scheduled now. */
  scheduled: number;
}

interface Scheduled {
  readonly id: string;
  /** The instance key and lower-cased service name the results are for. */
  readonly key: string;
  readonly service: string;
  readonly check: ServiceCheck;
  readonly target: CheckTarget;
  /** The instance as last observed (its location decides reach.ts rule 2). */
  instance: Instance;
  timer: unknown;
  /** A run is in progress or waiting for a slot. */
  busy: boolean;
  stopped: boolean;
  /** Why lexa cannot run it from here (reach.ts rules 1 and 2); undefined when it can. */
  unreachable: string | undefined;
  tally: Tally;
  /** What was last dispatched, so unchanged runs are not. */
  published: { status: CheckStatus; output: string } | undefined;
}

export class Checker {
  readonly #dispatch: (action: Action) => void;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #probe: Probe;
  readonly #max: number;
  readonly #hostNetworks: () => HostNetworks;
  readonly #log: Logger | undefined;
  readonly #checks = new Map<string, Scheduled>();
  readonly #line: Scheduled[] = [];
  readonly #running = new Set<AbortController>();
  #instances: unknown;
  #host: HostNetworks | undefined;
  readonly #counters: CheckCounters = { runs: 0, failures: 0, skipped: 0, inFlight: 0, waiting: 0, scheduled: 0 };

  constructor(opts: CheckerOptions) {
    this.#dispatch = opts.dispatch;
    this.#clock = opts.clock ?? realClock;
    this.#random = opts.random ?? Math.random;
    this.#probe = opts.probe ?? realProbe;
    this.#max = opts.maxInFlight ?? MAX_IN_FLIGHT;
    this.#hostNetworks = opts.hostNetworks ?? hostNetworks;
    this.#log = opts.log;
  }

  /**
   * Brings the scheduled checks in line with `snap`: new ones start, removed or changed ones stop (their last
   * state stays in the snapshot until the instance drops it). O(running instances + services); returns at once
   * when the instances have not changed since the last call, so it can follow every snapshot.
   */
  observe(snap: View): void {
    if (!snap.synced || snap.instances === this.#instances) return;
    this.#instances = snap.instances;
    const host = this.#hostNetworks();
    const hostChanged = JSON.stringify(host) !== JSON.stringify(this.#host);
    this.#host = host;
    const wanted = new Map<string, { inst: Instance; service: Service; target: CheckTarget }>();
    for (const inst of snap.running()) {
      const names = new Set<string>();
      for (const service of declaredServices(inst)) {
        const name = service.name.toLowerCase();
        // tcp and udp entries of one service share its name, port and check: one check serves both.
        if (service.check === undefined || names.has(name)) continue;
        names.add(name);
        const target = checkTarget(inst, service);
        if (target !== undefined) wanted.set(idOf(inst.key, name, target, service.check), { inst, service, target });
      }
    }
    for (const [id, c] of this.#checks) if (!wanted.has(id)) this.#stop(c);
    for (const [id, { inst, service, target }] of wanted) {
      const existing = this.#checks.get(id);
      if (existing !== undefined) {
        if (hostChanged || existing.instance.location !== inst.location) existing.unreachable = unreachableReason(inst, target.address, host, snap.clusterOf(inst));
        existing.instance = inst;
        continue;
      }
      this.#start(id, inst, service, target, snap);
    }
    this.#counters.scheduled = this.#checks.size;
  }

  /** The running totals and levels, live (the metrics read them at scrape time). */
  get counters(): Readonly<CheckCounters> {
    return this.#counters;
  }

  /** Stops every check; runs in progress are aborted and their results dropped. */
  stop(): void {
    for (const c of this.#checks.values()) this.#stop(c);
    for (const controller of this.#running) controller.abort();
    this.#line.length = 0;
    this.#counters.waiting = 0;
    this.#counters.scheduled = 0;
  }

  #start(id: string, inst: Instance, service: Service, target: CheckTarget, snap: View): void {
    const check = service.check!;
    const name = service.name.toLowerCase();
    // A check replaced (its interval changed, say) carries on from the state the snapshot holds for its target.
    const known = checkOf(snap.checks.get(inst.key), name);
    const carried = known?.target === target.target ? known : undefined;
    const c: Scheduled = {
      id,
      key: inst.key,
      service: name,
      check,
      target,
      instance: inst,
      timer: undefined,
      busy: false,
      stopped: false,
      unreachable: unreachableReason(inst, target.address, this.#host!, snap.clusterOf(inst)),
      tally: carried === undefined ? NEW_TALLY : { status: carried.status, successes: 0, failures: 0 },
      published: carried && { status: carried.status, output: carried.output },
    };
    this.#checks.set(id, c);
    // The second turn comes a timeout plus a random part of the interval after the first: a uniformly random
    // phase, and never before the first run could have ended.
    const second = check.timeoutMs + Math.floor(this.#random() * check.intervalMs);
    this.#after(c, Math.floor(this.#random() * Math.min(FIRST_RUN_WINDOW_MS, check.intervalMs)), () => {
      this.#after(c, second, () => {
        c.timer = this.#clock.setInterval(() => this.#turn(c), check.intervalMs);
        this.#clock.unref(c.timer);
      });
    });
  }

  /** Takes check `c`'s turn after `ms`, then calls `next` (unless the check stopped meanwhile). */
  #after(c: Scheduled, ms: number, next: () => void): void {
    c.timer = this.#clock.setTimeout(() => {
      if (c.stopped) return;
      next();
      this.#turn(c);
    }, ms);
    this.#clock.unref(c.timer);
  }

  #stop(c: Scheduled): void {
    c.stopped = true;
    this.#clock.clearTimeout(c.timer);
    this.#clock.clearInterval(c.timer);
    this.#checks.delete(c.id);
  }

  #turn(c: Scheduled): void {
    if (c.stopped) return;
    if (c.busy) {
      this.#counters.skipped++;
      return;
    }
    if (c.unreachable !== undefined) {
      this.#counters.runs++;
      this.#record(c, c.unreachable, 'unreachable');
      return;
    }
    c.busy = true;
    this.#line.push(c);
    this.#counters.waiting = this.#line.length;
    this.#pump();
  }

  /** Starts waiting runs while slots are free. */
  #pump(): void {
    while (this.#counters.inFlight < this.#max && this.#line.length > 0) {
      const c = this.#line.shift()!;
      if (!c.stopped) this.#run(c);
    }
    this.#counters.waiting = this.#line.length;
  }

  #run(c: Scheduled): void {
    this.#counters.inFlight++;
    const controller = new AbortController();
    this.#running.add(controller);
    let finished = false;
    const finish = (result: ProbeResult, timedOut: boolean) => {
      if (finished) return;
      finished = true;
      this.#clock.clearTimeout(timeout);
      this.#running.delete(controller);
      // Only a run cut short needs telling: a settled probe holds nothing (and an abort costs a DOMException).
      if (timedOut) controller.abort();
      this.#counters.inFlight--;
      this.#counters.runs++;
      c.busy = false;
      const outcome = result.ok ? 'success' : result.code !== undefined && UNREACHABLE_CODES.has(result.code) ? 'unreachable' : 'failure';
      if (outcome === 'failure') this.#counters.failures++;
      if (!c.stopped) this.#record(c, result.output, outcome);
      this.#pump();
    };
    const what = c.check.kind === 'tcp' ? 'TCP connect' : 'HTTP GET';
    const timeout = this.#clock.setTimeout(() => finish({ ok: false, output: `${what} ${c.target.target}: timed out after ${c.check.timeoutMs}ms` }, true), c.check.timeoutMs);
    this.#clock.unref(timeout);
    this.#probe(c.check.kind, c.target, controller.signal).then(
      (result) => finish(result, false),
      (err: unknown) => finish({ ok: false, output: `${what} ${c.target.target}: ${String(err).slice(0, 120)}` }, false),
    );
  }

  /** Applies one run's outcome to the thresholds (tally.ts) and dispatches the state when it changed. */
  #record(c: Scheduled, output: string, outcome: Outcome): void {
    c.tally = tally(c.tally, outcome, c.check);
    const status = c.tally.status;
    if (c.published?.status === status && c.published.output === output) return;
    if (c.published?.status !== status) this.#log?.info('check state changed', { instance: c.key, service: c.service, status, output });
    c.published = { status, output };
    const at = this.#clock.now();
    const state: CheckResult = { target: c.target.target, status, output, at };
    this.#dispatch({ type: 'check', key: c.key, service: c.service, result: state, at });
  }
}

/** A check's identity: a change to any of these is a different check (the old one stops, the new one starts). */
function idOf(key: string, name: string, target: CheckTarget, check: ServiceCheck): string {
  return `${key}\u0000${name}\u0000${target.target}\u0000${check.intervalMs}/${check.timeoutMs}/${check.failuresBeforeCritical}/${check.successBeforePassing}`;
}
