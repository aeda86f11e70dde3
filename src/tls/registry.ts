import type { Bind, TlsFiles } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { tlsMaterial, type TlsMaterial } from './index.js';
import { keptSelfSigned } from './state.js';

/** Something presenting a certificate that can take a new one while it runs (TlsListeners). */
export interface CertificateUser {
  setTls(m: TlsMaterial): void;
}

/**
 * The certificates lexa's TLS servers present, by server name ('dot', 'doh', 'doq', 'rest', 'agent'): loads each
 * once (configured files, or a generated self-signed pair whose fingerprint is logged, kept under the state
 * directory when there is one), and on reload (SIGHUP) re-reads the configured files and hands each server its
 * new certificate (every one of them swaps it for new connections, DoQ included). A file that fails to load or a
 * certificate a server rejects keeps that server's current one, logged; a generated certificate is never
 * replaced by a reload.
 */
export class CertificateRegistry {
  readonly #log: Logger;
  readonly #entries = new Map<string, { files: TlsFiles; material: TlsMaterial; user: CertificateUser | undefined }>();

  readonly #stateDirectory: string | null;

  /** With a `stateDirectory`, generated certificates are kept there and reused across restarts (tls/state.ts). */
  constructor(log: Logger, stateDirectory: string | null = null) {
    this.#log = log;
    this.#stateDirectory = stateDirectory;
  }

  /** Loads the certificate for server `name`; throws when configured files are unusable (start-up fails). */
  async load(name: string, files: TlsFiles, hostname: string, binds: readonly Bind[]): Promise<TlsMaterial> {
    const kept = files.certificate === null && this.#stateDirectory !== null;
    const material = kept ? await keptSelfSigned(this.#stateDirectory!, name, hostname, binds) : await tlsMaterial(files, hostname, binds);
    const user = this.#entries.get(name)?.user;
    this.#entries.set(name, { files, material, user });
    if ('notKept' in material && material.notKept !== undefined)
      this.#log.warn('generated a self-signed certificate but could not keep it; it will change at the next start', {
        server: name,
        hostname,
        sha256: material.fingerprint,
        dir: this.#stateDirectory,
        error: material.notKept,
      });
    else if ('reused' in material && material.reused)
      this.#log.info('reusing a kept self-signed certificate', { server: name, hostname, sha256: material.fingerprint, dir: this.#stateDirectory });
    else if (material.generated)
      this.#log.info('generated a self-signed certificate', { server: name, hostname, sha256: material.fingerprint, ...(kept ? { dir: this.#stateDirectory } : {}) });
    else this.#log.info('loaded certificate', { server: name, file: files.certificate, sha256: material.fingerprint });
    return material;
  }

  /** Registers the running server that presents `name`'s certificate, so reload() can swap it. */
  attach(name: string, user: CertificateUser | undefined): void {
    const entry = this.#entries.get(name);
    if (entry) entry.user = user;
  }

  /** The certificate each server presents now, by name. */
  get current(): ReadonlyMap<string, TlsMaterial> {
    return new Map([...this.#entries].map(([name, e]) => [name, e.material]));
  }

  /**
   * Re-reads every configured certificate (or only those of `servers`) and swaps it into its server (new
   * connections get it).
   */
  async reload(servers?: readonly string[]): Promise<void> {
    for (const [name, entry] of this.#entries) {
      if (servers && !servers.includes(name)) continue;
      if (entry.files.certificate === null) continue; // generated: kept for the process's life
      try {
        const material = await tlsMaterial(entry.files, '', []);
        if (entry.user === undefined) {
          this.#log.warn('certificate reload needs a restart for this server', { server: name });
          continue;
        }
        entry.user.setTls(material);
        entry.material = material;
        this.#log.info('reloaded certificate', { server: name, file: entry.files.certificate, sha256: material.fingerprint });
      } catch (err) {
        this.#log.error('certificate reload failed; keeping the current one', { server: name, error: (err as Error).message });
      }
    }
  }
}
