import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const DOCS = join(import.meta.dirname, '..', '..', 'docs');

/**
 * The first fenced `lang` block of the section headed `## <heading>` in `docs/<page>`, up to the next `## `
 * heading; undefined when the page has no such section or the section no such block. Tests load the examples
 * the pages show, so a page cannot drift from what lexa accepts.
 */
export function docExample(page: string, heading: string, lang = 'hcl'): string | undefined {
  const text = readFileSync(join(DOCS, page), 'utf8');
  const start = text.indexOf(`\n## ${heading}\n`);
  if (start < 0) return undefined;
  const next = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, next < 0 ? undefined : next);
  return new RegExp('```' + lang + '\\n([^]*?)```').exec(section)?.[1];
}
