/**
 * A bounded subset of Consul's `?filter=` grammar (HashiCorp go-bexpr), parsed once per request and evaluated
 * against the JSON rows an endpoint answers with:
 *
 *   Expression := Or
 *   Or         := And ("or" And)*
 *   And        := Unary ("and" Unary)*
 *   Unary      := "not" Unary | "(" Or ")" | Match
 *   Match      := Selector ("==" | "!=") Value
 *              |  Selector ["not"] "contains" Value
 *              |  Value ["not"] "in" Selector
 *              |  Selector "is" ["not"] "empty"
 *   Selector   := Name ("." Name)*                 e.g. ServiceTags, Service.Tags, Node.Meta.project
 *   Value      := "double-quoted" | `raw` | a bare word of letters, digits and _-.:/+@
 *
 * Keywords are lower-case, as in go-bexpr. `contains`/`in` test membership in a list (tags), a key in a map
 * (`"project" in Node.Meta`) or a substring of a string. `matches` (regular expressions) is refused: a client's
 * pattern would run against every row, and JavaScript's engine backtracks.
 *
 * Which selectors exist is the endpoint's schema: a selector outside it is a 400 naming the valid ones, as Consul
 * does. A missing map key (`Node.Meta.nope`) is the empty value, as in go-bexpr.
 *
 * Bounds, so a request's work is linear in its length: at most MAX_FILTER_CHARS characters, and at most
 * MAX_FILTER_DEPTH nested parentheses or `not`s (the parser recurses only there; `and`/`or` chains are flat lists).
 */

/** Consul's own filters are a line or two; 2 KiB leaves room for long value lists and stays cheap per row. */
export const MAX_FILTER_CHARS = 2048;
/** Nesting beyond a handful is never written by hand; 32 bounds the parser's and the evaluator's recursion. */
export const MAX_FILTER_DEPTH = 32;

/** A field of a row: a scalar (string, number, boolean), a list of strings, or a map of strings. */
export type FieldKind = 'value' | 'list' | 'map';
/** The selectors of an endpoint's rows: field name → kind, or a nested object's own schema. */
export interface Schema {
  readonly [field: string]: FieldKind | Schema;
}

type Test = 'eq' | 'ne' | 'contains' | 'notContains' | 'empty' | 'notEmpty';

export type Filter =
  | { readonly op: 'or' | 'and'; readonly items: readonly Filter[] }
  | { readonly op: 'not'; readonly item: Filter }
  | { readonly op: 'match'; readonly path: readonly string[]; readonly test: Test; readonly value: string };

export class FilterError extends Error {}

/** Parses `text` against `schema`; throws FilterError with a message fit for a 400. */
export function parseFilter(text: string, schema: Schema): Filter {
  if (text.length > MAX_FILTER_CHARS) throw new FilterError(`filter is longer than ${MAX_FILTER_CHARS} characters`);
  const tokens = tokenize(text);
  let at = 0;
  let depth = 0;
  const peek = (k = 0): Token | undefined => tokens[at + k];
  const isWord = (t: Token | undefined, w: string) => t?.kind === 'word' && t.text === w;
  const fail = (what: string): never => {
    const t = peek();
    throw new FilterError(`filter: ${what} ${t === undefined ? 'at the end' : `at ${JSON.stringify(t.text)} (character ${t.at + 1})`}`);
  };
  const deeper = () => {
    if (++depth > MAX_FILTER_DEPTH) throw new FilterError(`filter: nested deeper than ${MAX_FILTER_DEPTH} levels`);
  };

  const or = (): Filter => {
    const items = [and()];
    while (isWord(peek(), 'or')) {
      at++;
      items.push(and());
    }
    return items.length === 1 ? items[0]! : { op: 'or', items };
  };
  const and = (): Filter => {
    const items = [unary()];
    while (isWord(peek(), 'and')) {
      at++;
      items.push(unary());
    }
    return items.length === 1 ? items[0]! : { op: 'and', items };
  };
  const unary = (): Filter => {
    const t = peek();
    if (isWord(t, 'not') && !isWord(peek(1), 'in')) {
      at++;
      deeper();
      const item = unary();
      depth--;
      return { op: 'not', item };
    }
    if (t?.kind === 'open') {
      at++;
      deeper();
      const inner = or();
      depth--;
      if (peek()?.kind !== 'close') fail('expected ")"');
      at++;
      return inner;
    }
    return match();
  };
  const match = (): Filter => {
    // `Value in Selector` / `Value not in Selector`: the value comes first.
    if (isWord(peek(1), 'in') || (isWord(peek(1), 'not') && isWord(peek(2), 'in'))) {
      const value = valueToken();
      const negated = isWord(peek(), 'not');
      at += negated ? 2 : 1;
      const path = selector();
      return { op: 'match', path, test: negated ? 'notContains' : 'contains', value };
    }
    const start = peek();
    const path = selector();
    const kind = kindOf(schema, path)!;
    const t = peek();
    if (t?.kind === 'eq' || t?.kind === 'ne') {
      if (kind !== 'value') throw new FilterError(`filter: ${path.join('.')} is a ${kind}: use contains, in or is empty`);
      at++;
      return { op: 'match', path, test: t.kind, value: valueToken() };
    }
    if (isWord(t, 'contains') || (isWord(t, 'not') && isWord(peek(1), 'contains'))) {
      const negated = isWord(t, 'not');
      at += negated ? 2 : 1;
      return { op: 'match', path, test: negated ? 'notContains' : 'contains', value: valueToken() };
    }
    if (isWord(t, 'is')) {
      at++;
      const negated = isWord(peek(), 'not');
      if (negated) at++;
      if (!isWord(peek(), 'empty')) fail('expected "empty"');
      at++;
      return { op: 'match', path, test: negated ? 'notEmpty' : 'empty', value: '' };
    }
    if (isWord(t, 'matches') || isWord(t, 'like')) throw new FilterError(`filter: "${t!.text}" (regular expressions) is not supported; use ==, !=, contains, in or is empty`);
    return fail(`expected ==, !=, contains, in or is empty after ${JSON.stringify(start?.text)}`);
  };
  const selector = (): string[] => {
    const t = peek();
    if (t?.kind !== 'word' || !/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/.test(t.text) || KEYWORDS.has(t.text)) return fail('expected a selector');
    const path = t.text.split('.');
    const kind = kindOf(schema, path);
    if (kind === undefined)
      throw new FilterError(`filter: selector ${JSON.stringify(t.text)} is not valid here; valid: ${selectorsOf(schema).join(', ')}`);
    at++;
    return path;
  };
  const valueToken = (): string => {
    const t = peek();
    if (t?.kind === 'string' || (t?.kind === 'word' && !KEYWORDS.has(t.text))) {
      at++;
      return t.text;
    }
    return fail('expected a value');
  };

  if (tokens.length === 0) throw new FilterError('filter is empty');
  const out = or();
  if (at < tokens.length) fail('unexpected');
  return out;
}

/** Whether `row` (a JSON row of the endpoint whose schema the filter was parsed against) passes `filter`. */
export function matches(filter: Filter, row: unknown): boolean {
  switch (filter.op) {
    case 'or':
      return filter.items.some((f) => matches(f, row));
    case 'and':
      return filter.items.every((f) => matches(f, row));
    case 'not':
      return !matches(filter.item, row);
    case 'match':
      return test(filter.test, lookup(row, filter.path), filter.value);
  }
}

function test(kind: Test, field: unknown, value: string): boolean {
  switch (kind) {
    case 'eq':
      return field !== undefined && field !== null && String(field) === value;
    case 'ne':
      return !test('eq', field, value);
    case 'contains':
      if (Array.isArray(field)) return field.some((v) => String(v) === value);
      if (typeof field === 'string') return field.includes(value);
      if (field !== null && typeof field === 'object') return Object.hasOwn(field, value);
      return false;
    case 'notContains':
      return !test('contains', field, value);
    case 'empty':
      if (Array.isArray(field)) return field.length === 0;
      if (field !== null && typeof field === 'object') return Object.keys(field).length === 0;
      return field === undefined || field === null || field === '';
    case 'notEmpty':
      return !test('empty', field, value);
  }
}

function lookup(row: unknown, path: readonly string[]): unknown {
  let v = row;
  for (const p of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/** The kind of the field a path names, or undefined when the schema has no such field. */
function kindOf(schema: Schema, path: readonly string[]): FieldKind | undefined {
  let s: FieldKind | Schema = schema;
  for (let i = 0; i < path.length; i++) {
    if (typeof s === 'string') return s === 'map' && i === path.length - 1 ? 'value' : undefined;
    const next: FieldKind | Schema | undefined = Object.hasOwn(s, path[i]!) ? s[path[i]!] : undefined;
    if (next === undefined) return undefined;
    s = next;
  }
  return typeof s === 'string' ? s : undefined;
}

function selectorsOf(schema: Schema, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, v]) =>
    typeof v === 'string' ? [v === 'map' ? `${prefix}${k}, ${prefix}${k}.<key>` : `${prefix}${k}`] : selectorsOf(v, `${prefix}${k}.`),
  );
}

const KEYWORDS = new Set(['and', 'or', 'not', 'in', 'contains', 'is', 'empty', 'matches', 'like']);

interface Token {
  readonly kind: 'word' | 'string' | 'open' | 'close' | 'eq' | 'ne';
  readonly text: string;
  /** Index of its first character in the filter. */
  readonly at: number;
}

/** The filter's tokens; throws FilterError on a character no token starts with, or an unterminated string. */
function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
    else if (c === '(' || c === ')') out.push({ kind: c === '(' ? 'open' : 'close', text: c, at: i++ });
    else if ((c === '=' || c === '!') && text[i + 1] === '=') {
      out.push({ kind: c === '=' ? 'eq' : 'ne', text: `${c}=`, at: i });
      i += 2;
    } else if (c === '"' || c === '`') {
      const start = i++;
      let s = '';
      while (i < text.length && text[i] !== c) {
        if (c === '"' && text[i] === '\\' && i + 1 < text.length) i++;
        s += text[i++];
      }
      if (i >= text.length) throw new FilterError(`filter: unterminated string starting at character ${start + 1}`);
      i++;
      out.push({ kind: 'string', text: s, at: start });
    } else {
      const m = /^[A-Za-z0-9_\-.:/+@]+/.exec(text.slice(i, i + 256));
      if (m === null) throw new FilterError(`filter: unexpected character ${JSON.stringify(c)} at character ${i + 1}`);
      out.push({ kind: 'word', text: m[0], at: i });
      i += m[0].length;
    }
  }
  return out;
}
