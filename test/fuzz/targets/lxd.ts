import { createHandler, datagramLimit, resolverOptions } from '../../../src/dns/index.js';
import { parseLeaseFile } from '../../../src/streams/lxd/lease-file.js';
import type { LxdEvent, LxdInstance, LxdLease, LxdMember } from '../../../src/streams/lxd/lxd-model.js';
import type { LxdNetwork } from '../../../src/streams/lxd/networks.js';
import { Reflector, SnapshotStore } from '../../../src/streams/index.js';
import { FakeClock, settle } from '../../helpers/fake-clock.js';
import { FakeLxd, lifecycle, lxdInstance } from '../../helpers/fake-lxd.js';
import { checkDnsReply } from '../dns-oracle.js';
import { check, within, type Target } from '../harness.js';
import { mutateText } from '../mutate.js';
import { mutateJson } from '../mutate-json.js';
import type { Rng } from '../random.js';
import dnsPacket from 'dns-packet';

/** A case's whole scripted LXD session must finish in this (fake time runs instantly; this bounds real time). */
const CASE_DEADLINE_MS = 5_000;
/** Fake time a case lets pass between events: past the settle polls and a watchdog tick, below the resync. */
const MAX_STEP_MS = 30_000;

const SERVICE_KEYS = { 'user.lexa.service.http.port': '80', 'user.lexa.service.http.tags': 'app,blue', 'user.lexa.alias': 'www', 'user.traefik.http.routers.a.rule': 'Host(`a`)' };
const ACTIONS = ['instance-started', 'instance-stopped', 'instance-updated', 'instance-deleted', 'instance-renamed', 'instance-created', 'instance-restarted', 'profile-updated', 'instance-shutdown', 'network-updated'];
const LEASE_FILE = '1700000000 00:16:3e:00:00:01 10.99.0.11 web-1 ff:00\n0 00:16:3e:00:00:02 10.99.0.12 * *\nduid 00:01:00:01\n';

const seedInstances = (): LxdInstance[] => [
  lxdInstance('web-1', { v4: '10.99.0.11', v6: 'fd42:99::11', config: SERVICE_KEYS }),
  lxdInstance('web-2', { v4: '10.99.0.12', profiles: ['default', 'web'] }),
  lxdInstance('db-1', { status: 'Stopped', v4: '10.99.0.21' }),
  lxdInstance('api', { project: 'other', v4: '10.98.0.31' }),
];
const seedLeases: LxdLease[] = [{ hostname: 'web-1', hwaddr: '00:16:3e:00:00:01', address: '10.99.0.11', type: 'dynamic', location: 'none' } as LxdLease];
const seedNetworks = [{ name: 'lxdbr0', managed: true, type: 'bridge', config: { 'ipv4.address': '10.99.0.1/24', 'ipv6.address': 'fd42:99::1/64' } }] as unknown as LxdNetwork[];
const seedMembers = [{ server_name: 'node-1', url: 'https://10.77.0.11:8443', status: 'Online' }] as unknown as LxdMember[];

/** A seed mutated half the time (as JSON); the cast is the point: LXD's answers are not what lexa's types say. */
const maybe = <T>(rng: Rng, v: T, p = 0.5): T => (rng.chance(p) ? (mutateJson(rng, v) as T) : v);

function event(rng: Rng, names: readonly string[]): Buffer {
  const name = rng.pick(names);
  const ev: LxdEvent = lifecycle(rng.pick(ACTIONS), rng.chance(0.9) ? `/1.0/instances/${name}${rng.chance(0.3) ? '?project=other' : ''}` : '/1.0/profiles/web', rng.chance(0.2) ? { old: '/1.0/instances/web-2', new: `/1.0/instances/${name}` } : undefined);
  switch (rng.int(6)) {
    case 0:
      return Buffer.from(mutateText(rng, JSON.stringify(ev), [JSON.stringify(ev)]));
    case 1:
    case 2:
      return Buffer.from(JSON.stringify(mutateJson(rng, ev)) ?? 'null');
    case 3:
      return rng.bytes(rng.int(64));
    default:
      return Buffer.from(JSON.stringify(ev));
  }
}

/**
 * A scripted LXD (test/helpers/fake-lxd.ts, a FAKE: no LXD involved) feeding the real reflector, list, refetch,
 * members and leases code answers that are wrong in type and size (mutated JSON of instances, networks, leases,
 * members, the server environment), then a sequence of events in any order, some not JSON at all, with fake time
 * passing between them. Oracles: nothing throws or rejects, the reflector stops cleanly, and the snapshot it
 * built answers DNS (every instance name, the apex) with replies the DNS oracle accepts. Also the dnsmasq lease
 * file parser with mutated text.
 */
export const lxdTarget: Target = {
  name: 'lxd',
  weight: 1,
  covers: 'src/streams/lxd (reflector, list, refetch, plan, lxd-model, members, leases, networks, lease-file) against a scripted fake LXD',
  async open(ctx) {
    return {
      async run(rng) {
        if (rng.chance(0.2)) {
          const text = mutateText(rng, LEASE_FILE, [LEASE_FILE]);
          ctx.note(text);
          const leases = parseLeaseFile(text, 1_700_000_000);
          check(Array.isArray(leases), 'the lease file parser returned no list');
          return;
        }
        const clock = new FakeClock();
        const lxd = new FakeLxd(clock);
        // Keyed by the seed's name: "LXD" answers a read of that name with the mutated record.
        const put = (seed: LxdInstance) => lxd.instances.set(`${seed.project}/${seed.name}`, maybe(rng, seed, 0.4));
        for (const seed of seedInstances()) if (rng.chance(0.8)) put(seed);
        const instances = [...lxd.instances.values()];
        lxd.leases.set('lxdbr0', maybe(rng, seedLeases, 0.3));
        lxd.networks = rng.chance(0.9) ? maybe(rng, seedNetworks, 0.3) : undefined;
        if (rng.chance(0.3)) {
          lxd.environment = maybe(rng, { server_name: 'node-1', server_clustered: true, addresses: ['10.77.0.11:8443'] });
          lxd.members = maybe(rng, seedMembers);
        } else if (rng.chance(0.2)) lxd.environment = maybe(rng, lxd.environment, 1);
        const events = Array.from({ length: rng.int(8) }, () => event(rng, ['web-1', 'web-2', 'db-1', 'api', 'gone', '%2e%2e', 'a'.repeat(300)]));
        ctx.note({ instances, environment: lxd.environment, members: lxd.members, networks: lxd.networks, events: events.map((e) => e.toString('latin1')) });
        const store = new SnapshotStore();
        const reflector = new Reflector(lxd, store, {
          project: 'default',
          allProjects: rng.chance(0.3),
          resyncIntervalMs: 0,
          watchdogMs: 25_000,
          logger: ctx.log,
          clock,
          random: () => rng.next(),
        });
        await within(CASE_DEADLINE_MS, 'the scripted LXD session', (async () => {
          reflector.start();
          await settle();
          lxd.socket.open();
          await settle();
          for (const e of events) {
            if (rng.chance(0.3)) put(rng.pick(seedInstances()));
            lxd.socket.emit('message', e, false);
            await clock.advance(rng.int(MAX_STEP_MS));
          }
          await clock.advance(MAX_STEP_MS);
        })());
        const snapshot = store.current;
        const handle = createHandler({ snapshot: () => snapshot, resolver: resolverOptions('lexa', { ttl: 0, negativeTtl: 5 }), log: ctx.log, cache: false });
        const limit = datagramLimit(4096);
        for (const name of ['lexa', ...[...snapshot.instances.values()].map((i) => `${i.name}.lexa`)]) {
          for (const type of ['A', 'AAAA', 'SRV', 'TXT'] as const) {
            const q = dnsPacket.encode({ type: 'query', id: 42, questions: [{ type, name }] });
            checkDnsReply(q, handle(q, limit), { kind: 'datagram', max: 4096 });
          }
        }
        reflector.stop();
        await settle();
      },
      async close() {},
    };
  },
};
