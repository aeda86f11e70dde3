import { readFileSync } from 'node:fs';

/** lexa's version, from the package.json it ships with (dist/ and src/ both sit beside it). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
