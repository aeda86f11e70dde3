import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Bind } from '../config/types.js';
import { generateSelfSigned, type TlsMaterial } from './index.js';

/**
 * A generated certificate that outlives the process: kept as `<dir>/<server>.crt` and `<server>.key` (the key
 * 0600), and reused at the next start while it still names `hostname` and every bind address and is valid for
 * at least RENEW_BEFORE_MS. So a client that pinned its fingerprint keeps working across restarts.
 */

/** A kept certificate this close to expiry is replaced at start rather than left to lapse while running. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

export async function keptSelfSigned(dir: string, server: string, hostname: string, binds: readonly Bind[]): Promise<TlsMaterial & { readonly reused: boolean }> {
  const certFile = join(dir, `${server}.crt`);
  const keyFile = join(dir, `${server}.key`);
  const kept = readKept(certFile, keyFile, hostname, binds);
  if (kept) return { ...kept, reused: true };
  const made = await generateSelfSigned(hostname, binds);
  writeAtomically(keyFile, made.key, 0o600);
  writeAtomically(certFile, made.cert, 0o644);
  return { ...made, reused: false };
}

function readKept(certFile: string, keyFile: string, hostname: string, binds: readonly Bind[]): TlsMaterial | undefined {
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    const cert = readFileSync(certFile, 'utf8');
    const key = readFileSync(keyFile, 'utf8');
    const x = new X509Certificate(cert);
    if (Date.parse(x.validTo) - Date.now() < RENEW_BEFORE_MS) return undefined;
    if (!x.checkHost(hostname, { subject: 'never' })) return undefined;
    for (const b of binds) {
      if (b.host === '0.0.0.0' || b.host === '::') continue;
      if (isIP(b.host) ? !x.checkIP(b.host) : !x.checkHost(b.host, { subject: 'never' })) return undefined;
    }
    if (!x.checkPrivateKey(createPrivateKey(key))) return undefined;
    return { cert, key, fingerprint: x.fingerprint256, generated: true };
  } catch {
    return undefined; // unreadable or not a pair: make a new one
  }
}

function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  renameSync(tmp, file);
}
