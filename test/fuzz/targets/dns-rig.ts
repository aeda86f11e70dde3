import { fromParsed, type Config } from '../../../src/config/index.js';
import { createHandler, datagramLimit, MESSAGE_LIMIT, resolverOptions, type HandleQuery, type ReplyLimit } from '../../../src/dns/index.js';
import type { HandleTransfer } from '../../../src/replication/index.js';
import { startAnswering, type Answering } from '../../../src/runtime/answering.js';
import { SnapshotStore } from '../../../src/streams/index.js';
import { clustered } from '../../helpers/dns-fixture.js';
import { checkDnsReply, checkReplyMessage, type ClientLimit } from '../dns-oracle.js';
import type { FuzzLog } from '../harness.js';
import { check } from '../harness.js';
import { FUZZ_TSIG_KEY } from '../corpus.js';

/**
 * The DNS answering the daemon builds (runtime/answering.ts: the one handler with TSIG, the answer cache, zone
 * transfers with serials), over the hand-built 2-member cluster every DNS unit test reads (helpers/dns-fixture.ts:
 * every name form), with transfers allowed from loopback and signed with FUZZ_TSIG_KEY; plus the same handler
 * without the cache, so a repeated question still walks decode → resolve → encode.
 */
export interface DnsRig {
  readonly config: Config;
  readonly answering: Answering;
  readonly uncached: HandleQuery;
  readonly udpLimit: ReplyLimit;
  /** Answers one query as the stream transports do (a transfer, or the handler) and checks every reply. */
  stream(query: Buffer, handle?: HandleQuery): void;
  /** Answers one query as UDP does and checks the reply. */
  datagram(query: Buffer, handle?: HandleQuery): void;
}

/** The HCL (as JSON) of the fuzzed DNS configuration. */
export const FUZZ_DNS_CONFIG = {
  server: [
    {
      lxd: [{ suffix: 'lexa' }],
      dns: [
        {
          transfer: [
            { allow: ['127.0.0.0/8', '::1'], key: [{ name: FUZZ_TSIG_KEY.name, secret: FUZZ_TSIG_KEY.secret.toString('base64') }] },
          ],
        },
      ],
    },
  ],
};

/** Where the transfers come from: allowed, so a signed transfer reaches the zone's records. */
const PEER = '127.0.0.1';

export function dnsRig(log: FuzzLog): DnsRig {
  const config = fromParsed(FUZZ_DNS_CONFIG, null);
  const store = new SnapshotStore(clustered());
  const answering = startAnswering(config, store, log);
  const uncached = createHandler({
    snapshot: () => store.current,
    resolver: resolverOptions('lexa', config.dns),
    udpPayload: config.dns.ednsUdpSize,
    log,
    cache: false,
  });
  const udpLimit = datagramLimit(config.dns.maxUdpReply);
  const clientUdp: ClientLimit = { kind: 'datagram', max: config.dns.maxUdpReply };
  return {
    config,
    answering,
    uncached,
    udpLimit,
    stream(query, handle = answering.handle) {
      const many = answering.transfer(query, PEER);
      if (many === undefined) return checkDnsReply(query, handle(query, MESSAGE_LIMIT), { kind: 'message' });
      check(many.length > 0, 'a transfer answered with no message');
      for (const m of many) checkReplyMessage(query, m, 65535);
    },
    datagram(query, handle = answering.handle) {
      checkDnsReply(query, handle(query, udpLimit), clientUdp);
    },
  };
}

export type { HandleTransfer };
