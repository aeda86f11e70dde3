import 'reflect-metadata'; // @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded first
import { X509Certificate, createHash, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';
import type { Bind } from '../config/types.js';
import type { TlsMaterial } from './index.js';

/** A generated certificate lives for the process, or is kept under the state directory (state.ts) and reused:
 * a year is ample and keeps clients that check dates happy. */
const GENERATED_VALIDITY_DAYS = 365;

x509.cryptoProvider.set(webcrypto);

/** See generateSelfSigned (index.ts), the only caller. */
export async function selfSigned(hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
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
