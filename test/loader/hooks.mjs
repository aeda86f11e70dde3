// Module hooks that run the repository's TypeScript with each file transpiled once, not once per process.
//
// Why: tap starts every test file in its own node process, and its TypeScript loader (ts-node, transpile-only)
// transpiles every imported file again in each one: ~2 s of CPU per test file before the first assertion
// (`node --import <loader> test/dns/resolve.test.ts`: 3.1 s user with ts-node transpile-only, 1.0 s with this cache
// warm), which across the 47 files of `npm run test:unit` was most of its time. Here a file's JavaScript is kept under CACHE_DIR, named
// by a hash of everything the output depends on, so each version of a file is transpiled once for all processes.
//
// The output is what ts-node's transpile-only mode gives (TypeScript's transpileModule with the project's
// compiler options), the module URL stays the .ts file's (import.meta.url and the relative paths tests build from
// it are unchanged), and an inline source map keeps stack traces on the TypeScript lines.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSCONFIG = join(ROOT, 'tsconfig.json');
/**
 * Inside the repository and ignored by git. Entries are never pruned (a few MB per version of the whole tree);
 * deleting the folder at any time only costs the next run one transpile per file.
 */
const CACHE_DIR = join(ROOT, '.cache', 'ts');
/** Bump when this file changes what it writes, so old entries stop matching. */
const FORMAT = 'lexa-ts-cache-1';

const require = createRequire(TSCONFIG);
/** The compiler and its options, loaded only when a file is not in the cache yet (loading costs ~0.3 s). */
let compiler;
/** The hash input every file shares: the cache format, the compiler's version and the project's options. */
const sharedKey = [
  FORMAT,
  JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version,
  readFileSync(TSCONFIG, 'utf8'),
].join('\0');

/** NodeNext sources import `./x.js` for `./x.ts`: point such a specifier at the .ts file when no .js exists. */
export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent?.endsWith('.ts') && /^\.{1,2}\//.test(specifier) && specifier.endsWith('.js')) {
    const url = new URL(specifier, parent);
    if (url.protocol === 'file:' && !existsSync(fileURLToPath(url))) {
      const ts = new URL(url.href.replace(/\.js$/, '.ts'));
      if (existsSync(fileURLToPath(ts))) return next(ts.href, context);
    }
  }
  return next(specifier, context);
}

/** A .ts file outside node_modules loads as the ES module its cached transpilation holds. */
export async function load(url, context, next) {
  if (!url.startsWith('file:') || !url.endsWith('.ts') || url.includes('/node_modules/')) return next(url, context);
  const file = fileURLToPath(url);
  const source = readFileSync(file, 'utf8');
  const key = createHash('sha256').update(sharedKey).update('\0').update(file).update('\0').update(source).digest('hex');
  const cached = join(CACHE_DIR, `${key}.js`);
  let output;
  try {
    output = readFileSync(cached, 'utf8');
  } catch {
    output = transpile(source, file);
    store(cached, output);
  }
  return { format: 'module', source: output, shortCircuit: true };
}

function transpile(source, file) {
  compiler ??= loadCompiler();
  return compiler.ts.transpileModule(source, { fileName: file, compilerOptions: compiler.options }).outputText;
}

function loadCompiler() {
  const ts = require('typescript');
  const raw = ts.readConfigFile(TSCONFIG, ts.sys.readFile).config?.compilerOptions ?? {};
  const { options } = ts.convertCompilerOptionsFromJson(raw, ROOT);
  // The package is "type": "module", so every .ts file is an ES module; transpileModule cannot see package.json
  // to infer that from NodeNext, so it is said here. Source maps go inline: the output is not a file of its own.
  return { ts, options: { ...options, module: ts.ModuleKind.ESNext, sourceMap: false, inlineSourceMap: true, inlineSources: true, declaration: false } };
}

/** Writes through a private temporary name and a rename, so a process reading the entry sees all of it or none. */
function store(path, text) {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
}
