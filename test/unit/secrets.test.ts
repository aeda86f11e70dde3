import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { agentFromParsed } from '../../src/agent/config.js';
import { agentSchema } from '../../src/agent/schema.js';
import { REDACTED, secretPaths } from '../../src/config/builder.js';
import { effectiveSettings } from '../../src/config/effective.js';
import { ConfigError, fromParsed, loadConfig } from '../../src/config/index.js';
import { configSchema } from '../../src/config/schema.js';
import { memoryLogger } from '../../src/log/index.js';

// Secrets stay secret: the schema declares which keys are secrets (`.secret()`), and every printer (check-config's
// effective settings, configuration problems, the logger) hides their values. Hermetic; loadConfig parses HCL in a
// child process (src/config/hcl-child.ts).

const dir = mkdtempSync(join(tmpdir(), 'lexa-secrets-'));
const write = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
/** Values no printer may show: each appears nowhere else in the file. */
const TSIG = 'SGlkZGVuVHNpZ1NlY3JldEZvckxleGE=';
const TOKEN = 'agent-token-never-printed-0042';

/** The file as HCL → JSON gives it: every block an array of bodies. */
const server = (body: Record<string, unknown>) => ({ server: [body] });
const transfer = (key: Record<string, unknown>) => ({ dns: [{ transfer: [{ allow: ['127.0.0.1'], key: [{ name: 'lexa-xfr', ...key }] }] }] });

function problemsOf(json: unknown, file = join(dir, 'x.hcl')): string {
  try {
    fromParsed(json, file, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
}

t.test('the schemas declare the secrets: the TSIG secret and the agent token, on the server and in the agent', (t) => {
  t.same(secretPaths(configSchema).sort(), ['server.agent.token', 'server.dns.transfer.key.secret']);
  t.same(secretPaths(agentSchema), ['agent.token']);
  t.end();
});

t.test('check-config output: every secret key shows REDACTED, and no secret value appears anywhere', (t) => {
  const config = fromParsed(server({ ...transfer({ secret: TSIG }), agent: [{ token: TOKEN }] }), join(dir, 'x.hcl'), {});
  const out = effectiveSettings(config) as { server: { dns: { transfer: { key: Record<string, unknown> } }; agent: Record<string, unknown> } };
  t.equal(out.server.dns.transfer.key['secret'], REDACTED);
  t.equal(out.server.agent['token'], REDACTED);
  t.equal(out.server.dns.transfer.key['name'], 'lexa-xfr', 'the rest of the block is printed as it was');
  const text = JSON.stringify(out);
  t.notOk(text.includes(TSIG), 'the TSIG secret is nowhere');
  t.notOk(text.includes(TOKEN), 'the token is nowhere');
  const unset = effectiveSettings(fromParsed(server({ agent: [{ token_file: write('t1', TOKEN) }] }), join(dir, 'x.hcl'), {})) as { server: { agent: Record<string, unknown> } };
  t.equal(unset.server.agent['token'], null, 'an unset secret key is null, as any unset key');
  t.end();
});

t.test('configuration problems name the key but never quote a secret value', (t) => {
  const badSecret = 'hunter2 is not base64!';
  const p1 = problemsOf(server(transfer({ secret: badSecret })));
  t.match(p1, /server\.dns\.transfer\.key\.secret: "\(redacted\)" is not base64/);
  t.notOk(p1.includes('hunter2'), p1);
  const badToken = 'too-short-tok';
  const p2 = problemsOf(server({ agent: [{ token: badToken }] }));
  t.match(p2, /server\.agent\.token: .* is not a secret of 16\.\.1024/);
  t.notOk(p2.includes(badToken), p2);
  const p3 = problemsOf(server({ agent: [{ token: ['list-of-secret-words'] }] }));
  t.match(p3, /server\.agent\.token: expected a string/);
  t.notOk(p3.includes('list-of-secret-words'), p3);
  let agentProblems = '';
  try {
    agentFromParsed({ agent: [{ server: '10.99.0.1:18500', token: badToken }] }, '/agent.hcl');
  } catch (err) {
    agentProblems = err instanceof ConfigError ? err.problems.join('\n') : String(err);
  }
  t.match(agentProblems, /agent\.token: "\(redacted\)" is not a secret/, 'the agent program\'s own file too');
  t.notOk(agentProblems.includes(badToken), agentProblems);
  t.end();
});

t.test('secret_file: read at load, relative to the file, trimmed, checked; exactly one of secret and secret_file', async (t) => {
  const sub = join(dir, 'etc');
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(sub, 'xfr.key'), `  ${TSIG}\n\n`);
  const hcl = join(sub, 'lexa.hcl');
  writeFileSync(
    hcl,
    'server {\n  dns {\n    transfer {\n      allow = ["127.0.0.1"]\n      key {\n        name = "lexa-xfr"\n        secret_file = "xfr.key"\n      }\n    }\n  }\n}\n',
  );
  const config = await loadConfig({ path: hcl, env: {} });
  t.same(config.dns.transfer.key?.secret, Buffer.from(TSIG, 'base64'), 'the file\'s secret, decoded');
  t.ok(config.secrets.includes(TSIG), 'and known to be a secret');
  t.match(problemsOf(server(transfer({ secret: TSIG, secret_file: join(sub, 'xfr.key') }))), /server\.dns\.transfer\.key: set secret or secret_file \(the base64 TSIG secret\), exactly one/);
  t.match(problemsOf(server(transfer({}))), /server\.dns\.transfer\.key: set secret or secret_file/);
  t.match(problemsOf(server(transfer({ secret_file: join(sub, 'nope') }))), /server\.dns\.transfer\.key\.secret_file: .*nope: no such file/);
  const notBase64 = write('bad.key', 'this file holds no base64 at all\n');
  const p = problemsOf(server(transfer({ secret_file: notBase64 })));
  t.match(p, /server\.dns\.transfer\.key\.secret_file: .*bad\.key must hold the base64 TSIG secret/);
  t.notOk(p.includes('no base64 at all'), 'the file\'s content is not quoted');
});

t.test('Config.secrets holds every secret the schema declares, inline or from a file, and the logger hides them', (t) => {
  const inline = fromParsed(server({ ...transfer({ secret: TSIG }), agent: [{ token: TOKEN }] }), join(dir, 'x.hcl'), {});
  t.same([...inline.secrets].sort(), [TOKEN, TSIG].sort(), 'one value per declared secret path');
  const fromFiles = fromParsed(server({ ...transfer({ secret_file: write('s', TSIG) }), agent: [{ token_file: write('t', TOKEN) }] }), join(dir, 'x.hcl'), {});
  t.same([...fromFiles.secrets].sort(), [TOKEN, TSIG].sort());
  const log = memoryLogger();
  const child = log.child({ component: 'rest' });
  log.hide(inline.secrets);
  child.warn(`agent refused: token ${TOKEN}`, { error: new Error(`bad ${TSIG}`), nested: { value: TOKEN } });
  const line = JSON.stringify(log.lines);
  t.notOk(line.includes(TOKEN) || line.includes(TSIG), line);
  t.equal(log.lines[0]?.['msg'], `agent refused: token ${REDACTED}`, 'the message keeps its shape');
  t.same(log.lines[0]?.['nested'], { value: REDACTED });
  const odd = 'quote"and\\backslash-token';
  log.hide([odd]);
  log.info('x', { v: odd });
  t.same(log.lines[1]?.['v'], REDACTED, 'a secret that JSON escapes is still found');
  t.end();
});
