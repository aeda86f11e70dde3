/**
 * The rules every way of declaring a service shares: `user.lexa.service.*` keys (services.ts), the agent's HCL
 * (agent/schema.ts) and its protocol (agent/protocol.ts). One place, so a service one accepts the others accept
 * too, and a bound added here holds everywhere.
 */

/**
 * The names lexa itself gives meaning to: service names and tags (`[tag.]<svc>.service`, `_<svc>._tcp`) and the
 * names of agent allow lists. Stricter than isDnsLabel (dns-label.ts), since these are typed by people and matched
 * exactly: lower-case letters, digits and inner hyphens (RFC 1123), 1..63 characters.
 */
export const SERVICE_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** An interface name as Linux allows it (IFNAMSIZ - 1 characters); whether it can be a DNS label is dns-label.ts's. */
export const INTERFACE_NAME = /^[A-Za-z0-9_.@-]{1,15}$/;

/** Inclusive ranges: a TCP/UDP port; RFC 2782's priority (lower preferred); lexa's relative weight (model.ts, Service.weight). */
export const PORT = { min: 1, max: 65535 } as const;
export const PRIORITY = { min: 0, max: 65535, default: 1 } as const;
export const WEIGHT = { min: 1, max: 256, default: 1 } as const;

/** Tags one service may carry: each is a DNS name of its own (`<tag>.<svc>.service`); more is not discovery. */
export const MAX_TAGS = 32;
