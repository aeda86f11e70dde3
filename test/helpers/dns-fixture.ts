import type { Outcome, Question, ResolveOptions } from '../../src/dns/resolve.js';
import { iface, instance, member, seeded, service, SERIAL, snapshotOf } from './model.js';

/**
 * The hand-built LXD every DNS unit test reads (no LXD involved): a 2-member cluster with a few instances
 * covering every name form. The standalone variant is the same instances on a non-clustered LXD.
 */
export const INSTANCES = [
  instance('web-1', {
    location: 'node-1',
    interfaces: [iface('eth0', ['10.99.0.11'], ['fd42:99::11']), iface('eth1', ['10.100.0.11'])],
    services: [
      service('https', { tags: ['app', 'Blue'], priority: 1, weight: 1 }),
      service('dns', { proto: 'udp', port: 53, tags: ['app'] }),
      service('dns', { proto: 'tcp', port: 53, tags: ['app'] }),
    ],
  }),
  instance('web-2', {
    location: 'node-2',
    interfaces: [iface('eth0', ['10.99.0.12'])],
    services: [service('https', { tags: ['app'], priority: 2, weight: 256 })],
  }),
  instance('web-3', {
    running: false,
    location: 'node-2',
    interfaces: [iface('eth0', ['10.99.0.13'])],
    services: [service('https')],
  }),
  instance('db-1', {
    location: 'node-1',
    interfaces: [iface('eth0', ['10.99.0.21'], ['fd42:99::21']), iface('eth1', ['10.100.0.21'])],
    services: [service('mysql', { port: 3306, tags: ['primary'], interface: 'eth1' })],
  }),
  instance('db-2', {
    location: 'node-1',
    interfaces: [iface('eth0', [], ['fd42:99::22'])],
    services: [service('mysql', { port: 3306, tags: ['replica'] }), service('pg', { interface: 'eth9' })],
  }),
  instance('new-1', { location: 'node-2' }),
  instance('api', { location: 'node-1', interfaces: [iface('eth0', ['10.99.0.31'])] }),
  instance('api', { project: 'other', location: 'node-2', interfaces: [iface('eth0', ['10.98.0.31'])] }),
  instance('lost-1', { location: 'node-3', interfaces: [iface('eth0', ['10.99.0.41'])] }),
];

export const MEMBERS = [member('node-1', ['10.77.0.11'], ['fd42:77::11']), member('node-2', ['10.77.0.12'])];

export const clustered = () => snapshotOf(INSTANCES, MEMBERS, true);
/** A standalone LXD: the reflector records the server as its one member (named `vm`, API on 10.0.0.5). */
export const standalone = () =>
  snapshotOf(
    INSTANCES.map((i) => ({ ...i, location: 'none' })),
    [member('vm', ['10.0.0.5'])],
    false,
  );
/** A standalone LXD lexa knows nothing about (no member record). */
export const standaloneUnknown = () =>
  snapshotOf(
    INSTANCES.map((i) => ({ ...i, location: 'none' })),
    [],
    false,
  );

export const OPTS: ResolveOptions = { suffix: 'lexa', ttl: 0, soa: { minimum: 5 }, random: seeded(1) };
export const SOA = `lexa. 5 IN SOA ns.lexa. hostmaster.lexa. ${SERIAL} 3600 600 604800 5`;

/** "name TYPE [CLASS]" → Question. */
export function question(text: string): Question {
  const [name, type, klass] = text.split(' ');
  return { name: name!, type: type ?? 'A', class: klass ?? 'IN' };
}

/** One table row: the question, the outcome kind, and for answers the records as zone-file lines. */
export interface Case {
  readonly q: string;
  readonly kind: Outcome['kind'];
  readonly answers?: readonly string[];
  readonly additionals?: readonly string[];
}
