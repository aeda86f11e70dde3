import type { Settings } from './schema.js';

/** The zone's suffix when no `lxd` block gives one. */
export const DEFAULT_SUFFIX = 'lexa';

/**
 * Labels a site may not take: the words of the zone's own grammar (dns/name.ts). A site named `service` would
 * make `web.service.<suffix>` both host `web` of site `service` and service `web`; `if`, `interface` and
 * `cluster` likewise shadow interface and member names.
 */
export const RESERVED_SITE_LABELS: ReadonlySet<string> = new Set(['service', 'if', 'interface', 'cluster']);

/**
 * The rules across `lxd` blocks (each problem names its block as `server.lxd[i]`): with more than one block,
 * every block names its site; names are distinct and none is a reserved word nor a project a block selects;
 * blocks that give the suffix agree (one zone holds every site).
 */
export function siteProblems(blocks: Settings['server']['lxd']): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const suffixes = new Set<string>();
  blocks.forEach((b, i) => {
    const at = `server.lxd[${i}]`;
    if (b.suffix !== null) suffixes.add(b.suffix);
    if (b.name === null) {
      if (blocks.length > 1) problems.push(`${at}.name: required when there is more than one lxd block (each block is a site)`);
      return;
    }
    if (RESERVED_SITE_LABELS.has(b.name)) problems.push(`${at}.name: "${b.name}" is a word of the zone's names (${[...RESERVED_SITE_LABELS].join(', ')}); choose another`);
    if (seen.has(b.name)) problems.push(`${at}.name: site "${b.name}" is named twice`);
    seen.add(b.name);
  });
  // A site label is read before a project label (dns/name.ts): a site named like a project another block
  // selects would hide that project's names behind the site's.
  for (const b of blocks)
    if (b.name !== null && !b.all_projects && b.project !== 'default' && blocks.some((o) => o.name === b.project))
      problems.push(`server.lxd.project: "${b.project}" is also a site's name; a project label and a site label must differ`);
  if (suffixes.size > 1) problems.push(`server.lxd.suffix: the blocks disagree (${[...suffixes].map((s) => `"${s}"`).join(', ')}); one zone holds every site`);
  return problems;
}
