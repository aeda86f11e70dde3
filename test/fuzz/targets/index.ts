import type { Target } from '../harness.js';
import { agentTarget } from './agent.js';
import { configTarget } from './config.js';
import { dnsTarget } from './dns.js';
import { dohTarget } from './doh.js';
import { h2NativeTarget } from './h2-native.js';
import { lxdTarget } from './lxd.js';
import { restTarget } from './rest.js';
import { socketsTarget } from './sockets.js';
import { doqFramingTarget, tcpFramingTarget } from './streams.js';

/** Every fuzz target, in the order a run takes them. */
export const TARGETS: readonly Target[] = [dnsTarget, tcpFramingTarget, dohTarget, h2NativeTarget, doqFramingTarget, agentTarget, lxdTarget, configTarget, restTarget, socketsTarget];
