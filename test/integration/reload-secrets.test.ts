import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { encodeFrame } from '../../src/agent/protocol.js';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { loggedPort } from '../helpers/net.js';
import { kdigRaw } from '../helpers/peers.js';

// The built CLI on the real LXD, asked by the real kdig: SIGHUP applies a new transfer allow list, TSIG key and
// agent token at once (no restart, no listener reopened), the old ones stop working, and no secret (old, new or
// mistyped) reaches the log. The key is written `LeXa-Key.` in the file and on kdig's command line: names compare
// canonically.
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const dir = mkdtempSync(join(tmpdir(), 'lexa-reload-secrets-'));
const secret = () => randomBytes(32).toString('base64');
const [OLD_KEY, NEW_KEY] = [secret(), secret()];
const [OLD_TOKEN, NEW_TOKEN] = [`old-${randomBytes(12).toString('hex')}`, `new-${randomBytes(12).toString('hex')}`];

const config = (allow: string, key: string, token: string) => `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    enabled = false
  }
  dns {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    transfer {
      allow = ["${allow}"]
      key {
        name = "LeXa-Key."
        ${key}
      }
    }
  }
  agent {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    token = "${token}"
  }
}
`;

/** What kdig saw for an AXFR of `lexa` from `source` signed with `key`: 'transferred', or the error it printed. */
async function axfr(port: number, source: string, key: string): Promise<string> {
  const out = await kdigRaw(['@127.0.0.1', '-p', String(port), '-b', source, '-y', `hmac-sha256:LeXa-Key.:${key}`, 'axfr', 'lexa', '+time=5', '+retry=0']);
  if (/;; Received \d+ B \(\d+ messages?, \d+ records\)/.test(out) && !out.includes(';; ERROR')) return 'transferred';
  return /server replied with error '(\w+)'/.exec(out)?.[1] ?? out;
}

/** The agent endpoint's answer to a hello with `token`: the reason it closed the connection, or the message type. */
function hello(port: number, token: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => s.write(encodeFrame({ type: 'hello', version: 2, credential: 'not-the-instance-credential', token })));
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4 || buf.length < 4 + buf.readUInt32BE(0)) return;
      const m = JSON.parse(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString()) as { type: string; reason?: string };
      s.destroy();
      resolve(m.reason ?? m.type);
    });
    s.on('error', reject);
  });
}

t.test('SIGHUP applies a new transfer allow list, TSIG key and agent token; the old ones are refused', async (t) => {
  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, config('127.0.0.1', `secret = "${OLD_KEY}"`, OLD_TOKEN));
  const child = spawn(process.execPath, [CLI, 'server', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  t.teardown(() => void child.kill('SIGKILL'));
  await waitFor(() => log.includes('"lexa started"') && loggedPort(log, 'agent') !== undefined, { what: 'lexa to start' });
  await waitFor(() => log.includes('"lxd connected"'), { what: 'the first list of LXD', timeoutMs: 15_000 });
  const port = loggedPort(log, 'dns/tcp') ?? 0;
  const agentPort = loggedPort(log, 'agent')!;
  t.ok(port > 0 && agentPort > 0, `DNS on ${port}, agents on ${agentPort}`);

  t.equal(await axfr(port, '127.0.0.1', OLD_KEY), 'transferred', 'before: the allowed address with the key transfers');
  t.equal(await axfr(port, '127.0.0.2', OLD_KEY), 'REFUSED', 'before: another address is refused');
  t.equal(await hello(agentPort, `x${OLD_TOKEN}`), 'wrong token', 'before: a wrong token is refused');
  t.not(await hello(agentPort, OLD_TOKEN), 'wrong token', 'before: the token passes (the address and the instance credential then decide)');

  writeFileSync(file, config('127.0.0.2', `secret_file = "new.key"`, NEW_TOKEN));
  writeFileSync(join(dir, 'new.key'), `${NEW_KEY}\n`);
  child.kill('SIGHUP');
  await waitFor(() => log.includes('"configuration reloaded"'), { what: `the reload (${log})` });
  const reloaded = JSON.parse(log.split('\n').find((l) => l.includes('"configuration reloaded"'))!) as { applied: string[]; opened: string[] };
  t.match(reloaded.applied, ['server.dns.transfer', 'server.agent.token'], 'both applied live');
  t.same(reloaded.opened, [], 'no listener reopened');
  t.notMatch(log, /need a restart/, 'nothing waits for a restart');

  t.equal(await axfr(port, '127.0.0.1', NEW_KEY), 'REFUSED', 'after: the old allowed address is refused, even with the new key');
  t.equal(await axfr(port, '127.0.0.2', OLD_KEY), 'BADSIG', 'after: the old key is refused from the new address');
  t.equal(await axfr(port, '127.0.0.2', NEW_KEY), 'transferred', 'after: the new address with the new key transfers');
  t.equal(await hello(agentPort, OLD_TOKEN), 'wrong token', 'after: the old token is refused');
  t.not(await hello(agentPort, NEW_TOKEN), 'wrong token', 'after: the new token passes');

  // A mistyped secret on the next SIGHUP: the reload is rejected, the problem is logged, the value is not.
  const typo = `${NEW_KEY.slice(0, 20)}!typo`;
  writeFileSync(file, config('127.0.0.2', `secret = "${typo}"`, NEW_TOKEN));
  child.kill('SIGHUP');
  await waitFor(() => log.includes('"reload rejected'), { what: 'the rejected reload' });
  const problems = log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['msg'] === 'reload: configuration error');
  t.ok(problems.some((l) => /server\.dns\.transfer\.key\.secret: "\(redacted\)" is not base64/.test(String(l['problem']))), 'the problem is logged, the value redacted');
  t.equal(await axfr(port, '127.0.0.2', NEW_KEY), 'transferred', 'the running key stays');
  for (const [name, value] of Object.entries({ OLD_KEY, NEW_KEY, OLD_TOKEN, NEW_TOKEN, typo }))
    t.notOk(log.includes(value), `${name} appears nowhere in the log`);
  t.equal(child.exitCode, null, 'lexa still runs');
});
