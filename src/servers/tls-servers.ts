import { constants, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { Bind } from '../config/index.js';
import type { Logger } from '../log/index.js';
import type { TlsMaterial } from '../tls/index.js';
import type { ConnectionLimits } from './fairness.js';
import { listenStreams, type Listeners } from './listen.js';

/** Listeners whose certificate can be replaced while they run (DoT, DoH, REST). */
export interface TlsListeners extends Listeners {
  /**
   * Serves `m` to connections accepted from now on; open connections keep the certificate they shook hands with.
   * Throws (changing nothing) when the certificate or key is unusable.
   */
  setTls(m: TlsMaterial): void;
}

/**
 * Context options for a certificate: TLS 1.2 or newer only (RFC 7858 §3.2 and RFC 8484 §5.2 point at BCP 195;
 * HTTP/2 requires 1.2 too), and no renegotiation (TLS 1.2's only way for a client to make the server redo the
 * expensive part of a handshake on an open connection).
 */
export function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.cert, key: m.key, minVersion: 'TLSv1.2', secureOptions: constants.SSL_OP_NO_RENEGOTIATION };
}

/** A CA file for mutual TLS, read and checked (readClientCa). */
export interface ClientCa {
  readonly file: string;
  readonly pem: Buffer;
}

/**
 * Reads a CA file (PEM, one or more certificates) for mutual TLS. Throws, naming the file, when it holds no
 * certificate that parses: Node would take such a file silently and then refuse every client.
 */
export function readClientCa(file: string): ClientCa {
  const pem = readFileSync(file);
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    if (blocks.length === 0) throw new Error('no PEM certificate');
    for (const block of blocks) new X509Certificate(block);
  } catch (err) {
    throw new Error(`${file}: not a PEM CA certificate (${(err as Error).message})`);
  }
  return { file, pem };
}

/**
 * Context options that ask every client for a certificate signed by `ca` and refuse the handshake without one
 * (mutual TLS). Only these CAs count, not the system's: an operator's private CA.
 */
export function clientAuthOptions(ca: ClientCa): tls.TlsOptions {
  return { ca: ca.pem, requestCert: true, rejectUnauthorized: true };
}

/**
 * TLS listeners on every bind address (see listenStreams for fair admission and tracking). `create` sets the
 * server's own options from contextOptions (plus `extra`); this adds dropping a client whose handshake fails or
 * times out (Node's tls.Server leaves the socket open on a handshake timeout unless told) and checked certificate
 * swaps, which keep `extra` (e.g. the client CA of clientAuthOptions) in the new context. `announce`: fields for the
 * listening line (listenStreams).
 */
export async function listenTls(
  binds: readonly Bind[],
  create: () => tls.Server,
  limits: ConnectionLimits,
  log: Logger,
  name: string,
  extra: tls.SecureContextOptions = {},
  announce: Readonly<Record<string, unknown>> = {},
): Promise<TlsListeners> {
  const withHandshakeGuard = () => {
    const server = create();
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      log.debug(`${name}: TLS handshake failed`, { from: socket.remoteAddress, error: err.message });
      socket.destroy();
    });
    return server;
  };
  const { ports, servers, close } = await listenStreams(binds, withHandshakeGuard, limits, log, name, announce);
  return {
    ports,
    setTls(m) {
      const opts = { ...contextOptions(m), ...extra };
      tls.createSecureContext(opts); // throws on a bad pair before any server has changed
      for (const s of servers) s.setSecureContext(opts);
      log.info(`${name}: certificate replaced`, { sha256: m.fingerprint });
    },
    close,
  };
}
