import type { CheckResult, Instance, InstanceChecks, NetInterface, Service } from './model.js';

/**
 * Where a server-side check goes and whether its state lets a service be served: the rule DNS, REST, `/traefik`
 * and every other reader share, because the snapshot applies it once when it derives an instance's services.
 */

/** The named interface (case-insensitive), or the primary one when `name` is null. */
export function findInterface(inst: Instance, name: string | null): NetInterface | undefined {
  if (name === null) return inst.interfaces[0];
  const lname = name.toLowerCase();
  return inst.interfaces.find((i) => i.name.toLowerCase() === lname);
}

/** One check's destination: the address it connects to, and the text that names the target in results. */
export interface CheckTarget {
  readonly address: string;
  readonly port: number;
  /** `address:port` (`[v6]:port`) for tcp; the URL for http(s). */
  readonly target: string;
}

/**
 * The destination of `service`'s check on `inst`: its port at the first address LXD vouches for on the service's
 * interface (IPv4 first, as `/traefik` picks it), since only such an address is served to others. Undefined when
 * the service declares no check or that interface has no such address.
 */
export function checkTarget(inst: Instance, service: Service): CheckTarget | undefined {
  const check = service.check;
  if (check === undefined) return undefined;
  const iface = findInterface(inst, service.interface);
  const address = iface?.trustedIpv4[0] ?? iface?.trustedIpv6[0];
  if (address === undefined) return undefined;
  const hostPort = address.includes(':') ? `[${address}]:${service.port}` : `${address}:${service.port}`;
  return { address, port: service.port, target: check.kind === 'tcp' ? hostPort : `${check.kind}://${hostPort}${check.path ?? '/'}` };
}

/**
 * Whether `service` may be served given its instance's check states: always when it declares no check; else only
 * when the state for its current target is passing or unreachable (lexa cannot check it: served as if unchecked).
 * A service with no state yet is not served: a new service passes only after its first success (Consul starts
 * checks critical too), so a server that never answered is never announced.
 */
export function checkServes(inst: Instance, service: Service, checks: InstanceChecks | undefined): boolean {
  if (service.check === undefined) return true;
  const result = checkOf(checks, service.name);
  return result !== undefined && result.status !== 'critical' && result.target === checkTarget(inst, service)?.target;
}

/** The state of service `name`'s check; an own property only, so a service named `constructor` finds nothing inherited. */
export function checkOf(checks: InstanceChecks | undefined, name: string): CheckResult | undefined {
  const key = name.toLowerCase();
  return checks !== undefined && Object.hasOwn(checks, key) ? checks[key] : undefined;
}
