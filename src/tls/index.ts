import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Bind, TlsFiles } from '../config/types.js';
import { selfSigned } from './generate.js';

/** A certificate chain and key in PEM, ready for tls.createServer. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint of the leaf certificate, colon-separated hex (as openssl prints it). */
  readonly fingerprint: string;
  readonly generated: boolean;
}

/**
 * The configured certificate and key, or a self-signed ECDSA P-256 pair for `hostname` and the bind addresses
 * when none are configured. Configured files are read now, so an unreadable one fails start-up rather than the
 * first handshake; their validity as PEM is checked too.
 */
export async function tlsMaterial(files: TlsFiles, hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
  if (files.certificate !== null && files.key !== null) {
    const cert = readFileSync(files.certificate, 'utf8');
    const key = readFileSync(files.key, 'utf8');
    let parsed: X509Certificate;
    try {
      parsed = new X509Certificate(cert);
    } catch (err) {
      throw new Error(`${files.certificate}: not a PEM certificate (${(err as Error).message})`);
    }
    return { cert, key, fingerprint: parsed.fingerprint256, generated: false };
  }
  return generateSelfSigned(hostname, binds);
}

/**
 * A self-signed ECDSA P-256 certificate for `hostname`, `localhost` and the bind addresses (generate.ts). It is
 * made in a child process: @peculiar/x509 and its Reflect polyfill cost ~10–20 MB of RSS that this process would
 * keep for its lifetime, for one certificate.
 */
export function generateSelfSigned(hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
  return selfSigned(hostname, binds);
}
