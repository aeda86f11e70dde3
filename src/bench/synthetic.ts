import { NO_TRAEFIK_LABELS, type Instance, type LxdInstance, type NetInterface, type Service } from '../streams/index.js';

/**
 * The synthetic instances the benchmarks build, in one place: a running container in the model (for in-process
 * benches that build a Snapshot directly) and as LXD's `GET /1.0/instances?recursion=2` reports it (for the
 * simulated LXD and the bench server). Synthetic by design: no real LXD holds 10,000 instances on this machine.
 */

/** An interface whose addresses LXD vouches for (as a DHCP lease would). */
export function trustedEth0(ipv4: string[], ipv6: string[]): NetInterface {
  return { name: 'eth0', ipv4, ipv6, trustedIpv4: ipv4, trustedIpv6: ipv6 };
}

/** A config service on the primary interface, tcp, priority 1 and weight 1. */
export function configService(name: string, port: number): Service {
  return { name, port, proto: 'tcp', tags: [], interface: null, priority: 1, weight: 1, source: 'config' };
}

/** A running container in the default project with one trusted interface and the given services. */
export function runningContainer(name: string, ipv4: string, ipv6: string, services: Service[]): Instance {
  return {
    key: `default/${name}`,
    name,
    project: 'default',
    type: 'container',
    status: 'Running',
    running: true,
    location: 'none',
    interfaces: [trustedEth0([ipv4], [ipv6])],
    services,
    traefik: NO_TRAEFIK_LABELS,
    configErrors: [],
    profiles: [],
  };
}

/** LXD's wire shape of a running container with one managed NIC `eth0` on `network` and the given config keys. */
export function lxdRunningContainer(name: string, ipv4: string, ipv6: string, network: string, config: Record<string, string>): LxdInstance {
  return {
    name,
    project: 'default',
    type: 'container',
    status: 'Running',
    location: 'none',
    profiles: ['default'],
    expanded_config: config,
    expanded_devices: { eth0: { type: 'nic', network, name: 'eth0' } },
    state: {
      status: 'Running',
      network: {
        eth0: {
          type: 'broadcast',
          addresses: [
            { family: 'inet', address: ipv4, scope: 'global' },
            { family: 'inet6', address: ipv6, scope: 'global' },
          ],
        },
        lo: { type: 'loopback', addresses: [{ family: 'inet', address: '127.0.0.1', scope: 'local' }] },
      },
    },
  };
}
