import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { readAgentSettings } from '../../src/agent/schema.js';
import { parseHcl } from '../../src/config/load.js';
import { readSettings } from '../../src/config/schema.js';

// Every HCL example of the README and of docs/ parses and names only keys and values the schemas accept (the
// server's `server { }` file or the agent's `agent { }` file), so no page can show a key lexa would reject.
// Files the examples name (certificates, keys) are not checked here: the pages name placeholders. The examples
// a page explains value by value are loaded in full by their own tests (security-edns-doc, fairness, check-config).

const ROOT = join(import.meta.dirname, '..', '..');
const PAGES = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const HCL_BLOCK = /^```hcl\n([^]*?)^```/gm;
const dir = mkdtempSync(join(tmpdir(), 'lexa-doc-examples-'));

const examples = PAGES.flatMap((page) => {
  const text = readFileSync(join(ROOT, page), 'utf8');
  return [...text.matchAll(HCL_BLOCK)].map((m) => ({
    where: `${page}:${text.slice(0, m.index).split('\n').length}`,
    hcl: m[1]!,
  }));
});

t.ok(examples.length >= 10, `the pages hold their HCL examples (${examples.length} found)`);

for (const [i, { where, hcl }] of examples.entries()) {
  t.test(`the example at ${where} is a valid lexa file`, async (t) => {
    const file = join(dir, `example-${i}.hcl`);
    writeFileSync(file, hcl);
    const json = (await parseHcl(file)) as Record<string, unknown>;
    const keys = Object.keys(json);
    t.ok(keys.length === 1 && (keys[0] === 'server' || keys[0] === 'agent'), `one server { } or agent { } block: ${keys.join(', ')}`);
    const { problems } = keys[0] === 'agent' ? readAgentSettings(json) : readSettings(json);
    t.same(problems, [], hcl);
  });
}
