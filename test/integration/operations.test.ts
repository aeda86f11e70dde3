import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { dig, doqClient, kdig } from '../helpers/dig.js';
import { LexaProcess, parseExposition, PROMTOOL, sample } from '../helpers/cli-process.js';
import { curl } from '../helpers/lexa.js';
import { deleteByPrefix, launch, lxc, LXD_SOCKET, TESTBED_DIR, waitFor } from '../helpers/lxd-cli.js';

// Operations against the real LXD, through the built CLI with every transport on: Prometheus metrics scraped
// after queries over UDP, TCP, DoT, DoH and DoQ (checked by promtool, counters compared by exact deltas), and
// a blocking query plus an SSE client woken by `lxc stop`.
const PREFIX = 'lexa-ops-';
const NAME = `${PREFIX}a`;
const dir = mkdtempSync(join(tmpdir(), 'lexa-ops-'));
const any = (extra = '') => `bind {\n        host = "127.0.0.1"\n        port = 0\n      }${extra}`;
writeFileSync(
  join(dir, 'lexa.hcl'),
  `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    ${any()}
  }
  metrics {
    ${any()}
  }
  dns {
    ${any()}
    dot {
      ${any()}
    }
    doh {
      ${any()}
    }
    quic {
      ${any()}
    }
  }
}
`,
);

await deleteByPrefix(PREFIX);
t.teardown(() => deleteByPrefix(PREFIX));
const lexa = new LexaProcess(['server', '--config', join(dir, 'lexa.hcl')]);
t.teardown(() => lexa.kill());
await lexa.waitLog(/lxd connected/);
const rest = `https://127.0.0.1:${lexa.port('rest')}`;
const [udp, dot, doh, doq, metricsPort] = [lexa.port('dns/udp'), lexa.port('dot'), lexa.port('doh'), lexa.port('doq'), lexa.port('metrics')];

function promtool(text: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(PROMTOOL, ['check', 'metrics'], (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }),
    );
    child.stdin!.end(text);
  });
}
const scrapeRest = async () => {
  const res = await curl(`${rest}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.body;
};
const scrapePlain = async () => {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  if (res.status !== 200) throw new Error(`metrics listener answered ${res.status}`);
  return res.text();
};

t.test('queries over every transport move the counters by exactly their number, and promtool accepts the text', async (t) => {
  const before = parseExposition(await scrapeRest());
  const sent = { udpA: 3, tcpAAAA: 2, dotSRV: 2, dohA: 2, doqA: 1, udpMX: 1 };
  for (let i = 0; i < sent.udpA; i++) await dig(udp)(`nothing-${i}.lexa`, 'A');
  for (let i = 0; i < sent.tcpAAAA; i++) await dig(udp, ['+tcp'])('nothing.lexa', 'AAAA');
  for (let i = 0; i < sent.dotSRV; i++) await kdig(dot, ['+tls'])('_http._tcp.lexa', 'SRV');
  for (let i = 0; i < sent.dohA; i++) await dig(doh, ['+https'])('nothing.lexa', 'A');
  const reply = await doqClient(join(TESTBED_DIR, 'doq-client'), doq, ['-insecure'])('nothing.lexa', 'A');
  t.equal(reply.status, 'NXDOMAIN', 'DoQ answered');
  await dig(udp)('example.com', 'MX'); // outside the zone: REFUSED
  const text = await scrapeRest();
  const check = await promtool(text);
  t.equal(check.code, 0, `promtool check metrics: ${check.out}`);
  const after = parseExposition(text);
  const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels);
  const server = (scheme: string, port: number) => `${scheme}://127.0.0.1:${port}`;
  t.equal(delta('lexa_dns_requests_total', { server: server('dns', udp), proto: 'udp', family: '1', type: 'A' }), sent.udpA);
  t.equal(delta('lexa_dns_requests_total', { server: server('dns', udp), proto: 'udp', type: 'MX' }), sent.udpMX);
  t.equal(delta('lexa_dns_requests_total', { server: server('dns', udp), proto: 'tcp', type: 'AAAA' }), sent.tcpAAAA);
  t.equal(delta('lexa_dns_requests_total', { server: server('tls', dot), proto: 'tcp', type: 'SRV' }), sent.dotSRV);
  t.equal(delta('lexa_dns_requests_total', { server: server('https', doh), proto: 'tcp', type: 'A' }), sent.dohA);
  t.equal(delta('lexa_dns_requests_total', { server: server('quic', doq), proto: 'udp', type: 'A' }), sent.doqA);
  t.equal(delta('lexa_dns_responses_total', { server: server('dns', udp), rcode: 'NXDOMAIN' }), sent.udpA + sent.tcpAAAA);
  t.equal(delta('lexa_dns_responses_total', { server: server('dns', udp), rcode: 'REFUSED' }), sent.udpMX);
  t.equal(delta('lexa_dns_request_duration_seconds_count', { server: server('tls', dot), type: 'SRV' }), sent.dotSRV);
  t.equal(delta('lexa_dns_response_size_bytes_count', { server: server('https', doh) }), sent.dohA);
  t.equal(delta('lexa_dns_truncated_total', { server: server('dns', udp) }), 0);
  t.equal(sample(after, 'lexa_lxd_connected'), 1);
  t.equal(sample(after, 'lexa_build_info'), 1);
  t.ok(sample(after, 'process_cpu_seconds_total') > 0, 'default process metrics are there');
  // The same registry on the plain-HTTP listener.
  const plain = parseExposition(await scrapePlain());
  t.equal(sample(plain, 'lexa_dns_requests_total', { server: server('dns', udp), type: 'A' }), sample(after, 'lexa_dns_requests_total', { server: server('dns', udp), type: 'A' }));
});

/** GET with node:https (lexa's REST certificate is self-signed), resolving with status, headers and body. */
function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; index: number; body: string; at: number }> {
  return new Promise((resolve, reject) => {
    const req = request(`${rest}${path}`, { rejectUnauthorized: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, index: Number(res.headers['x-lexa-index']), body, at: Date.now() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A raw SSE client: collects `id`/`data` of each event as it arrives. */
function sse(headers: Record<string, string> = {}) {
  const events: { id: number; hosts: string[]; at: number }[] = [];
  let raw = '';
  const req = request(`${rest}/events`, { rejectUnauthorized: false, headers }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      raw += chunk;
      let cut;
      while ((cut = raw.indexOf('\n\n')) >= 0) {
        const block = raw.slice(0, cut);
        raw = raw.slice(cut + 2);
        const id = /^id: (\d+)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (id && data) events.push({ id: Number(id), hosts: (JSON.parse(data) as { hosts: { name: string }[] }).hosts.map((h) => h.name), at: Date.now() });
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return { events, close: () => req.destroy() };
}

t.test('a blocking query and an SSE client wake when `lxc stop` stops an instance; others keep waiting', async (t) => {
  // Other tests share this LXD, so the list document may change for their instances too: the checks that need
  // "only this change" use this instance's own document; the list and the stream are followed until they show it.
  await launch(NAME);
  const host = `${NAME}.lexa`;
  // Addresses arrive after the start (IPv6 by SLAAC after 1–2 s), each changing the document: wait for both.
  await waitFor(async () => /"ipv4":\[\{.*"ipv6":\[\{/.test((await get(`/containers/${NAME}`)).body), { what: `${host} with addresses`, timeoutMs: 20_000 });
  const list = await get('/containers/');
  const one = await get(`/containers/${NAME}`);
  const other = await get('/containers/lexa-ops-nobody');
  t.equal(other.status, 404);
  t.ok(list.index > 0 && one.index > 0 && other.index > 0, 'data responses carry X-Lexa-Index, 404s too');

  const stream = sse();
  t.teardown(stream.close);
  await waitFor(() => stream.events.length >= 1, { what: 'the first SSE event', timeoutMs: 5_000 });
  t.ok(stream.events[0]!.hosts.includes(host), 'the first event is the current document');
  t.ok(stream.events[0]!.id >= list.index, 'its id is the document index');
  // Resuming with the current id sends nothing until something changes.
  const resumed = sse({ 'last-event-id': String(stream.events.at(-1)!.id) });
  t.teardown(resumed.close);

  const blockedOne = get(`/containers/${NAME}?index=${one.index}&wait=60s`);
  const unrelated = get(`/containers/lexa-ops-nobody?index=${other.index}&wait=3s`);
  const asked = Date.now();
  const noWait = await get(`/containers/${NAME}?index=${one.index - 1}&wait=60s`);
  t.ok(noWait.index !== one.index - 1 && noWait.at - asked < 2_000, 'an index that already differs answers at once');
  /** Follows the list by blocking queries until it no longer shows the instance. */
  const followList = async () => {
    let index = list.index;
    for (;;) {
      const r = await get(`/containers/?index=${index}&wait=60s`);
      if (!r.body.includes(host)) return r;
      t.ok(r.index !== index, 'a list answer before the timeout has a new index');
      index = r.index;
    }
  };
  const listGone = followList();
  await new Promise((r) => setTimeout(r, 500));

  const stopped = Date.now();
  await lxc('stop', '--force', NAME);
  const wokeOne = await blockedOne;
  t.ok(wokeOne.index > one.index, 'the instance document index moved');
  t.equal(wokeOne.status, 404, 'and says it has no running instance');
  // LXD reports the stop when `lxc stop` returns; lexa re-reads the instance (~15 ms). 5 s separates a wake from
  // the 60 s timeout.
  t.ok(wokeOne.at - stopped < 5_000, `blocking query woke ${wokeOne.at - stopped} ms after lxc stop`);
  const woke = await listGone;
  t.ok(woke.at - stopped < 5_000, `the list's blocking query showed the stop ${woke.at - stopped} ms after lxc stop`);
  const gone = (e: { hosts: string[] }) => !e.hosts.includes(host);
  await waitFor(() => stream.events.some(gone) && resumed.events.some(gone), { what: 'an SSE event without the instance', timeoutMs: 5_000 });
  const event = stream.events.find(gone)!;
  t.ok(event.at - stopped < 5_000, `SSE event came ${event.at - stopped} ms after lxc stop`);
  t.ok(event.id > list.index, 'with a new id');
  t.ok(resumed.events.every((e) => e.id > stream.events[0]!.id), 'the resumed stream never repeated the event it had');
  const u = await unrelated;
  t.equal(u.index, other.index, 'a waiter on an unchanged document was not woken: it timed out with the same index');
  t.ok(u.at - stopped >= 1_500, 'and it waited for its own timeout');

  const m = parseExposition(await scrapePlain());
  t.ok(sample(m, 'lexa_lxd_events_total', { action: 'instance-stopped' }) >= 1, 'the stop event was counted');
  t.ok(sample(m, 'lexa_lxd_event_to_answer_seconds_count') >= 2, 'event → snapshot latency observed (launch, stop)');
  t.ok(sample(m, 'lexa_snapshot_instances', { status: 'stopped' }) >= 1, 'the stopped instance is in the snapshot');
});

t.test('bad blocking parameters get 400 with a reason', async (t) => {
  for (const q of ['index=abc', 'index=1&wait=soon', 'wait=10s']) {
    const res = await get(`/containers/?${q}`);
    t.equal(res.status, 400, q);
    t.match(res.body, /"error":/);
  }
});

t.test('SIGTERM with a blocking query in flight: it is answered, and lexa exits 0', async (t) => {
  const list = await get('/containers/');
  const pending = get(`/containers/?index=${list.index}&wait=60s`);
  await new Promise((r) => setTimeout(r, 300));
  const sent = Date.now();
  lexa.kill('SIGTERM');
  const res = await pending;
  t.equal(res.status, 200);
  t.equal(res.index, list.index, 'answered with what it had');
  const exit = await lexa.exited;
  t.equal(exit.code, 0);
  t.ok(exit.at - sent < 5_000, `exited ${exit.at - sent} ms after SIGTERM`);
});
