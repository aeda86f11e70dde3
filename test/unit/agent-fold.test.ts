import t from 'tap';
import { fold, type Action, type AgentService, type Snapshot } from '../../src/streams/index.js';
import { hostDoc } from '../../src/servers/rest/hosts.js';
import { deepFreeze, iface, instance, service, snapshotOf } from '../helpers/model.js';

// Agent state folds into the same snapshot through the same reducer: scripted action sequences, frozen snapshots.
const web = instance('web-1', { interfaces: [iface('eth0', ['10.0.0.2'])], services: [service('http', { port: 80 })] });
const db = instance('db-1', { interfaces: [iface('eth0', ['10.0.0.3'])] });
const agentSvc = (name: string, over: Partial<AgentService> = {}): AgentService =>
  deepFreeze({ ...service(name), source: 'agent', health: 'passing', ...over }) as AgentService;
const says = (key: string, services: AgentService[], session = 's1', connected = true): Action => ({
  type: 'agent-services', key, session, services, connected, defaultServices: ['*'], at: 1,
});
const run = (snap: Snapshot, ...actions: Action[]) => actions.reduce((s, a) => deepFreeze(fold(s, a)), snap);
const names = (snap: Snapshot, svc: string) => snap.serviceEndpoints(svc).map((e) => e.instance.name).sort();

t.test('a passing agent service is served beside config services; a critical one is not', async (t) => {
  const s0 = snapshotOf([web, db]);
  const s1 = run(s0, says('default/web-1', [agentSvc('https'), agentSvc('metrics', { health: 'critical' })]));
  t.same(names(s1, 'https'), ['web-1']);
  t.same(names(s1, 'metrics'), [], 'critical: not in the index');
  t.same(names(s1, 'http'), ['web-1'], 'config service untouched');
  t.equal(s1.agents.get('default/web-1')?.services.length, 2, 'the agent state keeps critical services too');
  t.same(hostDoc(s1.instances.get('default/web-1')!, 'lexa').services?.map((s) => [s.name, s.source, s.health]), [
    ['http', 'config', 'unchecked'],
    ['https', 'agent', 'passing'],
  ]);
  const s2 = run(s1, says('default/web-1', [agentSvc('https', { health: 'critical' }), agentSvc('metrics')]));
  t.same(names(s2, 'https'), [], 'a service turning critical leaves');
  t.same(names(s2, 'metrics'), ['web-1'], 'one turning passing returns');
  t.equal(s2.instances.get('default/db-1'), s1.instances.get('default/db-1'), 'other instances are shared, not rebuilt');
});

t.test('config wins when both declare a service name', async (t) => {
  const s = run(snapshotOf([web]), says('default/web-1', [agentSvc('http', { port: 8080 }), agentSvc('https')]));
  const http = s.serviceEndpoints('http');
  t.equal(http.length, 1);
  t.equal(http[0]!.service.port, 80, "the operator's declaration is served");
  t.equal(http[0]!.service.source, 'config');
});

t.test('an LXD re-read or re-list keeps agent services; a stop or a delete drops them at once', async (t) => {
  const s1 = run(snapshotOf([web, db]), says('default/web-1', [agentSvc('https')]));
  const s2 = run(s1, { type: 'instance', instance: { ...web, interfaces: [iface('eth0', ['10.0.0.2'], ['fd42::2'])] }, at: 2 });
  t.same(names(s2, 'https'), ['web-1'], 'instance re-read keeps them');
  const s3 = run(s2, { type: 'listed', instances: [web, db], members: [], clustered: false, at: 3 });
  t.same(names(s3, 'https'), ['web-1'], 're-list keeps them');
  const s4 = run(s3, { type: 'instance', instance: { ...web, running: false, status: 'Stopped' }, at: 4 });
  t.same(names(s4, 'https'), [], 'stopped: gone at once');
  t.equal(s4.agents.has('default/web-1'), false);
  const s5 = run(s4, { type: 'instance', instance: web, at: 5 });
  t.same(names(s5, 'https'), [], 'started again: nothing until the agent speaks again');
  const s6 = run(s3, { type: 'instance-gone', key: 'default/web-1', at: 6 });
  t.equal(s6.agents.has('default/web-1'), false, 'deleted: gone');
  const s7 = run(s3, { type: 'listed', instances: [{ ...web, running: false, status: 'Stopped' }, db], members: [], clustered: false, at: 7 });
  t.same(names(s7, 'https'), [], 'a re-list that shows it stopped drops them');
});

t.test('disconnect keeps services until agent-gone of that session; a newer session survives an old grace', async (t) => {
  const s1 = run(snapshotOf([web]), says('default/web-1', [agentSvc('https')], 'a'));
  const s2 = run(s1, says('default/web-1', [agentSvc('https')], 'a', false));
  t.same(names(s2, 'https'), ['web-1'], 'within grace: still served');
  t.equal(s2.agents.get('default/web-1')?.connected, false);
  const s3 = run(s2, says('default/web-1', [agentSvc('https', { port: 444 })], 'b'));
  const s4 = run(s3, { type: 'agent-gone', key: 'default/web-1', session: 'a', at: 9 });
  t.equal(s4, s3, "the old session's grace ending changes nothing");
  const s5 = run(s4, { type: 'agent-gone', key: 'default/web-1', session: 'b', at: 10 });
  t.same(names(s5, 'https'), [], 'its own session ending removes them');
});

t.test('agents speak only for known running instances', async (t) => {
  const s0 = snapshotOf([web, { ...db, running: false, status: 'Stopped' }]);
  t.equal(run(s0, says('default/nope', [agentSvc('https')])), s0, 'unknown instance: ignored');
  t.equal(run(s0, says('default/db-1', [agentSvc('https')])), s0, 'stopped instance: ignored');
});

t.test('holders: the running instances holding an address', async (t) => {
  const twin = instance('twin', { interfaces: [iface('eth0', ['10.0.0.2'])] });
  const s = snapshotOf([web, db, twin, instance('off', { running: false, interfaces: [iface('eth0', ['10.0.0.9'])] })]);
  t.same(s.holders('10.0.0.3').map((i) => i.key), ['default/db-1']);
  t.same(s.holders('10.0.0.2').map((i) => i.key).sort(), ['default/twin', 'default/web-1']);
  t.same(s.holders('10.0.0.9'), [], 'a stopped instance holds nothing');
});
