import t from 'tap';
import { bindInstance } from '../../src/streams/agents/binding.js';
import { tokenDigest } from '../../src/streams/model/agents.js';
import { FederatedStore } from '../../src/streams/state/federation.js';
import { SnapshotStore } from '../../src/streams/state/store.js';
import { iface, instance, AT } from '../helpers/model.js';

// Agents across sites, hermetically: an agent binds to the instance holding its address in any site, proven by
// that instance's own token; what it says lands in its site's store, and only there.

const ADDRESS = '10.99.0.5';
const at = (site: string, name: string, token: string) =>
  instance(name, { key: `${site}/default/${name}`, site, interfaces: [iface('eth0', [ADDRESS])], agentTokenDigest: tokenDigest(token) });

t.test('one address in two sites: the token decides; a shared token is refused', async (t) => {
  const home = new SnapshotStore();
  const rack = new SnapshotStore();
  const store = new FederatedStore([{ name: 'home', store: home }, { name: 'rack', store: rack }]);
  home.dispatch({ type: 'listed', instances: [at('home', 'web', 'token-of-home-web-0001')], members: [], clustered: false, at: AT });
  rack.dispatch({ type: 'listed', instances: [at('rack', 'api', 'token-of-rack-api-0001')], members: [], clustered: false, at: AT });
  const view = store.current;
  t.equal(view.holders(ADDRESS).length, 2, 'both sites hold the address');
  t.equal(bindInstance(view, ADDRESS, tokenDigest('token-of-rack-api-0001')), 'rack/default/api');
  t.equal(bindInstance(view, ADDRESS, tokenDigest('token-of-home-web-0001')), 'home/default/web');
  t.match(bindInstance(view, ADDRESS, tokenDigest('wrong-token-000000001')), /^!the credential is not the user\.lexa\.agent\.token of any of the 2 instances/);

  const services = [{ name: 'http', port: 80, proto: 'tcp' as const, tags: [], interface: null, priority: 1, weight: 1, source: 'agent' as const, health: 'passing' as const }];
  store.dispatch({ type: 'agent-services', key: 'rack/default/api', session: 's1', services, connected: true, defaultServices: ['*'], at: AT });
  t.equal(rack.current.agents.size, 1, "the agent's state lands in its site's store");
  t.equal(home.current.agents.size, 0, 'and not in the other');
  t.equal(store.current.serviceEndpoints('http')[0]?.instance.key, 'rack/default/api', 'the view serves it');
  store.dispatch({ type: 'agent-gone', key: 'rack/default/api', session: 's1', at: AT });
  t.equal(rack.current.agents.size, 0);

  rack.dispatch({ type: 'listed', instances: [at('rack', 'api', 'token-of-home-web-0001')], members: [], clustered: false, at: AT });
  t.match(bindInstance(store.current, ADDRESS, tokenDigest('token-of-home-web-0001')), /held by 2 instances with the same user\.lexa\.agent\.token/, 'a copied token: ambiguous, refused');
});

t.test('a site that has not listed binds nothing of its own, and blocks nobody', async (t) => {
  const home = new SnapshotStore();
  const store = new FederatedStore([{ name: 'home', store: home }, { name: 'rack', store: new SnapshotStore() }]);
  t.match(bindInstance(store.current, ADDRESS, 'x'), /^!not ready/);
  home.dispatch({ type: 'listed', instances: [at('home', 'web', 'token-of-home-web-0001')], members: [], clustered: false, at: AT });
  t.equal(bindInstance(store.current, ADDRESS, tokenDigest('token-of-home-web-0001')), 'home/default/web');
});
