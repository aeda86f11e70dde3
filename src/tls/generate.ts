import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { Bind } from '../config/types.js';
import type { TlsMaterial } from './index.js';

/**
 * Self-signed certificates, made in a short-lived child process. The maker (@peculiar/x509 with its Reflect
 * polyfill, the one pure-JavaScript X.509 writer on npm; node:crypto reads certificates but writes none) adds
 * ~10–20 MB of RSS that a module, once imported, never gives back; the child returns it to the system when it
 * exits (as config/hcl-child.ts does for the HCL parser), for ~0.2 s of start-up once per certificate.
 *
 * The program is JavaScript handed to `node --eval`, so it runs the same from dist and from source with no loader.
 * It reads one JSON argument { hostname, names, ips, days } and prints { cert, key } in PEM, or { error }.
 */
const PROGRAM = `
import 'REFLECT';
import * as x509 from 'X509';
import { createHash, webcrypto } from 'node:crypto';
try {
  const { hostname, names, ips, days } = JSON.parse(process.argv[1]);
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: createHash('sha256').update(String(now) + Math.random()).digest('hex').slice(0, 16),
    name: 'CN=' + hostname,
    notBefore: new Date(now - 60000),
    notAfter: new Date(now + days * 86400000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...names.map((value) => ({ type: 'dns', value })),
        ...ips.map((value) => ({ type: 'ip', value })),
      ]),
    ],
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  const key = '-----BEGIN PRIVATE KEY-----\\n' + Buffer.from(pkcs8).toString('base64').replace(/(.{64})/g, '$1\\n').trimEnd() + '\\n-----END PRIVATE KEY-----\\n';
  process.stdout.write(JSON.stringify({ cert: cert.toString('pem'), key }));
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }));
}
`;

/** A generated certificate lives for the process, or is kept under the state directory (state.ts) and reused:
 * a year is ample and keeps clients that check dates happy. */
const GENERATED_VALIDITY_DAYS = 365;
/** Key generation and signing take milliseconds; node's start and the library's load ~0.2 s on an idle machine. */
const GENERATE_TIMEOUT_MS = 20_000;

/** The names and addresses a certificate for `hostname` and `binds` carries: wildcard binds add nothing. */
export function subjectNames(hostname: string, binds: readonly Bind[]): { names: string[]; ips: string[] } {
  const names = new Set<string>([hostname, 'localhost']);
  const ips = new Set<string>(['127.0.0.1', '::1']);
  for (const b of binds) {
    if (isIP(b.host) && b.host !== '0.0.0.0' && b.host !== '::') ips.add(b.host);
    else if (!isIP(b.host)) names.add(b.host);
  }
  return { names: [...names], ips: [...ips] };
}

const resolvePackage = createRequire(import.meta.url).resolve;

/** See generateSelfSigned (index.ts), the only caller. */
export async function selfSigned(hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
  // Resolved as paths (the child may run anywhere), by require's resolver: import.meta.resolve would run this
  // process's module hooks, which exist only to tell what this process loads.
  const url = (pkg: string) => JSON.stringify(pathToFileURL(resolvePackage(pkg)).href);
  const program = PROGRAM.replace("'REFLECT'", url('reflect-metadata')).replace("'X509'", url('@peculiar/x509'));
  const request = JSON.stringify({ hostname, ...subjectNames(hostname, binds), days: GENERATED_VALIDITY_DAYS });
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '--eval', program, request], { timeout: GENERATE_TIMEOUT_MS }, (err, out, errOut) => {
      if (err && !out) reject(new Error(`could not run the certificate generator: ${errOut || err.message}`));
      else resolve(out);
    });
  });
  let reply: { cert?: string; key?: string; error?: string };
  try {
    reply = JSON.parse(stdout) as typeof reply;
  } catch {
    throw new Error('the certificate generator gave no result');
  }
  if (reply.cert === undefined || reply.key === undefined) throw new Error(`certificate generation failed: ${reply.error ?? 'no certificate'}`);
  return { cert: reply.cert, key: reply.key, fingerprint: new X509Certificate(reply.cert).fingerprint256, generated: true };
}
