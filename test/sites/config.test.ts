import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, fromParsed, type Config } from '../../src/config/index.js';

// Several `lxd` blocks are several sites (docs/sites.md). These check what load.ts accepts and refuses across
// blocks, hermetically (parsed HCL as JSON, unix sockets that need not exist).

// Socket paths must be readable; plain files stand in for them.
const dir = mkdtempSync(join(tmpdir(), 'lexa-sites-'));
for (const f of ['a', 'b', 'c']) writeFileSync(join(dir, f), '');
const A = join(dir, 'a');
const B = join(dir, 'b');
const C = join(dir, 'c');

const sites = (...blocks: Record<string, unknown>[]): Config => fromParsed({ server: [{ lxd: blocks }] }, '/x.hcl', {});
const problemsOf = (...blocks: Record<string, unknown>[]): string => {
  try {
    sites(...blocks);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.join('\n');
    throw err;
  }
  return '';
};

t.test('several blocks become the sites, in block order, with one suffix', async (t) => {
  const c = sites({ name: 'home', socket: A, suffix: 'Zone.' }, { name: 'rack', socket: B, all_projects: true });
  t.same(c.sites.map((s) => s.name), ['home', 'rack']);
  t.same(c.sites.map((s) => s.endpoint), [{ kind: 'unix', socket: A }, { kind: 'unix', socket: B }]);
  t.equal(c.sites[1]!.allProjects, true, 'each block has its own project selection');
  t.equal(c.lxd.suffix, 'zone', 'a suffix given in one block is the zone of all');
  t.match(c.lxd, { endpoint: { socket: A } }, 'config.lxd is the first site');
});

t.test('one unnamed block is the single LXD of before', async (t) => {
  const c = sites({ socket: A });
  t.same(c.sites.map((s) => s.name), [null]);
  t.equal(c.lxd.suffix, 'lexa');
  t.equal(problemsOf({ name: 'solo', socket: A }), '', 'a lone block may be named');
});

t.test('refused: what would make names ambiguous', async (t) => {
  t.match(problemsOf({ socket: A }, { name: 'b', socket: B }), /server\.lxd\[0\]\.name: required when there is more than one lxd block/);
  t.match(problemsOf({ name: 'a', socket: A }, { name: 'a', socket: B }), /server\.lxd\[1\]\.name: site "a" is named twice/);
  for (const word of ['service', 'if', 'interface', 'cluster'])
    t.match(problemsOf({ name: word, socket: A }, { name: 'b', socket: B }), new RegExp(`server\\.lxd\\[0\\]\\.name: "${word}" is a word of the zone's names`), word);
  t.match(problemsOf({ name: 'Rack', socket: A }), /server\.lxd\.name: "Rack" is not a lower-case DNS label/);
  t.match(problemsOf({ name: 'a.b', socket: A }), /is not a lower-case DNS label/, 'one label, not a dotted name');
  t.match(problemsOf({ name: 'a', suffix: 'one', socket: A }, { name: 'b', suffix: 'two', socket: B }), /server\.lxd\.suffix: the blocks disagree \("one", "two"\)/);
  t.equal(problemsOf({ name: 'a', suffix: 'one', socket: A }, { name: 'b', suffix: 'One.', socket: B }), '', 'the same suffix spelt twice agrees');
  t.match(problemsOf({ name: 'a', socket: A }, { name: 'b', project: 'p', all_projects: true, socket: B }), /server\.lxd\[1\]: set project or all_projects = true, not both/);
  t.match(problemsOf({ name: 'a', socket: A }, { name: 'b', project: 'a', socket: B }), /server\.lxd\.project: "a" is also a site's name/);
  t.match(problemsOf({ name: 'a', socket: A }, { name: 'b', certificate: C }), /server\.lxd\[1\]\.certificate: only used with bind/, 'problems name their block');
});

t.test('a reload that changes the sites waits for a restart', async (t) => {
  const { decideReload } = await import('../../src/runtime/reload-plan.js');
  const a = sites({ name: 'a', socket: A }, { name: 'b', socket: B });
  const b = sites({ name: 'a', socket: A }, { name: 'c', socket: C });
  const { plan, apply } = decideReload(a, b, a);
  t.ok(plan.restart.includes('server.lxd.name'), 'renaming a site');
  t.ok(plan.restart.includes('server.lxd (further sites)'), 'another endpoint');
  t.same(apply.sites, a.sites, 'the running sites stay');
});

t.test('check-config prints the sites as a list, each with the one suffix; one unnamed block as before', async (t) => {
  const { effectiveSettings } = await import('../../src/config/effective.js');
  const two = effectiveSettings(sites({ name: 'home', socket: A, suffix: 'zone' }, { name: 'lab', socket: B, watchdog_timeout: '3s' })) as { server: { lxd: unknown } };
  t.match(two.server.lxd, [
    { name: 'home', socket: A, suffix: 'zone', watchdog_timeout: '25s' },
    { name: 'lab', socket: B, suffix: 'zone', watchdog_timeout: '3s' },
  ]);
  const one = effectiveSettings(sites({ socket: A })) as { server: { lxd: unknown } };
  t.match(one.server.lxd, { name: null, socket: A, suffix: 'lexa' });
  t.notOk(Array.isArray(one.server.lxd), 'one block, not a list');
});
