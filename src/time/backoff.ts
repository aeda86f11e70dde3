/**
 * How long a client waits before reconnecting: shared by the LXD watch and the in-container agent, and kept apart
 * from the LXD client so the agent binary does not load an HTTP and WebSocket stack to compute a delay.
 */

/** First reconnect delay; doubles per failed attempt up to the maximum, with full jitter. */
export const RECONNECT_BASE_MS = 500;
/**
 * Cap on the reconnect delay: a restarted LXD is back within seconds and names must follow it quickly; one
 * attempt per ~5 s does not hammer a dead one.
 */
export const RECONNECT_MAX_MS = 5_000;
/** Beyond this many doublings the cap has long been reached; bounding the exponent keeps the arithmetic finite. */
const MAX_DOUBLINGS = 10;

/**
 * The delay before the next connection attempt after `failures` consecutive short-lived connections (0 after a
 * healthy one): uniform in [0, min(RECONNECT_MAX_MS, RECONNECT_BASE_MS · 2^failures)) ("full jitter"), so
 * several lexas that lost the same LXD do not come back in step.
 */
export function reconnectDelay(failures: number, random: () => number): number {
  return random() * Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(failures, MAX_DOUBLINGS));
}
