import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { startDaemon } from '../../src/daemon.js';
import { memoryLogger } from '../../src/log/index.js';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { startLexa } from '../helpers/lexa.js';

// Mutual TLS on the REST API (server.tls.client_ca), with the real LXD behind lexa and the real curl in front:
// certificates made here with openssl, as an operator would. A client without a certificate, or with one another
// CA signed, gets no answer at all (the handshake is refused); one the configured CA signed gets the API. A
// certificate swap (SIGHUP) keeps asking for client certificates; SIGHUP turns mutual TLS on and swaps the CA.
const dir = mkdtempSync(join(tmpdir(), 'lexa-mtls-'));
const at = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA (`<name>-ca.crt/.key`) and a client certificate it signed (`<name>-client.crt/.key`). */
function caAndClient(name: string): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name} CA`,
    '-keyout', `${name}-ca.key`, '-out', `${name}-ca.crt`);
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name} client`,
    '-keyout', `${name}-client.key`, '-out', `${name}-client.csr`);
  openssl('x509', '-req', '-in', `${name}-client.csr`, '-CA', `${name}-ca.crt`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-days', '2',
    '-out', `${name}-client.crt`);
}

/** The REST server's own certificate (self-signed, for 127.0.0.1). */
function serverCert(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=lexa',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', 'rest.key', '-out', 'rest.crt');
}

/** curl's exit code and HTTP status for GET `url` (status 0 when no HTTP answer came). */
function get(url: string, ...args: string[]): Promise<{ code: number; status: number }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sk', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', ...args, url], (err, stdout) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, status: Number(stdout) || 0 }),
    );
  });
}

t.test('with server.tls.client_ca, only clients holding a certificate that CA signed get an answer', async (t) => {
  caAndClient('good');
  caAndClient('rogue');
  serverCert();
  const lexa = await startLexa(
    `    socket = "${LXD_SOCKET}"`,
    `  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    certificate = "${at('rest.crt')}"\n    key = "${at('rest.key')}"\n    client_ca = "${at('good-ca.crt')}"\n  }\n`,
  );
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' }); // before: 503, an answer still
  const url = `${lexa.restUrl}/containers/`;
  const good = ['--cert', at('good-client.crt'), '--key', at('good-client.key')];
  const rogue = ['--cert', at('rogue-client.crt'), '--key', at('rogue-client.key')];

  const check = async (when: string) => {
    t.same(await get(url, ...good), { code: 0, status: 200 }, `${when}: a client certificate the CA signed: 200`);
    const none = await get(url);
    t.equal(none.status, 0, `${when}: no client certificate: no HTTP answer at all`);
    t.not(none.code, 0, `${when}: curl fails (${none.code}: the handshake was refused)`);
    const other = await get(url, ...rogue);
    t.equal(other.status, 0, `${when}: a certificate another CA signed: no HTTP answer`);
    t.not(other.code, 0, `${when}: curl fails (${other.code})`);
  };
  await check('at start');
  // The server certificate is re-read and swapped (what SIGHUP does): the client CA must survive the swap.
  serverCert();
  await lexa.daemon.reloadCertificates();
  t.ok(lexa.log.lines.some((l) => l['msg'] === 'reloaded certificate' && l['server'] === 'rest'), 'the server certificate was swapped');
  await check('after a certificate swap');
});

t.test('without client_ca the REST API asks for no certificate (the default)', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });
  t.same(await get(`${lexa.restUrl}/containers/`), { code: 0, status: 200 });
});

t.test('a client_ca that holds no certificate fails start-up clearly (Node would accept it and refuse every client)', async (t) => {
  const bad = at('not-a-ca.crt');
  writeFileSync(bad, 'not a certificate\n');
  await t.rejects(
    startLexa(`    socket = "${LXD_SOCKET}"`, `  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    client_ca = "${bad}"\n  }\n`),
    /not-a-ca\.crt: not a PEM CA certificate/,
  );
});

t.test('SIGHUP turns mutual TLS on, and a CA file changed in place replaces the CA', async (t) => {
  const file = at('reload.hcl');
  const hcl = (clientCa: string) =>
    `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n  }\n  dns {\n    enabled = false\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    ${clientCa}\n  }\n}\n`;
  writeFileSync(file, hcl(''));
  const daemon = await startDaemon(await loadConfig({ path: file }), memoryLogger());
  t.teardown(() => daemon.close());
  await waitFor(() => daemon.store.current.synced, { what: 'lexa synced' });
  const url = () => `https://127.0.0.1:${daemon.ports.rest[0]}/containers/`;
  const good = ['--cert', at('good-client.crt'), '--key', at('good-client.key')];
  const rogue = ['--cert', at('rogue-client.crt'), '--key', at('rogue-client.key')];
  t.equal((await get(url())).status, 200, 'before: no certificate needed');

  copyFileSync(at('good-ca.crt'), at('live-ca.crt'));
  writeFileSync(file, hcl('client_ca = "live-ca.crt"'));
  const on = await daemon.reload(await loadConfig({ path: file }));
  t.same(on.live, ['server.tls.client_ca'], 'applied live');
  t.equal((await get(url())).status, 0, 'after: no certificate, no answer');
  t.equal((await get(url(), ...good)).status, 200, 'after: the CA\'s client is served');
  t.equal((await get(url(), ...rogue)).status, 0, 'after: another CA\'s client is not');

  copyFileSync(at('rogue-ca.crt'), at('live-ca.crt'));
  await daemon.reload(await loadConfig({ path: file }));
  t.equal((await get(url(), ...good)).status, 0, 'the old CA\'s client is refused once the file holds another CA');
  t.equal((await get(url(), ...rogue)).status, 200, 'the new CA\'s client is served');

  writeFileSync(at('live-ca.crt'), 'truncated by a bad copy\n');
  await t.rejects(daemon.reload(await loadConfig({ path: file })), /live-ca\.crt: not a PEM CA certificate/, 'a broken CA file: the reload is rejected');
  t.equal((await get(url(), ...rogue)).status, 200, 'and the running listeners keep the CA they had');
  t.equal((await get(url())).status, 0, 'still refusing clients without a certificate');
});
