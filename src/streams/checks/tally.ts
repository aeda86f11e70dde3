import type { CheckStatus, ServiceCheck } from '../model/model.js';

/** A check's status and its run of consecutive like results: what the thresholds are applied to. */
export interface Tally {
  readonly status: CheckStatus;
  readonly successes: number;
  readonly failures: number;
}

/** What one run says about the service: it answered, it did not, or lexa could not reach it to ask (reach.ts). */
export type Outcome = 'success' | 'failure' | 'unreachable';

/** Where a new check starts: critical (Consul's rule), with nothing counted. */
export const NEW_TALLY: Tally = Object.freeze({ status: 'critical', successes: 0, failures: 0 });

/**
 * The tally after one more run, as the agent applies its thresholds: `failuresBeforeCritical` consecutive
 * failures turn a served check (passing, or unreachable and so served unchecked) critical; `successBeforePassing`
 * consecutive successes turn a critical one passing. An unreachable run says nothing about the service: the check
 * becomes unreachable at once, counting nothing, and its next success makes it passing again. Pure.
 */
export function tally(prev: Tally, outcome: Outcome, check: ServiceCheck): Tally {
  if (outcome === 'unreachable') return { status: 'unreachable', successes: 0, failures: 0 };
  if (outcome === 'success') {
    const successes = prev.successes + 1;
    const passes = prev.status === 'unreachable' || (prev.status === 'critical' && successes >= check.successBeforePassing);
    return { status: passes ? 'passing' : prev.status, successes, failures: 0 };
  }
  const failures = prev.failures + 1;
  const fails = prev.status !== 'critical' && failures >= check.failuresBeforeCritical;
  return { status: fails ? 'critical' : prev.status, successes: 0, failures };
}
