import t from 'tap';
import { parseServiceKeys } from '../../src/streams/index.js';
import { duration } from '../../src/streams/model/check-keys.js';

// `user.lexa.service.<name>.check*` keys: parsed beside the other service keys, defaults as the agent's, every
// value bounded; a bad one is a configErrors line naming the key, and its service is ignored (as for any field).
const P = 'user.lexa.service.web.';
const parse = (keys: Record<string, string>) => parseServiceKeys({ [`${P}port`]: '80', ...keys });

t.test('check kinds, with the defaults of the agent and Consul', async (t) => {
  const tcp = parse({ [`${P}check`]: 'tcp' });
  t.same(tcp.errors, []);
  t.same(tcp.services[0]!.check, { kind: 'tcp', path: null, intervalMs: 10_000, timeoutMs: 2_000, failuresBeforeCritical: 1, successBeforePassing: 1 });
  t.equal(parse({ [`${P}check`]: 'http:/healthz?x=1' }).services[0]!.check?.path, '/healthz?x=1', 'path and query kept as written');
  t.same(parse({ [`${P}check`]: 'HTTPS:/' }).services[0]!.check?.kind, 'https', 'kind is case-insensitive');
  t.equal(parse({ [`${P}check`]: 'http' }).services[0]!.check?.path, '/', 'http alone means http:/');
  t.equal(parse({}).services[0]!.check, undefined, 'no check key: no check');
});

t.test('interval, timeout and thresholds', async (t) => {
  const r = parse({
    [`${P}check`]: 'tcp',
    [`${P}check_interval`]: '1m30s',
    [`${P}check_timeout`]: '500ms',
    [`${P}check_failures_before_critical`]: '3',
    [`${P}check_success_before_passing`]: '2',
  });
  t.same(r.errors, []);
  t.match(r.services[0]!.check, { intervalMs: 90_000, timeoutMs: 500, failuresBeforeCritical: 3, successBeforePassing: 2 });
  t.equal(parse({ [`${P}check`]: 'tcp', [`${P}check_interval`]: '1s' }).services[0]!.check?.timeoutMs, 500, 'default timeout: half a short interval');
  const both = parseServiceKeys({ [`${P}port`]: '53', [`${P}proto`]: 'tcp,udp', [`${P}check`]: 'tcp' });
  t.same(both.services.map((s) => [s.proto, s.check?.kind]), [['tcp', 'tcp'], ['udp', 'tcp']], 'each proto entry carries the one check');
});

t.test('bad and hostile values become errors naming the key; the service is ignored', async (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ [`${P}check`]: 'icmp' }, /service\.web\.check: "icmp" must be tcp, http:<path> or https:<path>/],
    [{ [`${P}check`]: 'tcp:/x' }, /service\.web\.check: /],
    [{ [`${P}check`]: 'http:healthz' }, /service\.web\.check: the path must start with \//],
    [{ [`${P}check`]: 'http:/a b' }, /path must start/],
    [{ [`${P}check`]: 'http:/a\r\nHost: evil' }, /path must start/],
    [{ [`${P}check`]: 'http:/a#frag' }, /path must start/],
    [{ [`${P}check`]: `http:/${'a'.repeat(256)}` }, /at most 256/],
    [{ [`${P}check`]: 'http:/é' }, /path must start/],
    [{ [`${P}check`]: 'tcp', [`${P}check_interval`]: '999ms' }, /check_interval: "999ms" must be a duration from 1s to 1h/],
    [{ [`${P}check`]: 'tcp', [`${P}check_interval`]: '2h' }, /check_interval/],
    [{ [`${P}check`]: 'tcp', [`${P}check_interval`]: '10' }, /check_interval/],
    [{ [`${P}check`]: 'tcp', [`${P}check_interval`]: `${'9'.repeat(400)}s` }, /check_interval: "9{64}…" must/],
    [{ [`${P}check`]: 'tcp', [`${P}check_interval`]: '-5s' }, /check_interval/],
    [{ [`${P}check`]: 'tcp', [`${P}check_timeout`]: '10s' }, /check_timeout: "10s" must be .* below the interval \(10000ms\)/],
    [{ [`${P}check`]: 'tcp', [`${P}check_timeout`]: '99ms' }, /check_timeout/],
    [{ [`${P}check`]: 'tcp', [`${P}check_failures_before_critical`]: '0' }, /check_failures_before_critical: "0" must be 1\.\.1000/],
    [{ [`${P}check`]: 'tcp', [`${P}check_failures_before_critical`]: '1001' }, /check_failures_before_critical/],
    [{ [`${P}check`]: 'tcp', [`${P}check_success_before_passing`]: '1e3' }, /check_success_before_passing/],
    [{ [`${P}check_interval`]: '5s' }, /service\.web\.check_interval: set without user\.lexa\.service\.web\.check/],
  ];
  for (const [keys, message] of bad) {
    const r = parse(keys);
    t.same(r.services, [], `ignored: ${JSON.stringify(keys).slice(0, 80)}`);
    t.match(r.errors.join('\n'), message);
    t.match(r.errors.join('\n'), /service "web" ignored/);
    t.ok(r.errors.every((e) => e.length < 400), 'messages stay short whatever the value');
  }
  t.match(parse({ [`${P}check_path`]: '/' }).errors.join(), /unknown field "check_path"/, 'an unknown check_ field is refused');
});

t.test('durations: units summed, anything else refused', async (t) => {
  t.equal(duration('1h30m15s500ms', 0), 5_415_500);
  t.equal(duration(undefined, 7), 7);
  for (const text of ['', 's', '1', '1.5s', '1 s', '1d', '10S', '1s ', `${'1s'.repeat(17)}`]) t.equal(duration(text, 0), undefined, JSON.stringify(text));
});
