// The import graph of src/, read from the TypeScript syntax tree (not from regular expressions), so tests can hold
// the layering rule: data flows one way, and no module reaches (even indirectly) back to itself.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** How one module refers to another: `static` is a top-level import/export of values, `type` is erased at
 *  compile time (`import type`, `export type`), `dynamic` is an `import()` expression evaluated on demand. */
export type EdgeKind = 'static' | 'type' | 'dynamic';

export interface Edge {
  readonly from: string;
  readonly to: string;
  readonly kind: EdgeKind;
}

/** Every .ts file under `root`, as paths relative to `root` with forward slashes (e.g. `dns/zone.ts`). */
function sourceFiles(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(root, full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(relative(root, full).split('\\').join('/'));
  }
  return out.sort();
}

/** A relative specifier (`../x.js`) as a path under `root` (`x.ts`); packages and node: builtins give undefined. */
function localTarget(root: string, from: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const abs = resolve(root, dirname(from), specifier).replace(/\.js$/, '.ts');
  return relative(root, abs).split('\\').join('/');
}

/** Every import edge between files under `root`, plus the packages each file names (`packages`). A declaration
 *  whose every binding is `type` counts as a type edge, since the compiler erases it. */
export function importGraph(root: string): { files: string[]; edges: Edge[]; packages: Map<string, Set<string>> } {
  const files = sourceFiles(root);
  const edges: Edge[] = [];
  const packages = new Map<string, Set<string>>();
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
    const note = (specifier: string, kind: EdgeKind): void => {
      const to = localTarget(root, file, specifier);
      if (to !== undefined) edges.push({ from: file, to, kind });
      else if (kind !== 'type') {
        const set = packages.get(file) ?? new Set<string>();
        set.add(specifier);
        packages.set(file, set);
      }
    };
    const visit = (node: ts.Node): void => {
      if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
        note(node.moduleSpecifier.text, importIsTypeOnly(node) ? 'type' : 'static');
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
        note(node.moduleSpecifier.text, exportIsTypeOnly(node) ? 'type' : 'static');
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const [arg] = node.arguments;
        if (arg && ts.isStringLiteralLike(arg)) note(arg.text, 'dynamic');
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return { files, edges, packages };
}

function importIsTypeOnly(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x.js'` runs the module for its effects
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  if (!bindings || ts.isNamespaceImport(bindings)) return false;
  return bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

function exportIsTypeOnly(node: ts.ExportDeclaration): boolean {
  if (node.isTypeOnly) return true;
  const clause = node.exportClause;
  if (!clause || !ts.isNamedExports(clause)) return false;
  return clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly);
}

/** The strongly connected components with more than one file (or a file importing itself), each sorted: every
 *  such component is an import cycle. Tarjan's algorithm over the edges whose kind is in `kinds`. */
export function importCycles(graph: { files: string[]; edges: Edge[] }, kinds: ReadonlySet<EdgeKind>): string[][] {
  const next = new Map<string, string[]>();
  for (const e of graph.edges) {
    if (!kinds.has(e.kind)) continue;
    next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    const selfLoop = (next.get(v) ?? []).includes(v);
    if (component.length > 1 || selfLoop) cycles.push(component.sort());
  };
  for (const file of graph.files) if (!index.has(file)) connect(file);
  return cycles.sort((a, b) => b.length - a.length);
}
