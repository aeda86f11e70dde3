import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { AGENT_TOKEN_BYTES, AGENT_TOKEN_PREFIX, AgentTokenIssuer, newAgentToken, AGENT_TOKEN_KEY, TOKEN_RETRY_MS, toInstance, tokenDigest, type LxdClient } from '../../src/streams/index.js';
import { lxdInstance } from '../helpers/fake-lxd.js';
import { snapshotOf } from '../helpers/model.js';

// user.lexa.agent.* keys → the model, and the issuer that writes each instance's own token (a fake LXD client
// records the writes; the real PATCH is exercised by test/integration/agent.test.ts).
const TOKEN = 'an-operator-chosen-token-123456';

t.test('agent keys: the allow list from instance or profile, the token from the instance only (digest kept)', async (t) => {
  const own = toInstance({ ...lxdInstance('a', { config: { 'user.lexa.agent.services': 'HTTPS, metrics,https', [AGENT_TOKEN_KEY]: TOKEN } }), config: { [AGENT_TOKEN_KEY]: TOKEN } });
  t.same(own.agentServices, ['https', 'metrics'], 'lower-cased, trimmed, unique');
  t.equal(own.agentTokenDigest, tokenDigest(TOKEN));
  t.notOk(JSON.stringify(own).includes(TOKEN), 'the secret itself is nowhere in the model');
  t.same(own.configErrors, []);
  const fromProfile = toInstance({ ...lxdInstance('b', { config: { [AGENT_TOKEN_KEY]: TOKEN } }), config: {} });
  t.equal(fromProfile.agentTokenDigest, undefined, 'a profile\'s token would be shared by all its instances: ignored');
  t.match(fromProfile.configErrors, [/user\.lexa\.agent\.token: set on a profile/]);
  const short = toInstance({ ...lxdInstance('c'), config: { [AGENT_TOKEN_KEY]: 'short' } });
  t.equal(short.agentTokenDigest, undefined);
  t.match(short.configErrors, [/must be 16\.\.1024 non-blank characters/]);
  const bad = toInstance(lxdInstance('d', { config: { 'user.lexa.agent.services': 'ok,Not_A_Label' } }));
  t.equal(bad.agentServices, undefined, 'a bad list counts as absent (the server default applies)');
  t.match(bad.configErrors, [/user\.lexa\.agent\.services: "not_a_label" not a service name/]);
  t.same(toInstance(lxdInstance('e', { config: { 'user.lexa.agent.services': '*' } })).configErrors, [], 'agent keys are not "unknown lexa keys"');
});

t.test('the issuer writes a random token into instances that may run an agent and have none; never over one', async (t) => {
  const writes: { path: string; body: unknown }[] = [];
  const own = new Map<string, Record<string, string>>([['/1.0/instances/set-meanwhile?project=default', { [AGENT_TOKEN_KEY]: TOKEN }]]);
  const client: Pick<LxdClient, 'get' | 'patch'> = {
    get: async <T>(path: string) => ({ config: own.get(path) ?? {} }) as T,
    patch: async (path: string, body: unknown) => void writes.push({ path, body }),
  };
  let now = 0;
  let defaults: readonly string[] = [];
  const log = memoryLogger();
  const issuer = new AgentTokenIssuer({ client, log, defaults: () => defaults, now: () => now });
  const inst = (name: string, config: Record<string, string> = {}, status = 'Running') => toInstance({ ...lxdInstance(name, { config, status }), config });
  const snap = snapshotOf([
    inst('allowed', { 'user.lexa.agent.services': 'https' }),
    inst('has-token', { 'user.lexa.agent.services': 'https', [AGENT_TOKEN_KEY]: TOKEN }),
    inst('no-list'),
    inst('stopped', { 'user.lexa.agent.services': 'https' }, 'Stopped'),
    inst('set-meanwhile', { 'user.lexa.agent.services': '*' }),
  ]);
  issuer.observe(snap);
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes.map((w) => w.path), ['/1.0/instances/allowed?project=default'], 'only the running instance allowed an agent and without a token');
  const token = (writes[0]!.body as { config: Record<string, string> }).config[AGENT_TOKEN_KEY]!;
  t.match(token, new RegExp(`^${AGENT_TOKEN_PREFIX}[A-Za-z0-9_-]{${Math.ceil((AGENT_TOKEN_BYTES * 4) / 3)}}$`), 'the prefix, then 32 random bytes in base64url');
  issuer.observe(snap);
  await new Promise((r) => setTimeout(r, 20));
  t.equal(writes.length, 1, 'not written again while LXD brings the token into the snapshot');
  defaults = ['*'];
  now = TOKEN_RETRY_MS;
  issuer.observe(snap);
  await new Promise((r) => setTimeout(r, 20));
  t.same(writes.map((w) => w.path).sort(), ['/1.0/instances/allowed?project=default', '/1.0/instances/allowed?project=default', '/1.0/instances/no-list?project=default'],
    'a server default lets every instance run an agent; a retry after TOKEN_RETRY_MS');
  t.notOk(writes.some((w) => w.path.includes('set-meanwhile')), 'a token found on the re-read (the operator\'s) is never overwritten');
});

t.test('an issued token never begins with "-" (lxc config set and shells would read it as an option)', async (t) => {
  // base64url begins with '-' for one token in 64: 2,000 draws without the prefix meet one with certainty (1 - 2e-14).
  const leading = new Set<string>();
  for (let i = 0; i < 2000; i++) leading.add(newAgentToken()[0]!);
  t.notOk(leading.has('-'), 'no token starts with a dash');
  t.same([...leading], [AGENT_TOKEN_PREFIX[0]], 'every token starts with the fixed prefix');
});
