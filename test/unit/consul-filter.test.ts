import t from 'tap';
import { FilterError, matches, MAX_FILTER_CHARS, MAX_FILTER_DEPTH, parseFilter } from '../../src/servers/rest/consul/filter.js';
import { CATALOG_SERVICE_SCHEMA, HEALTH_SCHEMA } from '../../src/servers/rest/consul/rows.js';

// The `?filter=` grammar (a bounded subset of go-bexpr): what it accepts, what each operator means, and the inputs
// an attacker would send (huge strings, deep nesting, long chains, regular expressions), each answered with a
// clear error or a bounded evaluation.

const row = {
  Node: 'web-1',
  NodeMeta: { project: 'default', location: 'node-1' },
  ServiceTags: ['blue', 'app'],
  ServiceMeta: { source: 'config', interface: 'eth0', proto: 'tcp' },
  ServicePort: 80,
  ServiceEnableTagOverride: false,
};
const health = { Node: { Node: 'web-1', Meta: { project: 'default' } }, Service: { Tags: ['blue'], Meta: { source: 'agent' }, Port: 80 } };
const test = (f: string, r: unknown = row, schema = CATALOG_SERVICE_SCHEMA) => matches(parseFilter(f, schema), r);

t.test('operators', (t) => {
  const cases: [string, boolean][] = [
    ['Node == "web-1"', true],
    ['Node == web-1', true],
    ['Node == `web-1`', true],
    ['Node != "web-1"', false],
    ['ServiceTags contains blue', true],
    ['ServiceTags contains "green"', false],
    ['ServiceTags not contains green', true],
    ['blue in ServiceTags', true],
    ['"green" not in ServiceTags', true],
    ['"project" in NodeMeta', true],
    ['"site" in NodeMeta', false],
    ['NodeMeta.project == default', true],
    ['NodeMeta.site == ""', false],
    ['NodeMeta.site != x', true],
    ['NodeMeta.site is empty', true],
    ['ServiceTags is not empty', true],
    ['ServiceMeta.source == config and ServiceMeta.proto == tcp', true],
    ['ServiceMeta.source == agent or ServicePort == 80', true],
    ['not (ServicePort == 80)', false],
    ['not not ServicePort == 80', true],
    ['ServiceEnableTagOverride == false', true],
    ['Node contains "web"', true],
    ['(Node == a or Node == b) and ServicePort == 80', false],
    ['Node == a or Node == b or Node == "web-1"', true],
    ['Node == "we\\"b"', false],
  ];
  for (const [f, want] of cases) t.equal(test(f), want, f);
  t.equal(test('Service.Tags contains blue and Node.Meta.project == default', health, HEALTH_SCHEMA), true, 'health rows: Service.Tags, Node.Meta');
  t.equal(test('Node.Node == "web-1" and Service.Meta.source == agent', health, HEALTH_SCHEMA), true);
  t.end();
});

t.test('errors: a FilterError with a message saying what is wrong', (t) => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['Nope == 1', /selector "Nope" is not valid here; valid: ID, Node/],
    ['Node.Meta.x == 1', /selector "Node.Meta.x" is not valid/],
    ['ServiceTags == blue', /ServiceTags is a list: use contains/],
    ['Node ~= x', /unexpected character "~"/],
    ['Node == "open', /unterminated string/],
    ['Node matches "a.*"', /regular expressions\) is not supported/],
    ['(Node == a', /expected "\)" at the end/],
    ['Node == a)', /unexpected at "\)"/],
    ['Node == a and', /expected a selector at the end/],
    ['Node ==', /expected a value at the end/],
    ['Node is full', /expected "empty"/],
    ['and == or', /expected a selector/],
  ];
  for (const [f, re] of cases) t.throws(() => parseFilter(f, CATALOG_SERVICE_SCHEMA), re, JSON.stringify(f));
  t.throws(() => parseFilter('Node.Node == x', CATALOG_SERVICE_SCHEMA), /selector "Node.Node" is not valid/, 'a health selector on a catalog row');
  t.ok((() => { try { parseFilter('Nope', CATALOG_SERVICE_SCHEMA); } catch (err) { return err instanceof FilterError; } return false; })(), 'errors are FilterErrors (the route answers them 400)');
  t.end();
});

t.test('attacks: length, depth and chains are bounded', (t) => {
  t.throws(() => parseFilter(`Node == "${'a'.repeat(1_000_000)}"`, CATALOG_SERVICE_SCHEMA), new RegExp(`longer than ${MAX_FILTER_CHARS}`), 'a megabyte is refused before tokenizing');
  const nested = (n: number) => `${'('.repeat(n)}Node == a${')'.repeat(n)}`;
  t.equal(matches(parseFilter(nested(MAX_FILTER_DEPTH), CATALOG_SERVICE_SCHEMA), row), false, `${MAX_FILTER_DEPTH} parentheses parse`);
  t.throws(() => parseFilter(nested(MAX_FILTER_DEPTH + 1), CATALOG_SERVICE_SCHEMA), /nested deeper than 32/, 'one more does not');
  t.throws(() => parseFilter(`${'not '.repeat(500)}Node == a`, CATALOG_SERVICE_SCHEMA), /nested deeper/, 'a tower of nots');
  t.throws(() => parseFilter('('.repeat(2000), CATALOG_SERVICE_SCHEMA), /nested deeper/, 'only opening parentheses');
  // The longest chain that fits is flat (a list), so evaluating it recurses one level, not one per clause.
  const clauses: string[] = [];
  while ((clauses.join(' or ') + ' or Node == x').length <= MAX_FILTER_CHARS) clauses.push('Node == x');
  const chain = clauses.join(' or ');
  t.ok(clauses.length > 150, `${clauses.length} clauses`);
  t.equal(test(chain), false, 'a long or-chain evaluates');
  t.equal(test(`${chain.slice(0, -'Node == x'.length)}Node == web-1`), true, 'and finds its last clause');
  t.throws(() => parseFilter(`Node == ${'x'.repeat(300)}`, CATALOG_SERVICE_SCHEMA), /unexpected/, 'a bare word is at most 256 characters');
  t.throws(() => parseFilter('Node == "\u0000" and \u202e', CATALOG_SERVICE_SCHEMA), /unexpected character/, 'control and bidi characters outside strings');
  t.throws(() => parseFilter('__proto__ == x', CATALOG_SERVICE_SCHEMA), /not valid here/, '__proto__ is no selector');
  t.equal(test('NodeMeta.__proto__ == x'), false, 'nor a map key that reaches the prototype');
  t.equal(test('"constructor" in NodeMeta'), false);
  t.end();
});
