import type { Instance } from './model.js';

/**
 * Where an instance's own names live: `<site>.<suffix>` for an instance of a named site (so PTR, SRV targets, the
 * zone and REST documents name its site, whichever site an unqualified question was answered from), else the
 * suffix itself (docs/sites.md).
 */
export function siteZone(inst: Instance, suffix: string): string {
  return inst.site === undefined ? suffix : `${inst.site}.${suffix}`;
}
