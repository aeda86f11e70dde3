import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '@cdktn/hcl2json';
import { agentFromParsed } from '../../../src/agent/config.js';
import { ConfigError, fromParsed, hclProblems } from '../../../src/config/load.js';
import { check, within, type Target } from '../harness.js';
import { mutateText } from '../mutate.js';
import { mutateJson } from '../mutate-json.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Every example configuration: the server's and the agent's. */
const EXAMPLES = ['examples/lexa.hcl', 'examples/knot/lexa.hcl', 'examples/unbound/lexa.hcl', 'examples/systemd/lexa.hcl', 'examples/agent/agent.hcl'];
/** Share of cases parsed as HCL text (~9 ms each with the WASM parser); the rest mutate the parsed JSON (µs). */
const TEXT_SHARE = 0.25;
/** Every this many cases, the case's file also goes through the real `lexa check-config` (a process each). */
const CLI_EVERY = 2_000;
const CLI_DEADLINE_MS = 20_000;

/** A problem as the loader promises it: non-empty, naming the file, no stack trace. */
function checkProblems(err: unknown, file: string): void {
  check(err instanceof ConfigError, `not a ConfigError: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  check(err.problems.length > 0, 'a ConfigError with no problem');
  for (const p of err.problems) {
    check(typeof p === 'string' && p.startsWith(file) && p.length > file.length + 2, `a problem that does not name the file: ${p.slice(0, 120)}`);
    check(!/\n\s+at /.test(p), `a stack trace in a problem: ${p.slice(0, 200)}`);
  }
}

/**
 * Configuration files (config/load.ts, agent/config.ts: the `lexa check-config` and `lexa agent` path): every
 * example mutated as HCL text (through the same HCL2 parser the loader's child process runs, and its error
 * reader) and as parsed JSON (wrong types, huge lists, unknown keys), then checked and defaulted. Oracle: a
 * Config, or a ConfigError whose every problem names the file; nothing else thrown. Every CLI_EVERY-th case the
 * real `lexa check-config` (dist) reads the mutated file: exit 0 or 2, the problems on stderr, no stack trace.
 */
export const configTarget: Target = {
  name: 'config',
  weight: 1,
  covers: 'src/config (HCL parse errors, schema, builder, cross-key rules), src/agent/config.ts; `lexa check-config` (dist/cli.js)',
  async open(ctx) {
    const texts = EXAMPLES.map((f) => readFileSync(join(ROOT, f), 'utf8'));
    const parsed = await Promise.all(EXAMPLES.map((f, i) => parse(join(ROOT, f), texts[i]!)));
    const dir = mkdtempSync(join(tmpdir(), 'fz-config-'));
    return {
      async run(rng, index) {
        const k = rng.int(EXAMPLES.length);
        const agent = EXAMPLES[k]!.includes('agent');
        // The file is named beside its example so relative paths in it resolve as they would there.
        const file = join(ROOT, EXAMPLES[k]!);
        const load = agent ? (json: unknown) => agentFromParsed(json, file) : (json: unknown) => fromParsed(json, file, {});
        let text: string | undefined;
        let json: unknown;
        if (rng.chance(TEXT_SHARE) || index % CLI_EVERY === 0) {
          text = mutateText(rng, texts[k]!, texts);
          ctx.note(text);
          try {
            json = await parse(file, text);
          } catch (err) {
            checkProblems(new ConfigError(hclProblems(err instanceof Error ? err.message : String(err), file)), file);
            json = undefined;
          }
        } else {
          json = mutateJson(rng, parsed[k]);
          ctx.note({ json });
        }
        if (json !== undefined) {
          try {
            load(json);
          } catch (err) {
            checkProblems(err, file);
          }
        }
        if (text !== undefined && index % CLI_EVERY === 0 && !agent) {
          const path = join(dir, `case-${index}.hcl`);
          writeFileSync(path, text);
          const { code, stderr } = await within(CLI_DEADLINE_MS, 'lexa check-config', new Promise<{ code: number; stderr: string }>((resolve) => {
            execFile(process.execPath, [join(ROOT, 'dist/cli.js'), 'check-config', path], { timeout: CLI_DEADLINE_MS }, (err, _out, stderr) =>
              resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stderr }),
            );
          }));
          check(code === 0 || code === 2, `lexa check-config exited ${code}: ${stderr.slice(0, 300)}`);
          check(!/\n\s+at /.test(stderr), `a stack trace from lexa check-config: ${stderr.slice(0, 300)}`);
          rmSync(path, { force: true });
        }
      },
      async close() {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};
