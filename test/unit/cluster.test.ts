import t from 'tap';
import { FailoverClient, originOf } from '../../src/streams/lxd/failover-client.js';
import type { LxdClient } from '../../src/streams/lxd/lxd-client.js';
import { toMember } from '../../src/streams/lxd/lxd-model.js';
import { MEMBER_LOOKUP_TIMEOUT_MS, resolveMemberHosts } from '../../src/streams/lxd/member-addresses.js';
import { fold, Snapshot } from '../../src/streams/index.js';
import type { ClusterMember } from '../../src/streams/model/model.js';
import { iface, instance } from '../helpers/model.js';

// The cluster parts that need no LXD: which member the client talks to, member host names, and the policy for
// instances on an unreachable member. The real 2-member cluster is exercised by test/cluster.

/** FAKE per-member clients: each only says which origin it was made for. */
function fakeMembers(): { made: string[]; connect: (origin: string) => LxdClient } {
  const made: string[] = [];
  const connect = (origin: string): LxdClient => {
    made.push(origin);
    return {
      target: origin,
      get: async <T>() => origin as T,
      events: () => {
        throw new Error('not used');
      },
      close: async () => undefined,
    };
  };
  return { made, connect };
}

t.test('member origins are normalised; unusable URLs are dropped', async (t) => {
  t.equal(originOf('https://10.77.0.11:8443'), 'https://10.77.0.11:8443');
  t.equal(originOf('https://Node2.Example:443/'), 'https://node2.example:443', 'explicit :443 kept (not https default-dropped)');
  t.equal(originOf('https://node3'), 'https://node3:8443', 'no port: LXD default');
  t.equal(originOf('https://[fd42:77::12]:8443'), 'https://[fd42:77::12]:8443');
  t.equal(originOf('http://10.0.0.1:8443'), undefined);
  t.equal(originOf(''), undefined);
  t.equal(originOf('https://x:99999'), undefined);
});

t.test('failover walks configured origins, then members learnt from LXD, round and round (fake member clients)', async (t) => {
  const { made, connect } = fakeMembers();
  const c = new FailoverClient(['https://10.77.0.12:8443'], connect);
  t.equal(c.target, 'https://10.77.0.12:8443');
  t.equal(await c.get('/1.0'), 'https://10.77.0.12:8443', 'requests go to the current member');
  t.equal(c.failover(), 'https://10.77.0.12:8443', 'nothing else known yet: stays');
  c.learnMembers(['https://10.77.0.11:8443', 'https://10.77.0.12:8443', 'not a url']);
  t.same(c.candidates, ['https://10.77.0.12:8443', 'https://10.77.0.11:8443']);
  t.equal(c.failover(), 'https://10.77.0.11:8443');
  t.equal(await c.get('/1.0'), 'https://10.77.0.11:8443');
  t.equal(c.failover(), 'https://10.77.0.12:8443', 'wraps around');
  c.learnMembers(['https://10.77.0.13:8443']);
  t.same(c.candidates, ['https://10.77.0.12:8443', 'https://10.77.0.13:8443'], 'a member LXD no longer lists is dropped');
  t.equal(c.failover(), 'https://10.77.0.13:8443');
  t.same(made, ['https://10.77.0.12:8443', 'https://10.77.0.11:8443', 'https://10.77.0.12:8443', 'https://10.77.0.13:8443']);
  await c.close();
});

t.test('several configured origins are tried in order', async (t) => {
  const { connect } = fakeMembers();
  const c = new FailoverClient(['https://a:8443', 'https://b:9443'], connect);
  t.equal(c.target, 'https://a:8443');
  t.equal(c.failover(), 'https://b:9443');
  t.equal(c.failover(), 'https://a:8443');
  t.throws(() => new FailoverClient([], connect));
});

t.test('a member URL with a host name is resolved (the system resolver, /etc/hosts), not skipped', async (t) => {
  const members = [
    toMember({ server_name: 'by-address', url: 'https://10.77.0.11:8443', status: 'Online' }),
    toMember({ server_name: 'by-name', url: 'https://localhost:8443', status: 'Online' }),
  ];
  t.same(members[1]!.ipv4, [], 'toMember alone has no address for a host name');
  const problems: string[] = [];
  const out = await resolveMemberHosts(members, undefined, (m, h, e) => problems.push(`${m} ${h} ${e}`));
  t.same(out[0], members[0], 'an address URL is kept as it is');
  t.ok(out[1]!.ipv4.includes('127.0.0.1'), `localhost resolved: ${JSON.stringify(out[1])}`);
  t.same(problems, []);
});

t.test('a host name that does not resolve leaves the member without addresses and is reported', async (t) => {
  const members = [toMember({ server_name: 'm1', url: 'https://nowhere.invalid:8443', status: 'Online' })];
  const problems: string[] = [];
  const failing = async () => {
    throw new Error('getaddrinfo ENOTFOUND nowhere.invalid');
  };
  const out = await resolveMemberHosts(members, failing, (m, h, e) => problems.push(`${m} ${h} ${e}`));
  t.same(out[0], members[0]);
  t.same(problems, ['m1 nowhere.invalid getaddrinfo ENOTFOUND nowhere.invalid']);
  const hung = () => new Promise<never>(() => undefined);
  const started = Date.now();
  const out2 = await resolveMemberHosts(members, hung, (m) => problems.push(m));
  t.same(out2[0]!.ipv4, []);
  t.ok(Date.now() - started < MEMBER_LOOKUP_TIMEOUT_MS + 1000, 'a hung lookup ends at the timeout');
});

const member = (name: string, status: string): ClusterMember => ({ name, url: `https://${name}:8443`, status, ipv4: [], ipv6: [] });
const web = (status: 'Running' | 'Error', location = 'm2') =>
  instance('web-1', { status, running: status === 'Running', location, interfaces: status === 'Running' ? [iface('eth0', ['10.78.0.5'])] : [] });

t.test('policy: a dead member\'s instances answer until LXD lists the member Offline, then leave', async (t) => {
  const online = [member('m1', 'Online'), member('m2', 'Online')];
  const offline = [member('m1', 'Online'), member('m2', 'Offline')];
  let s = fold(Snapshot.empty(), { type: 'listed', instances: [web('Running')], members: online, clustered: true, at: 1 });
  t.same(s.hosts('web-1').map((i) => i.interfaces[0]?.ipv4), [['10.78.0.5']]);

  // The member's daemon died: LXD reports the instance Error while the member is still Online.
  s = fold(s, { type: 'listed', instances: [web('Error')], members: online, clustered: true, at: 2 });
  t.equal(s.hosts('web-1').length, 1, 're-list while the member is Online: still answered with the last record');
  s = fold(s, { type: 'instance', instance: web('Error'), at: 3 });
  t.equal(s.hosts('web-1').length, 1, 'single re-read while the member is Online: still answered');

  s = fold(s, { type: 'listed', instances: [web('Error')], members: offline, clustered: true, at: 4 });
  t.equal(s.hosts('web-1').length, 0, 'member Offline: gone');
  t.equal(s.instances.get('default/web-1')?.status, 'Error', 'kept as LXD reports it, not running');

  s = fold(s, { type: 'listed', instances: [web('Error')], members: online, clustered: true, at: 5 });
  t.equal(s.hosts('web-1').length, 0, 'not resurrected from an Error record once dropped');
  s = fold(s, { type: 'listed', instances: [web('Running')], members: online, clustered: true, at: 6 });
  t.equal(s.hosts('web-1').length, 1, 'member back, LXD reports it Running: back');
});

t.test('policy: only Error on a clustered, Online member holds; stopped instances and standalone LXD do not', async (t) => {
  const online = [member('m2', 'Online')];
  const base = fold(Snapshot.empty(), { type: 'listed', instances: [web('Running')], members: online, clustered: true, at: 1 });
  const stopped = instance('web-1', { running: false, status: 'Stopped', location: 'm2' });
  t.equal(fold(base, { type: 'instance', instance: stopped, at: 2 }).hosts('web-1').length, 0, 'a stop is a stop');
  const standalone = fold(Snapshot.empty(), { type: 'listed', instances: [web('Running', 'none')], members: [member('vm', 'Online')], clustered: false, at: 1 });
  t.equal(fold(standalone, { type: 'instance', instance: web('Error', 'none'), at: 2 }).hosts('web-1').length, 0, 'standalone: Error is served as is');
  const unknownMember = fold(base, { type: 'instance', instance: web('Error', 'm9'), at: 2 });
  t.equal(unknownMember.hosts('web-1').length, 0, 'a member LXD does not list is not Online');
});
