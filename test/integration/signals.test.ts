import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { dig } from '../helpers/dig.js';
import { LexaProcess } from '../helpers/cli-process.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';

// SIGHUP and SIGTERM on the built CLI while a client keeps querying it over UDP: a reload applies suffix, TTL,
// log level and listener changes without dropping a query; an invalid file changes nothing and logs every
// problem; SIGTERM exits 0 promptly with every query sent before it answered.
const dir = mkdtempSync(join(tmpdir(), 'lexa-signals-'));
const file = join(dir, 'lexa.hcl');
const bind = (port: number) => `bind {\n      host = "127.0.0.1"\n      port = ${port}\n    }`;
const config = (o: { suffix: string; ttl: number; level: string; dnsPorts: number[]; dot: boolean }) => `server {
  lxd {
    socket = "${LXD_SOCKET}"
    suffix = "${o.suffix}"
  }
  tls {
    ${bind(0)}
  }
  dns {
    ${o.dnsPorts.map(bind).join('\n    ')}
    ttl = ${o.ttl}
    negative_ttl = ${o.ttl}
${o.dot ? `    dot {\n      ${bind(0)}\n    }` : ''}
  }
  log {
    level = "${o.level}"
  }
}
`;
writeFileSync(file, config({ suffix: 'lexa', ttl: 0, level: 'info', dnsPorts: [0], dot: true }));
const lexa = new LexaProcess(['server', '--config', file]);
t.teardown(() => lexa.kill('SIGKILL'));
await lexa.waitLog(/lxd connected/);
const udp = lexa.port('dns/udp');
const dotPort = lexa.port('dot');

/**
 * Queries `port` over UDP as fast as answers come (one outstanding query), counting sent and answered, until
 * stopped. A query unanswered for 1 s counts as lost and the next is sent.
 */
function load(port: number) {
  const socket = dgram.createSocket('udp4');
  const stats = { sent: 0, answered: 0, lost: 0, lastAnswerAt: 0 };
  let timer: NodeJS.Timeout | undefined;
  let running = true;
  const send = () => {
    if (!running) return;
    stats.sent++;
    socket.send(dnsPacket.encode({ type: 'query', id: stats.sent & 0xffff, questions: [{ type: 'SOA', name: 'lexa' }] }), port, '127.0.0.1');
    timer = setTimeout(() => {
      stats.lost++;
      send();
    }, 1_000);
  };
  socket.on('message', () => {
    clearTimeout(timer);
    stats.answered++;
    stats.lastAnswerAt = Date.now();
    send();
  });
  socket.on('error', () => undefined);
  send();
  return {
    stats,
    stop: () => {
      running = false;
      clearTimeout(timer);
      socket.close();
    },
  };
}

/** A client that speaks no TLS to the REST port: lexa logs the failed handshake at debug level only. */
async function badHandshake(): Promise<void> {
  const s = net.connect(lexa.port('rest'), '127.0.0.1', () => s.write('GET / HTTP/1.0\r\n\r\n'));
  s.on('error', () => undefined);
  await new Promise((resolve) => s.on('close', resolve));
  await new Promise((r) => setTimeout(r, 100));
}

t.test('SIGHUP under load applies suffix, TTLs, log level and listener changes without losing a query', async (t) => {
  await badHandshake();
  t.notMatch(lexa.log, /TLS handshake failed/, 'at level info a failed handshake is not logged');
  const traffic = load(udp);
  await new Promise((r) => setTimeout(r, 300));
  // Keep the first bind as it was (port 0 is "the same bind"), add a second, drop DoT.
  writeFileSync(file, config({ suffix: 'ops', ttl: 7, level: 'debug', dnsPorts: [0], dot: false }).replace('  dns {\n', `  dns {\n    ${bind(0).replace('127.0.0.1', '127.0.0.2')}\n`));
  const from = lexa.log.length;
  lexa.kill('SIGHUP');
  await lexa.waitLog(/"configuration reloaded"/, 15_000, from);
  const answeredAtReload = traffic.stats.answered;
  await new Promise((r) => setTimeout(r, 300));
  traffic.stop();
  t.equal(traffic.stats.lost, 0, `no query lost across the reload (${traffic.stats.answered} answered)`);
  t.ok(traffic.stats.answered > answeredAtReload, 'answers went on after the reload');

  const soa = await dig(udp)('ops', 'SOA');
  t.equal(soa.status, 'NOERROR', 'the new suffix answers');
  t.match(soa.answer[0], /^ops\. 7 IN SOA /, 'with the new TTL');
  t.equal((await dig(udp)('lexa', 'SOA')).status, 'REFUSED', 'the old suffix is no longer lexa\'s zone');
  const added = lexa.lines(/dns\/udp: listening/).find((l) => l['host'] === '127.0.0.2');
  t.ok(added, 'the added bind is listening');
  const second = await new Promise<string>((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('message', (m) => (s.close(), resolve((dnsPacket.decode(m) as { rcode?: string }).rcode ?? '')));
    s.on('error', reject);
    s.send(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'SOA', name: 'ops' }] }), added!['port'] as number, '127.0.0.2');
  });
  t.equal(second, 'NOERROR', 'and answers');
  const dotGone = await new Promise<string>((resolve) => {
    const s = net.connect(dotPort, '127.0.0.1');
    s.on('connect', () => (s.destroy(), resolve('connected')));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(dotGone, 'ECONNREFUSED', 'the removed DoT listener is closed');
  const reloaded = lexa.lines(/configuration reloaded/).at(-1)!;
  // ns_addresses: its default is the DNS binds' specific addresses, and the reload moved a bind.
  t.match(reloaded['applied'], ['server.log.level', 'server.lxd.suffix', 'server.dns.ttl', 'server.dns.negative_ttl', 'server.dns.ns_addresses', 'server.dns.bind', 'server.dns.dot.bind']);
  await badHandshake();
  t.ok(lexa.lines(/^rest: TLS handshake failed$/).some((l) => l['level'] === 'debug'), 'the new log level (debug) is in force');
});

t.test('SIGHUP with an invalid file keeps the running configuration and logs every problem', async (t) => {
  writeFileSync(file, config({ suffix: 'ops', ttl: 7, level: 'debug', dnsPorts: [0], dot: false }).replace('ttl = 7', 'ttl = -1').replace('  log {', '  bogus = 1\n  log {'));
  const from = lexa.log.length;
  lexa.kill('SIGHUP');
  await lexa.waitLog(/reload rejected/, 15_000, from);
  const problems = lexa.lines(/reload: configuration error/).map((l) => String(l['problem']));
  t.ok(problems.some((p) => /server\.dns\.ttl: -1 is out of range/.test(p)), 'the bad TTL is named');
  t.ok(problems.some((p) => /server\.bogus: unknown key/.test(p)), 'and the unknown key');
  t.match((await dig(udp)('ops', 'SOA')).answer[0], /^ops\. 7 IN SOA /, 'still serving the running configuration');

  writeFileSync(file, config({ suffix: 'ops', ttl: 7, level: 'debug', dnsPorts: [0], dot: false }).replace(`socket = "${LXD_SOCKET}"`, `socket = "${LXD_SOCKET}"\n    resync_interval = "1m"`));
  const from2 = lexa.log.length;
  lexa.kill('SIGHUP');
  await lexa.waitLog(/changes that need a restart/, 15_000, from2);
  t.match(lexa.lines(/changes that need a restart/).at(-1)!['keys'], ['server.lxd.resync_interval'], 'what needs a restart is named');
});

t.test('SIGTERM under load: every query sent before it is answered, then lexa exits 0 within the grace period', async (t) => {
  const traffic = load(udp);
  await new Promise((r) => setTimeout(r, 300));
  const sent = Date.now();
  lexa.kill('SIGTERM');
  const exit = await lexa.exited;
  traffic.stop();
  t.equal(exit.code, 0, 'exit code 0');
  t.ok(exit.at - sent < 5_000, `exited ${exit.at - sent} ms after SIGTERM`);
  // The one query that may be outstanding when the socket closes is the only one that can go unanswered.
  t.ok(traffic.stats.sent - traffic.stats.answered <= 1, `sent ${traffic.stats.sent}, answered ${traffic.stats.answered}`);
  t.ok(traffic.stats.lastAnswerAt >= sent - 50, 'queries were being answered up to the signal');
  t.ok(lexa.lines(/^stopping$/).some((l) => l['signal'] === 'SIGTERM'), 'the stop is logged');
});
