import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { QUICClient, type QUICStream } from '@matrixai/quic';
import { DOQ_ALPN } from '../../servers/doq/index.js';
import { silentLibraryLogger } from '../../servers/doq/quic.js';
import type { AttackContext, AttackRun } from './attacks.js';

/** A client's handshake that has not finished by then is given up (refused connections never finish theirs). */
const HANDSHAKE_MS = 3_000;
/** Streams each held connection tries to open: more than lexa grants a connection at once (100). */
export const STREAMS_PER_CONNECTION = 150;
/** Each stream announces a query of this many bytes and sends only the first byte of it. */
const ANNOUNCED = 100;

/**
 * Many QUIC connections and many streams on them (DoQ), from the attacker addresses: `size` connections are
 * attempted (real QUIC clients, @matrixai/quic); each one lexa admits opens STREAMS_PER_CONNECTION streams that
 * each start a query and never finish it, and then idles. Nothing is reopened: QUIC handshakes cost the attacker's
 * own process as much as lexa's, and one wave already shows what lexa holds.
 */
export function quicFlood(ctx: AttackContext): AttackRun {
  const crypto = { ops: { randomBytes: async (data: ArrayBuffer) => void randomBytes(data.byteLength).copy(Buffer.from(data)) } };
  const clients: QUICClient[] = [];
  const streams: QUICStream[] = [];
  let attempts = 0;
  let opened = 0;
  let refusedStreams = 0;
  const connect = async (address: string) => {
    attempts++;
    try {
      const client = await QUICClient.createQUICClient(
        {
          host: '127.0.0.1',
          port: ctx.port,
          localHost: address,
          crypto,
          logger: silentLibraryLogger,
          config: { verifyPeer: false, applicationProtos: [DOQ_ALPN], maxIdleTimeout: 60_000 },
        },
        { timer: HANDSHAKE_MS },
      );
      clients.push(client);
      for (let i = 0; i < STREAMS_PER_CONNECTION; i++) {
        try {
          const stream = client.connection.newStream('bidi');
          const writer = stream.writable.getWriter();
          writer.write(new Uint8Array([0, ANNOUNCED, 0])).catch(() => refusedStreams++);
          stream.readable.cancel().catch(() => undefined);
          streams.push(stream);
          opened++;
        } catch {
          refusedStreams++;
        }
      }
    } catch {
      // refused: the handshake never finished
    }
  };
  const total = Math.min(ctx.size, ctx.maxAttempts);
  const wave = Promise.allSettled(Array.from({ length: total }, (_, i) => connect(ctx.addresses[i % ctx.addresses.length]!)));
  return {
    // QUIC connections share lexa's one UDP socket, so its descriptors cannot count them; but a refused connection
    // never finishes its handshake: every client that did is one lexa holds.
    held: async () => (await wave, clients.length),
    stop: async () => {
      await wave;
      await Promise.allSettled(clients.map((c) => c.destroy({ force: true })));
      return { attempts, answers: { 'streams opened': opened, 'streams refused': refusedStreams } };
    },
  };
}
