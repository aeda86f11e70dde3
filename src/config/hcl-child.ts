/**
 * Runs in a short-lived child process: parses one HCL2 file and prints `{"ok": <json>}` or `{"error": "..."}` on
 * stdout. The parser (@cdktn/hcl2json, HashiCorp's own HCL2 compiled to WASM) gives the best error messages of the
 * HCL2 parsers on npm (`file:line,col: message`), but its first use costs ~0.4 s and ~90 MB that a worker thread
 * does not give back; a child process returns all of it to the system when it exits, so the daemon never holds it.
 */
import { readFile } from 'node:fs/promises';
import { parse } from '@cdktn/hcl2json';

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error('usage: hcl-child <file>');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const json = await parse(file, text);
  process.stdout.write(JSON.stringify({ ok: json }));
}

main().catch((err: unknown) => {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
});
