import t from 'tap';
import { fromParsed, type Config } from '../../src/config/index.js';
import { planReload } from '../../src/runtime/reload-plan.js';
import { TRANSPORTS } from '../../src/servers/registry.js';

// The registry is the one list of transports: each appears once, and the reload plan for a change to its binds,
// certificate or limits is what its descriptor declares (binds live; a certificate live where it swaps one;
// limits at a restart).
const base = fromParsed(
  { server: [{ dns: [{ dot: [{}], doh: [{}], quic: [{}] }], tls: [{}], metrics: [{}], agent: [{ token: 'a-token-of-16-chars' }] }] },
  null,
  {},
);
/** A deep copy of `base` changed by `edit` (which may write what the descriptors read: the copy is private). */
const changed = (edit: (c: Config) => void): Config => {
  const c = structuredClone(base);
  edit(c);
  return c;
};
type Writable = Record<string, unknown>;

t.test('every transport is registered once, each under its own configuration path, and enabled by this config', (t) => {
  t.same(new Set(TRANSPORTS.map((d) => d.name)).size, TRANSPORTS.length, 'names are unique');
  t.same(new Set(TRANSPORTS.map((d) => d.configPath)).size, TRANSPORTS.length, 'configuration paths are unique');
  t.same([...TRANSPORTS.map((d) => d.name)].sort(), ['agent', 'dns', 'doh', 'doq', 'dot', 'metrics', 'rest'], 'the transports lexa serves');
  for (const d of TRANSPORTS) t.ok(d.enabled(base) && d.binds(base).length > 0, `${d.name} enabled with binds`);
  t.end();
});

for (const d of TRANSPORTS) {
  t.test(`${d.name}: the reload plan follows its descriptor`, (t) => {
    const moved = changed((c) => {
      (d.binds(c)[0] as unknown as Writable)['port'] = d.binds(c)[0]!.port + 1;
    });
    t.same(planReload(base, moved), { live: [`${d.configPath}.bind`], restart: [] }, 'a bind: live');
    if (d.tls !== null) {
      const tls = d.tls;
      const recert = changed((c) => {
        (tls.settings(c)!.tls as unknown as Writable)['certificate'] = '/elsewhere.crt';
      });
      const where = tls.swapsLive ? { live: ['certificates'], restart: [] } : { live: [], restart: ['certificates'] };
      t.same(planReload(base, recert), where, `its certificate: ${tls.swapsLive ? 'live' : 'at a restart'}`);
    }
    const limits = d.limits(base);
    if (limits !== null && typeof limits === 'object') {
      const key = Object.keys(limits).find((k) => typeof (limits as Writable)[k] === 'number')!;
      const relimited = changed((c) => {
        const l = d.limits(c) as Writable;
        l[key] = (l[key] as number) + 1;
      });
      t.same(planReload(base, relimited), { live: [], restart: ['limits'] }, `its limits (${key}): at a restart`);
    }
    t.end();
  });
}
