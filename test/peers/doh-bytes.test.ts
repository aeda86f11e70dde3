import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, instanceState, launch, lxc, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { dig } from '../helpers/dig.js';
import { cases } from '../helpers/nameforms.js';

// DoH replies are UDP's replies, byte for byte: every question of the name-form table (test/helpers/nameforms.ts)
// asked of lexa watching the real LXD, over UDP and with the real curl over HTTP/2 and HTTP/1.1, POST and GET.
// HTTP/2 is served by the stream API (src/servers/doh/h2-stream.ts) and HTTP/1.1 by Node's request/response
// objects: the same bytes from both prove the two paths, and plain DNS, share one answer.
//
// The table's containers are launched here under this test's own prefix (doh-, services doh*), mirroring the
// name-form fixture's (nf-, services nf*), so this file never touches another test's containers; the table's
// questions are renamed to match. Answer order is shuffled per query (src/dns/resolve.ts), so a reply with more
// than one record in a section is compared as the same header, length and records in any order; every other
// reply must be the same bytes.

const PREFIX = 'doh-';
const HOST = 'lexa.test';
const CONTAINERS: Record<string, Record<string, string>> = {
  'doh-web-1': {
    'user.lexa.service.dohhttp.port': '80',
    'user.lexa.service.dohhttp.tags': 'blue',
    'user.lexa.service.dohhttp.weight': '2',
    'user.lexa.service.dohhttps.port': '443',
    'user.lexa.service.dohhttps.tags': 'app',
  },
  'doh-web-2': {
    'user.lexa.service.dohhttp.port': '80',
    'user.lexa.service.dohhttp.tags': 'green',
    'user.lexa.service.dohhttps.port': '443',
  },
  'doh-db-1': {
    'user.lexa.service.dohmysql.port': '3306',
    'user.lexa.service.dohmysql.tags': 'primary',
    'user.lexa.service.dohmysql.priority': '10',
    'user.lexa.service.dohdns.port': '53',
    'user.lexa.service.dohdns.proto': 'udp',
  },
};
/** The name-form table's names under this test's prefix: nf-web-1 → doh-web-1, _nfhttp → _dohhttp, NF-Web-1 → DOH-Web-1. */
const rename = (name: string) => name.replace(/nf/gi, (m) => (m === 'NF' ? 'DOH' : 'doh'));
/** A query's EDNS buffer: large enough that no UDP reply of the table is truncated, so UDP and DoH must agree. */
const EDNS_UDP = 4096;
/** Tries per question: a reply carries the zone's SOA serial, which moves when anything on the shared LXD changes. */
const TRIES = 3;

const bind = '    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n';
const dohBlock = `    doh {\n  ${bind.replace(/\n {4}/g, '\n      ')}      hostname = "${HOST}"\n    }\n`;
const lexa = await startLexa(`    socket = "${LXD_SOCKET}"`, `  dns {\n${bind}${dohBlock}  }\n`);
t.teardown(async () => {
  await lexa.close();
  await deleteByPrefix(PREFIX);
});
const dohPort = lexa.daemon.ports.doh[0]!;
const dir = mkdtempSync(join(tmpdir(), 'lexa-doh-bytes-'));
const caFile = join(dir, 'doh.pem');
writeFileSync(caFile, lexa.daemon.certificates.current.get('doh')!.cert);

await deleteByPrefix(PREFIX);
await Promise.all(Object.entries(CONTAINERS).map(([name, config]) => launch(name, { config })));
await launch('doh-off');
await lxc('stop', '--force', 'doh-off');
for (const name of Object.keys(CONTAINERS)) {
  await waitFor(
    async () => {
      const addrs = (await instanceState(name)).network?.['eth0']?.addresses ?? [];
      return addrs.some((a) => a.family === 'inet' && a.scope === 'global') && addrs.some((a) => a.family === 'inet6' && a.scope === 'global');
    },
    { what: `${name} to get IPv4 and IPv6`, timeoutMs: 15_000 },
  );
  await waitFor(async () => (await dig(lexa.dnsPort)(`${name}.lexa`, 'AAAA')).answer.length === 1, { what: `lexa to answer AAAA for ${name}`, timeoutMs: 15_000 });
}
const server = (JSON.parse(await lxc('query', '/1.0')) as { environment: { server_name: string } }).environment.server_name;
const questions = cases({ v4: {}, v6: {}, server, serverV4: '' }).map((c) => ({ name: rename(c.name), type: c.type as dnsPacket.RecordType }));

function udp(message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no UDP reply in 5 s'));
    }, 5_000);
    socket.once('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(message, lexa.dnsPort, '127.0.0.1');
  });
}

interface Via {
  readonly label: string;
  readonly version: '1.1' | '2';
  readonly method: 'GET' | 'POST';
}
const VIAS: readonly Via[] = [
  { label: 'curl --http2 POST', version: '2', method: 'POST' },
  { label: 'curl --http2 GET', version: '2', method: 'GET' },
  { label: 'curl --http1.1 POST', version: '1.1', method: 'POST' },
  { label: 'curl --http1.1 GET', version: '1.1', method: 'GET' },
];

let files = 0;
/** The DoH reply body for `message` through the real curl, with the HTTP version curl reports having spoken. */
function doh(message: Buffer, via: Via): Promise<{ body: Buffer; version: string; headers: string }> {
  const n = files++;
  const [bodyFile, headFile, queryFile] = [`out-${n}`, `head-${n}`, `q-${n}`].map((f) => join(dir, f)) as [string, string, string];
  writeFileSync(bodyFile, '');
  const url = `https://${HOST}:${dohPort}/dns-query`;
  const request =
    via.method === 'GET'
      ? [`${url}?dns=${message.toString('base64url')}`]
      : (writeFileSync(queryFile, message), ['-H', 'content-type: application/dns-message', '--data-binary', `@${queryFile}`, url]);
  const args = ['-sS', '--max-time', '5', `--http${via.version}`, '--cacert', caFile, '--resolve', `${HOST}:${dohPort}:127.0.0.1`];
  return new Promise((resolve, reject) =>
    execFile('curl', [...args, '-D', headFile, '-o', bodyFile, '-w', '%{http_version}', ...request], (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl: ${stderr || err.message}`));
      resolve({ body: readFileSync(bodyFile), version: stdout.trim(), headers: readFileSync(headFile, 'utf8') });
    }),
  );
}

/** Whether some section holds more than one record: then its order is shuffled per query. */
function shuffled(reply: Buffer): boolean {
  const counts = [reply.readUInt16BE(6), reply.readUInt16BE(8), reply.readUInt16BE(10)];
  return counts.some((c) => c > 1);
}

/** A reply with each section's records sorted: equal for two replies that differ only in record order. */
function sorted(reply: Buffer): unknown {
  const d = dnsPacket.decode(reply);
  const order = (rs: unknown[] | undefined) => (rs ?? []).map((r) => JSON.stringify(r)).sort();
  return { id: d.id, flags: d.flags, questions: d.questions, answers: order(d.answers), authorities: order(d.authorities), additionals: order(d.additionals) };
}

/** Same bytes, or (for a shuffled reply) the same header, length and records in another order. */
function agree(a: Buffer, b: Buffer): boolean {
  if (a.equals(b)) return true;
  if (!shuffled(a) || a.length !== b.length || !a.subarray(0, 12).equals(b.subarray(0, 12))) return false;
  return JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
}

for (const via of VIAS) {
  t.test(`${via.label}: every name form's reply is UDP's, byte for byte`, async (t) => {
    let exact = 0;
    for (const [i, q] of questions.entries()) {
      const message = Buffer.from(
        dnsPacket.encode({
          type: 'query',
          id: 1000 + i,
          flags: 0,
          questions: [{ name: q.name, type: q.type, class: 'IN' }],
          additionals: [{ type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
        }),
      );
      let u: Buffer = Buffer.alloc(0);
      let d: { body: Buffer; version: string; headers: string } = { body: Buffer.alloc(0), version: '', headers: '' };
      for (let attempt = 0; attempt < TRIES; attempt++) {
        u = await udp(message);
        d = await doh(message, via);
        if (agree(u, d.body)) break;
      }
      const label = `${q.name} ${q.type}`;
      t.equal(d.version, via.version, `${label}: curl spoke HTTP/${via.version}`);
      t.match(d.headers, /^content-type: application\/dns-message\r$/im, `${label}: content-type`);
      if (shuffled(u)) t.ok(agree(u, d.body), `${label}: the same header, length and records (order is shuffled)`, { udp: u.toString('hex'), doh: d.body.toString('hex') });
      else {
        t.same(d.body.toString('hex'), u.toString('hex'), `${label}: the same bytes`);
        exact++;
      }
    }
    t.ok(exact >= questions.length / 2, `${exact} of ${questions.length} replies compared byte for byte (the rest have shuffled sections)`);
  });
}
