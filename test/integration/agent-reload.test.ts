import { writeFileSync } from 'node:fs';
import tls from 'node:tls';
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { decodeServerMessage, encodeFrame, AgentFrameReader } from '../../src/agent/protocol.js';
import { startLexa } from '../helpers/lexa.js';
import { LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// SIGHUP applies a new shared agent token and default allow list to the running agent listener (no restart): the
// daemon's reload (what the CLI's SIGHUP handler calls with the re-read file) against the real LXD. A hello from
// the host carries a token: the reason it is refused says which gate it passed ("wrong token" is the first; "no
// running instance holds 127.0.0.1" comes after it).
const OLD = 'the-old-shared-agent-token-0001';
const NEW = 'the-new-shared-agent-token-0002';
const block = (token: string, services: string) =>
  `  agent {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    token = "${token}"\n    services = [${services}]\n  }\n`;

function refusal(port: number, token: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const reader = new AgentFrameReader();
    let reason = '';
    s.on('data', (d: Buffer) => {
      for (const b of reader.push(d).bodies) {
        const m = decodeServerMessage(b);
        if (m.ok && m.message.type === 'error') reason = m.message.reason;
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(reason));
    s.once('secureConnect', () => s.write(encodeFrame({ type: 'hello', version: 2, credential: 'any-credential-at-all', token })));
  });
}

t.test('a reload applies the new agent token and services default to the running listener', async (t) => {
  const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`, block(OLD, ''));
  t.teardown(() => lexa.close());
  await waitFor(() => lexa.daemon.store.current.synced, { what: 'lexa synced' });
  const port = lexa.daemon.ports.agent[0]!;
  t.match(await refusal(port, OLD), /no running instance holds 127\.0\.0\.1/, 'the old token passes the first gate');
  t.match(await refusal(port, NEW), /wrong token/);

  const file = lexa.daemon.config.source!;
  writeFileSync(file, `server {\n  lxd {\n    socket = "${LXD_SOCKET}"\n  }\n  tls {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n  }\n${block(NEW, '"https"')}}\n`);
  const plan = await lexa.daemon.reload(await loadConfig({ path: file }));
  t.ok(plan.live.includes('server.agent.token') && plan.live.includes('server.agent.services'), 'applied live');
  t.notOk(plan.restart.some((k) => k.startsWith('server.agent')), 'nothing of it waits for a restart');
  t.equal(lexa.daemon.ports.agent[0], port, 'the same listener (the port is 0 in both files: kept)');
  t.match(await refusal(port, OLD), /wrong token/, 'the old token is refused at once');
  t.match(await refusal(port, NEW), /no running instance holds 127\.0\.0\.1/, 'the new one passes');
  t.same(lexa.daemon.config.agent?.services, ['https']);
});
