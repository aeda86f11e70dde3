import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { loggedPort } from '../helpers/net.js';

// The built CLI with DoT, DoH, DoQ and REST on configured certificate files: replacing the files and sending SIGHUP
// swaps the certificate for new connections without closing the listeners. Also: a configured file that is not a
// certificate fails start-up clearly.
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'lexa-reload-'));

function makeCert(name: string): string {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)], { stdio: 'ignore' });
  return execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', join(dir, `${name}.crt`)]).toString().trim().split('=')[1]!;
}

/** The SHA-256 fingerprint a fresh TLS connection to port sees. */
function fingerprint(port: number, alpn?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: [alpn] } : {}) }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

/** The independent DoQ client (scripts/doq-client.sh): one query to `port`, verifying the server against `ca`. */
function doqVerifies(port: number, ca: string): boolean {
  const client = execFileSync('sh', [join(import.meta.dirname, '..', '..', 'scripts', 'doq-client.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  try {
    execFileSync(client, ['-server', `127.0.0.1:${port}`, '-ca', ca, '-timeout', '3s', '-q'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const config = () => `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    certificate = "live.crt"
    key = "live.key"
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    dot {
      bind {
        host = "127.0.0.1"
        port = 0
      }
      certificate = "live.crt"
      key = "live.key"
    }
    doh {
      bind {
        host = "127.0.0.1"
        port = 0
      }
      certificate = "live.crt"
      key = "live.key"
    }
    quic {
      bind {
        host = "127.0.0.1"
        port = 0
      }
      certificate = "live.crt"
      key = "live.key"
    }
  }
}
`;

t.test('SIGHUP reloads certificate files into the running listeners', async (t) => {
  const first = makeCert('first');
  const second = makeCert('second');
  renameSync(join(dir, 'first.crt'), join(dir, 'live.crt'));
  renameSync(join(dir, 'first.key'), join(dir, 'live.key'));
  writeFileSync(join(dir, 'lexa.hcl'), config());
  const child = spawn(process.execPath, [CLI, 'server', '--config', join(dir, 'lexa.hcl')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  t.teardown(() => void child.kill('SIGKILL'));
  await waitFor(() => log.includes('"lexa started"'), { what: 'lexa to start' });
  // Every listener binds port 0; the log says which port each got.
  const ports = ['rest', 'dot', 'doh'].map((name) => loggedPort(log, name)!);
  t.ok(ports.every((p) => p > 0), `ports from the log: ${ports.join(', ')}`);
  for (const p of ports) t.equal(await fingerprint(p), first, `port ${p} presents the first certificate`);
  const doq = loggedPort(log, 'doq')!;
  execFileSync('cp', [join(dir, 'live.crt'), join(dir, 'first-ca.crt')]);
  t.ok(doqVerifies(doq, join(dir, 'first-ca.crt')), 'DoQ presents the first certificate');
  t.notOk(doqVerifies(doq, join(dir, 'second.crt')), 'and not the second');

  const held = tls.connect({ host: '127.0.0.1', port: ports[1], rejectUnauthorized: false });
  await new Promise((r) => held.once('secureConnect', r));
  renameSync(join(dir, 'second.crt'), join(dir, 'live.crt'));
  renameSync(join(dir, 'second.key'), join(dir, 'live.key'));
  child.kill('SIGHUP');
  await waitFor(() => (log.match(/"reloaded certificate"/g) ?? []).length === 4, { what: `four reloads logged (${log})` });
  for (const p of ports) t.equal(await fingerprint(p), second, `port ${p} presents the second certificate`);
  t.ok(doqVerifies(doq, join(dir, 'live.crt')), 'DoQ presents the second certificate to a new connection');
  t.notOk(doqVerifies(doq, join(dir, 'first-ca.crt')), 'and no longer the first');
  t.equal(held.destroyed, false, 'a connection opened before the reload stays open');
  held.destroy();
  t.equal(child.exitCode, null, 'lexa still runs');
});

t.test('a configured certificate that is not PEM fails start-up with exit 1', async (t) => {
  writeFileSync(join(dir, 'live.crt'), 'not a certificate\n');
  writeFileSync(join(dir, 'lexa.hcl'), config());
  const out = await new Promise<{ code: number | null; log: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, 'server', '--config', join(dir, 'lexa.hcl')]);
    let log = '';
    child.stdout.on('data', (d) => (log += d));
    child.on('exit', (code) => resolve({ code, log }));
  });
  t.equal(out.code, 1);
  const failed = out.log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l['msg'] === 'start-up failed');
  t.match(failed?.['error'], /live\.crt: not a PEM certificate/);
});
