import type { Logger } from '../../log/index.js';
import type { Instance } from '../model/model.js';

/**
 * Logs every config problem (an ignored service key, a bad label) of `instances`, once per problem. The
 * reflector calls it for every list, and for a single re-read only when that instance's problems changed
 * (`logChangedProblems`), so a steady instance is not logged on every event about it.
 */
export function logProblems(log: Logger, instances: readonly Instance[]): void {
  for (const inst of instances) {
    for (const problem of inst.configErrors) log.warn('instance service config ignored', { instance: inst.key, problem });
  }
}

/** Logs `after`'s config problems if they differ from those `before` (the stored copy, if any) had. */
export function logChangedProblems(log: Logger, before: Instance | undefined, after: Instance): void {
  if (after.configErrors.join() !== before?.configErrors.join()) logProblems(log, [after]);
}
