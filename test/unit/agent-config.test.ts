import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Check, httpProbe, loadAgentConfig, tcpProbe, type CheckConfig } from '../../src/agent/index.js';
import { ConfigError, fromParsed } from '../../src/config/index.js';

// The agent's configuration (same builder, same file:line / key-path errors as the server's), the server's
// `server.agent` block, `lexa agent` exit codes, and health checks against real local servers.
const dir = mkdtempSync(join(tmpdir(), 'lexa-agent-config-'));
const write = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const ca = write('ca.crt', '-----BEGIN CERTIFICATE-----\n');
const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

async function problems(text: string): Promise<string[]> {
  try {
    await loadAgentConfig({ path: write(`a-${Math.random().toString(36).slice(2)}.hcl`, text) });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

t.test('a full agent configuration, defaults filled in', async (t) => {
  const file = write('full.hcl', `agent {
  server = "10.99.0.1:18500"
  token  = "0123456789abcdef0123"
  ca     = "ca.crt"
  service {
    name = "https"
    port = 443
    tags = ["app", "blue"]
    check {
      tcp = "127.0.0.1:443"
    }
    check {
      http     = "http://127.0.0.1:8080/health"
      interval = "2s"
      timeout  = "1s"
      failures_before_critical = 3
      success_before_passing   = 2
    }
  }
  service {
    name  = "dns"
    port  = 53
    proto = "udp"
    interface = "eth1"
    priority = 5
    weight = 3
  }
}
`);
  const c = await loadAgentConfig({ path: file });
  t.same(c.server, { host: '10.99.0.1', port: 18500 });
  t.same(c.trust, { kind: 'ca', pem: '-----BEGIN CERTIFICATE-----\n' }, 'ca is read relative to the file');
  t.same(c.services.map((s) => [s.name, s.proto, s.tags, s.interface, s.priority, s.weight, s.checks.length]), [
    ['https', 'tcp', ['app', 'blue'], null, 1, 1, 2],
    ['dns', 'udp', [], 'eth1', 5, 3, 0],
  ]);
  t.same(c.services[0]!.checks[0], { kind: 'tcp', target: '127.0.0.1:443', intervalMs: 10_000, timeoutMs: 2_000, failuresBeforeCritical: 1, successBeforePassing: 1 });
  t.same(c.services[0]!.checks[1], { kind: 'http', target: 'http://127.0.0.1:8080/health', intervalMs: 2_000, timeoutMs: 1_000, failuresBeforeCritical: 3, successBeforePassing: 2 });
});

t.test('agent config errors: file:line for syntax, key paths for the rest, all at once', async (t) => {
  const syntax = await problems('agent {\n  server = "x:1\n}\n');
  t.match(syntax[0], /a-.*\.hcl:2,\d+: /);
  const p = await problems(`agent {
  server = "nowhere"
  token  = "short"
  service {
    name  = "Bad_Name"
    port  = 70000
    proto = "sctp"
    check {
      interval = "2s"
    }
  }
  servce {
  }
}
`);
  const all = p.join('\n');
  t.match(all, /agent\.server: "nowhere" is not host:port/);
  t.match(all, /agent\.token: "\(redacted\)" is not a secret of 16\.\.1024/);
  t.match(all, /agent\.service\.name: "Bad_Name" is not a lower-case DNS label/);
  t.match(all, /agent\.service\.port: 70000 is out of range 1\.\.65535/);
  t.match(all, /agent\.service\.proto: expected one of "tcp", "udp"/);
  t.match(all, /agent\.servce: unknown key \(known here: server, token, token_file, devlxd, ca, fingerprint, service\)/);
  const rules = await problems(`agent {
  server = "10.0.0.1:1"
  token = "0123456789abcdef0123"
  token_file = "token"
  service {
    name = "a"
    port = 1
    check {
      tcp  = "127.0.0.1:1"
      http = "http://127.0.0.1/"
      interval = "1s"
      timeout  = "2s"
    }
  }
  service {
    name = "a"
    port = 2
  }
}
`);
  const r = rules.join('\n');
  t.match(r, /agent: set token or token_file \(the server's optional shared secret\), not both/);
  t.match(r, /agent: set ca \(the server's certificate or its CA\) or fingerprint, exactly one/);
  t.match(r, /agent\.service\[0\]\.check\[0\]: set tcp or http, exactly one/);
  t.match(r, /agent\.service\[0\]\.check\[0\]\.timeout: must not exceed interval/);
  t.match(r, /agent\.service\[1\]: service a \(tcp\) is declared twice/);
  const many = await problems(`agent {\n  server = "h:1"\n  token = "0123456789abcdef0123"\n  fingerprint = "sha256:${'AB:'.repeat(31)}AB"\n  service {\n    name = "a"\n    port = 1\n    tags = [${Array.from({ length: 33 }, (_, i) => `"t${i}"`).join(', ')}]\n  }\n}\n`);
  t.match(many.join(), /agent\.service(\[0\])?\.tags: 33 items; at most 32/, 'as many tags as the protocol carries, no more');
  const fp = await problems('agent {\n  server = "h:1"\n  token = "0123456789abcdef0123"\n  fingerprint = "AB:CD"\n}\n');
  t.match(fp.join(), /agent\.fingerprint: "AB:CD" is not sha256: followed by 32/);
  await t.rejects(loadAgentConfig({ path: join(dir, 'absent.hcl') }), /absent\.hcl: no such file/);
  await t.rejects(loadAgentConfig({ cwd: dir + '/none', home: dir + '/none' }), /no agent configuration: tried .*lexa\.hcl.*\/etc\/lexa\/agent\.hcl/);
});

t.test('server.agent: off when absent; token or token_file; certificate and key together', async (t) => {
  t.equal(fromParsed({}, null, {}).agent, null, 'absent: off');
  const tokenFile = write('token', '  0123456789abcdef0123\n');
  const c = fromParsed({ server: [{ agent: [{ token_file: tokenFile, bind: [{ host: '10.99.0.1' }], grace: '30s' }] }] }, join(dir, 'x.hcl'), {});
  t.same(c.agent, { binds: [{ host: '10.99.0.1', port: 18500 }], tls: { certificate: null, key: null }, hostname: 'localhost', token: '0123456789abcdef0123', services: [], issueTokens: true, graceMs: 30_000, limits: { maxConnections: 8192, maxPerSource: 4, ipv6SourcePrefix: 128, firstRequestTimeoutMs: 10_000, idleTimeoutMs: 15_000, handshakeTimeoutMs: 5_000 } });
  const bare = fromParsed({ server: [{ agent: [{ services: ['https', '*', 'https'], issue_tokens: false }] }] }, null, {});
  t.same([bare.agent?.token, bare.agent?.services, bare.agent?.issueTokens], [null, ['https', '*'], false], 'the shared token is optional; services and issue_tokens');
  t.throws(() => fromParsed({ server: [{ agent: [{ token: '0123456789abcdef0123', token_file: tokenFile }] }] }, null, {}), /server\.agent: set token or token_file \(a secret of 16\.\.1024 non-blank characters\), not both/);
  t.throws(() => fromParsed({ server: [{ agent: [{ services: ['Not_A_Name'] }] }] }, null, {}), /server\.agent\.services: "Not_A_Name" is not a service name/);
  t.throws(() => fromParsed({ server: [{ agent: [{ token: '0123456789abcdef0123', certificate: ca }] }] }, join(dir, 'x.hcl'), {}), /server\.agent: set both certificate and key/);
  t.throws(() => fromParsed({ server: [{ agent: [{ token: 'short' }] }] }, null, {}), /server\.agent\.token: "\(redacted\)" is not a secret/);
});

t.test('lexa agent: configuration errors exit 2 and name the file and position', async (t) => {
  const file = write('cli-bad.hcl', 'agent {\n  server = "h:1"\n  port = 1\n}\n');
  const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
    execFile(process.execPath, [CLI, 'agent', '--config', file], { timeout: 30_000 }, (err, _o, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stderr }),
    ),
  );
  t.equal(r.code, 2);
  t.match(r.stderr, /cli-bad\.hcl: agent\.port: unknown key/);
});

t.test('checks: start critical, follow thresholds, probe real TCP and HTTP servers', async (t) => {
  const cfg = (over: Partial<CheckConfig> = {}): CheckConfig => ({
    kind: 'tcp', target: '127.0.0.1:1', intervalMs: 1000, timeoutMs: 500, failuresBeforeCritical: 2, successBeforePassing: 2, ...over,
  });
  const changes: string[] = [];
  const c = new Check(cfg(), (s) => changes.push(s), async () => true);
  t.equal(c.status, 'critical', 'critical until shown to pass');
  c.record(true);
  t.equal(c.status, 'critical', 'one success of two');
  c.record(true);
  t.equal(c.status, 'passing');
  c.record(false);
  c.record(true);
  c.record(false);
  t.equal(c.status, 'passing', 'failures must be consecutive');
  c.record(false);
  t.equal(c.status, 'critical');
  t.same(changes, ['passing', 'critical'], 'one callback per transition');

  const tcp = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  t.equal(await tcpProbe(`127.0.0.1:${tcpPort}`, 500), true, 'tcp: a listening port passes');
  await new Promise<void>((r) => tcp.close(() => r()));
  t.equal(await tcpProbe(`127.0.0.1:${tcpPort}`, 500), false, 'tcp: a closed port fails');

  const web = http.createServer((req, res) => {
    if (req.url === '/slow') return; // never answers
    res.statusCode = req.url === '/ok' ? 204 : 503;
    res.end();
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  t.teardown(() => void web.closeAllConnections());
  t.teardown(() => void web.close());
  const base = `http://127.0.0.1:${(web.address() as net.AddressInfo).port}`;
  t.equal(await httpProbe(`${base}/ok`, 500), true, 'http: 2xx passes');
  t.equal(await httpProbe(`${base}/down`, 500), false, 'http: 503 fails');
  const started = Date.now();
  t.equal(await httpProbe(`${base}/slow`, 300), false, 'http: no answer within the timeout fails');
  t.ok(Date.now() - started < 2000, 'and gives up at the timeout');
});
