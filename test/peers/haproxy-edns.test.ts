import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runtime, slots } from '../helpers/haproxy.js';
import { startLexa, type TestLexa } from '../helpers/lexa.js';
import { deleteByPrefix, launch, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';

// Why a UDP reply may be larger than the 1232 bytes lexa advertises: real HAProxy 2.6 (accepted_payload_size
// 8192, as in examples/haproxy/haproxy.cfg) resolving an SRV set of 40 real containers, about 1.7 KB of answers
// (3.5 KB with their addresses). Through lexa's defaults (replies up to the client's size, at most 4096) every one
// of the 40 slots fills. With replies capped at 1232 (max_udp_reply = 1232) the answer is truncated to 28 records
// and HAProxy, which never retries over TCP, leaves the other slots empty: the cap would break HAProxy users.
const PREFIX = 'se-hap-';
const COUNT = 40;
const SERVICE = 'sedns';
const QNAME = `_${SERVICE}._tcp.service.lexa`;
/** Launches at once: LXD takes them in parallel, the machine has 2 cores. */
const LAUNCH_WORKERS = 6;

const dir = mkdtempSync(join(tmpdir(), 'lexa-haproxy-edns-'));
const admin = join(dir, 'admin.sock');

function haproxyConfig(full: TestLexa, capped: TestLexa): string {
  const resolvers = (name: string, port: number) => `resolvers ${name}
    nameserver lexa 127.0.0.1:${port}
    accepted_payload_size 8192
    resolve_retries 3
    timeout resolve 1s
    timeout retry 1s
    hold valid 10s
    hold obsolete 0s
`;
  const backend = (name: string, res: string) => `backend ${name}
    balance roundrobin
    server-template s ${COUNT} ${QNAME} resolvers ${res} init-addr none
`;
  return `global
    stats socket ${admin} mode 600 level admin
defaults
    mode tcp
    timeout client 5s
    timeout connect 5s
    timeout server 5s
${resolvers('lexa_default', full.dnsPort)}
${resolvers('lexa_capped', capped.dnsPort)}
${backend('be_default', 'lexa_default')}
${backend('be_capped', 'lexa_capped')}`;
}

t.test(`HAProxy fills all ${COUNT} slots of an SRV set larger than 1232 bytes only when replies may exceed 1232`, async (t) => {
  await deleteByPrefix(PREFIX);
  t.teardown(() => deleteByPrefix(PREFIX).then(() => undefined));
  const names = Array.from({ length: COUNT }, (_, i) => `${PREFIX}${String(i + 1).padStart(2, '0')}`);
  const queue = [...names];
  const started = Date.now();
  await Promise.all(
    Array.from({ length: LAUNCH_WORKERS }, async () => {
      for (let n = queue.shift(); n !== undefined; n = queue.shift()) await launch(n, { config: { [`user.lexa.service.${SERVICE}.port`]: '8080' } });
    }),
  );
  t.comment(`${COUNT} containers launched in ${Date.now() - started} ms`);

  const full = await startLexa(`    socket = "${LXD_SOCKET}"`);
  t.teardown(() => full.close());
  const capped = await startLexa(`    socket = "${LXD_SOCKET}"`, '  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    max_udp_reply = 1232\n  }\n');
  t.teardown(() => capped.close());
  // Every endpoint with its IPv4 address (DHCP) in both lexas' snapshots before HAProxy asks.
  for (const lexa of [full, capped]) {
    await waitFor(() => lexa.daemon.store.current.serviceEndpoints(SERVICE).filter((ep) => ep.iface.ipv4.length > 0).length === COUNT, {
      what: `${COUNT} ${SERVICE} endpoints with addresses`,
      timeoutMs: 30_000,
    });
  }

  writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(full, capped));
  const haproxy = spawn('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let haLog = '';
  haproxy.stdout.on('data', (d) => (haLog += d));
  haproxy.stderr.on('data', (d) => (haLog += d));
  t.teardown(() => void haproxy.kill('SIGKILL'));
  await waitFor(() => runtime(admin, 'show info').then((s) => s.includes('Name: HAProxy')).catch(() => false), { what: `HAProxy to start (${haLog})` });

  const filled = await waitFor(async () => {
    const s = await slots(admin, 'be_default');
    return s.length === COUNT ? s : false;
  }, { what: `be_default to fill all ${COUNT} slots`, timeoutMs: 20_000 });
  t.equal(new Set(filled).size, COUNT, `lexa's defaults: all ${COUNT} slots hold distinct container addresses`);
  t.ok(filled.every((s) => s.endsWith(':8080')), 'on the declared port');

  // The capped lexa's answers hold 28 of the 40 (TC set): HAProxy fills those and no more.
  const cappedSlots = await waitFor(async () => {
    const s = await slots(admin, 'be_capped');
    return s.length > 0 ? s : false;
  }, { what: 'be_capped to fill some slots', timeoutMs: 20_000 });
  t.ok(cappedSlots.length < COUNT, `replies capped at 1232: only ${cappedSlots.length} of ${COUNT} slots filled`);
});
