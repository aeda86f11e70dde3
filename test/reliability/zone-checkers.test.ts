import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI, LexaProcess } from '../helpers/cli-process.js';
import { deleteInstance, launch, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { startPeer, type Peer } from '../helpers/peers.js';

// Zonemaster (zonemaster-cli 5.0.2) and DNSViz (0.9.4), two independent checkers, against lexa serving the real
// LXD's zone (scripts/zone-checkers.sh installs them). Both chase the root servers by default and Zonemaster
// queries port 53 only, so everything runs inside a network namespace of this test's own with nothing but
// loopback: lexa on 127.0.0.2:53 (it reads LXD through the unix socket, which crosses namespaces), and knot on
// 127.0.0.3:53 serving a root zone that delegates `lexa.` to it (Zonemaster's --hints, DNSViz's `-x .:`), so no
// packet can leave whatever the tools try. The findings at WARNING and above must equal the table in
// docs/reliability.md ("Independent zone checkers") exactly: a new finding, or one gone, fails here. knot serving
// lexa's own zone (its AXFR) on 127.0.0.4 is the reference: Zonemaster must find exactly the same there.

const NETNS = `zn-checkers-${process.pid}`;
const LEXA = '127.0.0.2';
const ROOT = '127.0.0.3';
const REFERENCE = '127.0.0.4';
const CONTAINER = `zn-web-${process.pid}`;
/** Signs the transfers the consistency check asks for; the checkers' own AXFR attempts stay refused (no key). */
const TSIG = 'hmac-sha256:zn-xfr:em9uZS1jaGVja2Vycy10ZXN0LXNlY3JldC0wMDAx';
/** Each checker takes 1–7 s here; a hung one fails the test rather than the suite. */
const CHECKER_TIMEOUT_MS = 90_000;
const DOCS = join(import.meta.dirname, '..', '..', 'docs', 'reliability.md');

const dir = mkdtempSync(join(tmpdir(), 'lexa-zone-checkers-'));

/** `cmd args` inside the namespace; resolves with stdout, rejects with stderr (or stdout) on a non-zero exit. */
function inNs(cmd: string, args: readonly string[], timeout = CHECKER_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', NETNS, cmd, ...args], { timeout, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || stdout || err.message}`));
      else resolve(stdout);
    });
  });
}

function ip(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)));
  });
}

/** `dig` in the namespace, non-recursive: its whole output. */
async function dig(server: string, ...args: string[]): Promise<string> {
  return inNs('dig', [`@${server}`, '+norec', '+nocookie', '+time=2', '+tries=2', ...args], 10_000);
}
/** The records of one section of dig's output (`ANSWER`, `ADDITIONAL`) as `owner ttl class type rdata` lines. */
function section(out: string, name: string): string[] {
  const lines = out.split('\n');
  const start = lines.indexOf(`;; ${name} SECTION:`);
  if (start < 0) return [];
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end < 0 ? undefined : end).map((l) => l.split(/\s+/).join(' '));
}

/** knot serving `zone` (zone-file text) for `origin` on `address`:53, in the namespace. */
function knot(name: string, origin: string, zone: string, address: string): Peer {
  const home = mkdtempSync(join(dir, `${name}-`));
  writeFileSync(join(home, 'zone'), zone);
  writeFileSync(
    join(home, 'knot.conf'),
    [
      'server:',
      `    listen: ${address}@53`,
      `    rundir: ${home}`,
      'control:',
      `    listen: ${home}/knot.sock`,
      'database:',
      `    storage: ${home}`,
      'zone:',
      `  - domain: ${origin}`,
      `    file: ${home}/zone`,
      `    storage: ${home}`,
      '',
    ].join('\n'),
  );
  return startPeer('ip', ['netns', 'exec', NETNS, 'knotd', '-c', join(home, 'knot.conf')]);
}

/** The documented findings: the table rows of the "Independent zone checkers" section, `checker level test tag`. */
function documented(): Set<string> {
  const text = readFileSync(DOCS, 'utf8');
  const start = text.indexOf('## Independent zone checkers');
  const end = text.indexOf('\n## ', start + 1);
  const rows = new Set<string>();
  for (const line of text.slice(start, end < 0 ? undefined : end).split('\n')) {
    const cells = line.split('|').map((c) => c.trim().replace(/`/g, ''));
    if (cells[1] === 'Zonemaster' || cells[1] === 'DNSViz') rows.add(cells.slice(1, 5).join(' '));
  }
  return rows;
}

interface ZonemasterEntry {
  readonly level: string;
  readonly testcase: string;
  readonly tag: string;
}

/** Zonemaster's findings at WARNING and above for `lexa` served by `address`, as `Zonemaster level test tag`. */
async function zonemaster(address: string, hints: string): Promise<Set<string>> {
  const out = await inNs('zonemaster-cli', ['--ns', `ns.lexa/${address}`, '--hints', hints, '--no-ipv6', '--level', 'WARNING', '--json', '--raw', 'lexa']);
  const entries = JSON.parse(out) as ZonemasterEntry[];
  return new Set(entries.map((e) => `Zonemaster ${e.level} ${e.testcase} ${e.tag}`));
}

/** DNSViz's errors and warnings for `lexa` (probe, then grok), as `DNSViz level <zone>/<where> code`. */
async function dnsviz(): Promise<Set<string>> {
  const probe = join(dir, 'probe.json');
  await inNs('dnsviz', ['probe', '-A', '-x', `.:root=${ROOT}`, '-o', probe, 'lexa']);
  const grok = JSON.parse(await inNs('dnsviz', ['grok', '-r', probe])) as Record<string, unknown>;
  const found = new Set<string>();
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) for (const n of node) walk(n, where);
    else if (typeof node === 'object' && node !== null) {
      for (const [k, v] of Object.entries(node)) {
        if (k === 'errors' || k === 'warnings') for (const e of v as { code: string }[]) found.add(`DNSViz ${k.slice(0, -1)} ${where} ${e.code}`);
        else walk(v, where);
      }
    }
  };
  for (const [zone, analysis] of Object.entries(grok)) {
    for (const [part, v] of Object.entries(analysis as Record<string, unknown>)) walk(v, `${zone}/${part}`);
  }
  return found;
}

t.before(async () => {
  await ip('netns', 'add', NETNS);
  await ip('netns', 'exec', NETNS, 'ip', 'link', 'set', 'lo', 'up');
});
t.teardown(async () => {
  await deleteInstance(CONTAINER);
  await ip('netns', 'del', NETNS).catch(() => undefined);
});

t.test('Zonemaster and DNSViz find only the loopback, single-server and mail-domain findings documented', async (t) => {
  // A zone with content: one running instance offering a service.
  await launch(CONTAINER, { config: { 'user.lexa.service.http.port': '80' } });
  const hints = join(dir, 'root.hints');
  writeFileSync(hints, `. 0 IN NS root.\nroot. 0 IN A ${ROOT}\n`);
  const root = knot('root', '.', [
    '. 0 IN SOA root. hostmaster.root. 1 3600 600 604800 0',
    '. 0 IN NS root.',
    `root. 0 IN A ${ROOT}`,
    'lexa. 0 IN NS ns.lexa.',
    `ns.lexa. 0 IN A ${LEXA}`,
    '',
  ].join('\n'), ROOT);
  t.teardown(() => root.stop());

  const config = join(dir, 'lexa.hcl');
  writeFileSync(
    config,
    `server {
  lxd {
    socket = "${LXD_SOCKET}"
  }
  tls {
    enabled = false
  }
  dns {
    bind {
      host = "${LEXA}"
      port = 53
    }
    transfer {
      allow = ["127.0.0.0/8"]
      key {
        name = "zn-xfr"
        secret = "${TSIG.split(':')[2]}"
      }
    }
  }
}
`,
  );
  // The CLI as a user runs it, inside the namespace (`ip netns exec` execs it: the pid is lexa's).
  const lexa = new LexaProcess(['server', '--config', config], {}, ['ip', 'netns', 'exec', NETNS, process.execPath, CLI]);
  t.teardown(async () => {
    lexa.kill();
    await lexa.exited;
  });
  await lexa.waitLog(/"msg":"lxd connected"/, 30_000);
  const container = `${CONTAINER}.lexa`;
  await waitFor(async () => section(await dig(LEXA, container, 'A'), 'ANSWER').length > 0, { what: `${container} to get its IPv4`, timeoutMs: 30_000 });
  await waitFor(async () => section(await dig(ROOT, 'lexa', 'NS'), 'AUTHORITY').length > 0, { what: 'the root knot to delegate lexa' });

  // The name server's address, the same over UDP, TCP and a zone transfer.
  const glue = [`ns.lexa. 0 IN A ${LEXA}`];
  for (const transport of ['+notcp', '+tcp']) {
    const ns = await dig(LEXA, transport, 'lexa', 'NS');
    t.same(section(ns, 'ANSWER'), ['lexa. 0 IN NS ns.lexa.'], `${transport}: the apex NS`);
    t.same(section(ns, 'ADDITIONAL'), glue, `${transport}: its address as an additional record`);
    t.same(section(await dig(LEXA, transport, 'ns.lexa', 'A'), 'ANSWER'), glue, `${transport}: ns.lexa A`);
  }
  const axfr = (await dig(LEXA, '-y', TSIG, 'lexa', 'AXFR')).split('\n').filter((l) => l !== '' && !l.startsWith(';'));
  t.same(axfr.map((l) => l.split(/\s+/).join(' ')).filter((l) => l.startsWith('ns.lexa.')), glue, 'AXFR: ns.lexa A');

  // The reference: knot serving lexa's own zone (its transfer, the name server renumbered to knot's address).
  const zone = axfr
    .filter((l) => !/\sTSIG\s/.test(l))
    .slice(0, -1) // the closing SOA repeats the first
    .map((l) => (l.startsWith('ns.lexa.') ? l.replace(LEXA, REFERENCE) : l))
    .join('\n');
  const reference = knot('reference', 'lexa', `${zone}\n`, REFERENCE);
  t.teardown(() => reference.stop());
  await waitFor(async () => section(await dig(REFERENCE, 'lexa', 'SOA'), 'ANSWER').length > 0, { what: 'the reference knot to serve lexa' });

  const want = documented();
  t.ok(want.size > 0, 'docs/reliability.md lists the expected findings');
  const fromLexa = await zonemaster(LEXA, hints);
  t.same([...fromLexa].sort(), [...want].filter((w) => w.startsWith('Zonemaster ')).sort(), 'Zonemaster: exactly the documented findings');
  t.same([...(await zonemaster(REFERENCE, hints))].sort(), [...fromLexa].sort(), 'Zonemaster finds the same in knot serving the same zone');
  t.same([...(await dnsviz())].sort(), [...want].filter((w) => w.startsWith('DNSViz ')).sort(), 'DNSViz: exactly the documented findings');
});
