import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A self-signed P-256 certificate for `localhost` and 127.0.0.1 (2 days), made by openssl in a new temp directory. */
export interface TestCert {
  /** The temp directory, for other files of the test. */
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** As the servers take it (a supplied certificate, not generated). */
  readonly tls: { cert: string; key: string; fingerprint: string; generated: boolean };
}

export function localhostCert(prefix: string): TestCert {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'pipe' });
  return { dir, certFile, keyFile, tls: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), fingerprint: '', generated: false } };
}
