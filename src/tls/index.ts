import 'reflect-metadata'; // @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded first
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { Bind, TlsFiles } from '../config/types.js';

/** A certificate chain and key in PEM, ready for tls.createServer. */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint of the leaf certificate, colon-separated hex (as openssl prints it). */
  readonly fingerprint: string;
  readonly generated: boolean;
}

/** A generated certificate lives for the process, or is kept under the state directory (state.ts) and reused:
 * a year is ample and keeps clients that check dates happy. */
const GENERATED_VALIDITY_DAYS = 365;

x509.cryptoProvider.set(webcrypto);

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

export async function generateSelfSigned(hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = new Set<string>([hostname, 'localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  for (const b of binds) {
    if (isIP(b.host) && b.host !== '0.0.0.0' && b.host !== '::') ips.add(b.host);
    else if (!isIP(b.host)) names.add(b.host);
  }
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: createHash('sha256').update(String(now) + Math.random()).digest('hex').slice(0, 16),
    name: `CN=${hostname}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + GENERATED_VALIDITY_DAYS * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...[...names].map((value) => ({ type: 'dns' as const, value })),
        ...[...ips].map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  const pkcs8 = (await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer;
  const key = `-----BEGIN PRIVATE KEY-----\n${Buffer.from(pkcs8).toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  const pem = cert.toString('pem');
  return { cert: pem, key, fingerprint: new X509Certificate(pem).fingerprint256, generated: true };
}
