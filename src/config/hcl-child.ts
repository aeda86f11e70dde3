/**
 * The program parseHcl (load.ts) runs in a short-lived child process: it parses one HCL2 file and prints
 * `{"ok": <json>}` or `{"error": "..."}` on stdout. The parser (@cdktn/hcl2json, HashiCorp's own HCL2 compiled to
 * WASM) gives the best error messages of the HCL2 parsers on npm (`file:line,col: message`), but its first use
 * costs ~0.2 s (CHILD_FLAGS) and ~90 MB that a worker thread does not give back; a child process returns all of
 * it to the system when it exits, so the daemon never holds it.
 *
 * The program is JavaScript handed to `node -e`, not a module file, so it runs the same from dist and from source
 * with no loader: a TypeScript child run from source had to inherit the parent's loader flags, which under tap
 * (its TypeScript loader and process tracking) cost ~0.8 s of CPU per parse on top of the parser's own ~0.2 s.
 */
const PROGRAM = `
import { readFile } from 'node:fs/promises';
import { parse } from PARSER;
const file = process.argv[1];
try {
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(file + ': cannot read: ' + (err.code ?? String(err)));
  }
  process.stdout.write(JSON.stringify({ ok: await parse(file, text) }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
}
`;

/**
 * V8 flags for the child. `--liftoff-only`: the parser's WASM runs on V8's baseline compiler only. By default V8
 * also recompiles the hot part of the module with its optimising compiler, on other threads, which a parse that
 * lasts a fraction of a second never repays: measured here (Node 20, five parses in a row, CPU of the children),
 * a small file 0.57 → 0.24 s of CPU and 380 → 210 ms of wall time per parse; a 158 KB file 0.86 → 0.34 s, 540 →
 * 310 ms.
 */
const CHILD_FLAGS = ['--liftoff-only'];

/** The `node` arguments that parse `file`: the program, with the parser resolved from here (the child's cwd may be anywhere). */
export function hclChildArgs(file: string): string[] {
  const program = PROGRAM.replace('PARSER', JSON.stringify(import.meta.resolve('@cdktn/hcl2json')));
  return [...CHILD_FLAGS, '--input-type=module', '--eval', program, file];
}
