import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * The certificate for `server`: the kept one when it still fits, else a new one, kept when the directory takes it.
 * A directory that cannot take it (full, or turned read-only since start-up) does not stop lexa: the new
 * certificate is served anyway and `notKept` says why it was not kept (it changes at the next start; the caller
 * logs it). Serving DNS matters more than a stable fingerprint, and plain DNS needs no certificate at all.
 */
export async function keptSelfSigned(
  dir: string,
  server: string,
  hostname: string,
  binds: readonly Bind[],
): Promise<TlsMaterial & { readonly reused: boolean; readonly notKept?: string }> {
  const certFile = join(dir, `${server}.crt`);
  const keyFile = join(dir, `${server}.key`);
  const kept = readKept(certFile, keyFile, hostname, binds);
  if (kept) return { ...kept, reused: true };
  const made = await generateSelfSigned(hostname, binds);
  try {
    writeAtomically(keyFile, made.key, 0o600);
    writeAtomically(certFile, made.cert, 0o644);
  } catch (err) {
    return { ...made, reused: false, notKept: (err as Error).message };
  }
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

/** Writes `file` whole or not at all; a failed write leaves no partial temporary file behind. */
function writeAtomically(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
