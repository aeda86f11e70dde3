import type { Instance } from '../model/model.js';
import type { View } from './view.js';

/**
 * The alias conflicts in a view, each as one sentence (stable: the same conflict gives the same text, so the
 * daemon logs each once): an alias that is also a running instance's name in the same site (the instance's
 * name wins: the alias never answers there), and an alias several running instances of one site claim (the
 * smallest key answers: dns/resolve.ts `aliasTarget`). O(running instances × their aliases); the daemon runs it
 * at most once a second, off the query path.
 */
export function aliasConflicts(view: View): string[] {
  const out: string[] = [];
  const claims = new Map<string, Instance[]>();
  for (const inst of view.running()) {
    for (const alias of inst.aliases ?? []) {
      const key = `${inst.site ?? ''}\u0000${alias}`;
      const list = claims.get(key);
      if (list === undefined) claims.set(key, [inst]);
      else list.push(inst);
    }
  }
  for (const [key, list] of claims) {
    const alias = key.slice(key.indexOf('\u0000') + 1);
    const site = list[0]!.site;
    const where = site === undefined ? '' : ` in site ${site}`;
    if (view.hosts(alias).some((i) => i.site === site))
      out.push(`alias "${alias}"${where} is also an instance's name; the instance answers (claimed by ${list.map((i) => i.key).sort().join(', ')})`);
    else if (list.length > 1) {
      const keys = list.map((i) => i.key).sort();
      out.push(`alias "${alias}"${where} is claimed by ${keys.join(', ')}; ${keys[0]} answers`);
    }
  }
  return out.sort();
}
