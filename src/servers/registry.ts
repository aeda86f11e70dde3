import { agentTransport } from './agent/descriptor.js';
import type { DnsContext, TransportDescriptor } from './descriptor.js';
import { dnsTransport } from './dns/descriptor.js';
import { dohTransport } from './doh/descriptor.js';
import { doqTransport } from './doq/descriptor.js';
import { dotTransport } from './dot/descriptor.js';
import { metricsTransport } from './metrics/descriptor.js';
import { restTransport } from './rest/descriptor.js';

/** The transports that answer DNS, in the order they open; they need only the DNS context (the bench serves them). */
export const DNS_TRANSPORTS: readonly TransportDescriptor<DnsContext>[] = [dnsTransport, dotTransport, dohTransport, doqTransport];

/**
 * Every transport lexa serves, once each, in the order they open and the reload plan lists them. A new listener
 * is a descriptor in its folder and a line here: the daemon, reload, certificates and `ports` follow.
 */
export const TRANSPORTS: readonly TransportDescriptor[] = [...DNS_TRANSPORTS, restTransport, metricsTransport, agentTransport];
