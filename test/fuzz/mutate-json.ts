import type { Rng } from './random.js';

/**
 * A structure-aware mutator for JSON-shaped input (agent messages, LXD API answers and events, parsed HCL): one
 * value somewhere in the tree replaced by a value of another type, an edge value, a huge array or string, or a key
 * added or removed. The input is not changed; a changed deep copy is returned.
 */

/** Values that break code which trusts a field's type or size. */
function oddValue(rng: Rng): unknown {
  switch (rng.int(16)) {
    case 0: return null;
    case 1: return -1;
    case 2: return 2 ** 53 + 2;
    case 3: return 1.5;
    case 4: return '';
    case 5: return 'x'.repeat(rng.pick([64, 256, 70_000]));
    case 6: return [];
    case 7: return {};
    case 8: return Array.from({ length: rng.pick([300, 5_000]) }, (_, i) => (rng.chance(0.5) ? i : `v${i}`));
    case 9: return true;
    case 10: return '__proto__';
    case 11: return 'a\u0000b\n\u2028c';
    case 12: return '999.999.999.999';
    case 13: return '::ffff:10.0.0.1';
    case 14: return { __proto__: { polluted: true }, toString: 1 };
    default: return rng.pick(['-', '.', '*', 'ÄÖÜ', '../../etc', 'fe80::1%eth0', '10.0.0.1/33', '0', 'NaN']);
  }
}

/** Every [container, key] pair in the tree, container first. */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 12 || out.length > 2_000) return;
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), walk(x, depth + 1)));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) out.push([v as Record<string, unknown>, k]), walk(x, depth + 1);
  };
  walk(root, 0);
  return out;
}

export function mutateJson(rng: Rng, input: unknown): unknown {
  const copy = structuredClone(input) as unknown;
  let root: unknown = copy;
  for (let k = 1 + (rng.chance(0.3) ? rng.int(3) : 0); k > 0; k--) {
    const all = slots(root);
    if (all.length === 0) return oddValue(rng);
    const [box, key] = rng.pick(all);
    const obj = box as Record<string | number, unknown>;
    switch (rng.int(5)) {
      case 0:
        if (Array.isArray(box)) box.splice(key as number, 1);
        else delete obj[key];
        break;
      case 1:
        if (Array.isArray(box)) box.push(...Array.from({ length: rng.pick([1, 2, 50]) }, () => structuredClone(box[key as number])));
        else obj[`${String(key)}_${rng.int(3)}`] = oddValue(rng);
        break;
      case 2:
        if (rng.chance(0.1)) root = oddValue(rng);
        else obj[key] = oddValue(rng);
        break;
      default:
        obj[key] = oddValue(rng);
    }
  }
  return root;
}
