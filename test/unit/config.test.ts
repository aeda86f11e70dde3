import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, defaultConfig, defaultSocket, fromParsed, loadConfig, LXD_SOCKETS, parseDuration, type Config } from '../../src/config/index.js';
import { configSchema } from '../../src/config/schema.js';
import { leafPaths } from '../../src/config/builder.js';

// loadConfig parses HCL in a child process (src/config/hcl-child.ts): each case below costs one such process.

const dir = mkdtempSync(join(tmpdir(), 'lexa-config-'));
const write = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const certFile = write('c.crt', '-----BEGIN CERTIFICATE-----\n');
const keyFile = write('c.key', '-----BEGIN PRIVATE KEY-----\n');

async function problems(text: string): Promise<string[]> {
  const file = write(`case-${Math.random().toString(36).slice(2)}.hcl`, text);
  try {
    await loadConfig({ path: file });
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

t.test('defaults with no file anywhere', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'lexa-empty-'));
  const c = await loadConfig({ cwd: empty, home: empty, env: {} });
  t.equal(c.source, null);
  t.equal(c.lxd.suffix, 'lexa');
  t.equal(c.lxd.endpoint.kind, 'unix');
  t.same(c.rest.binds, [{ host: '127.0.0.1', port: 18443 }]);
  t.same(c.dns.binds, [{ host: '127.0.0.1', port: 18053 }]);
  t.equal(c.dns.ttl, 0);
  t.equal(c.dns.dot.enabled, false);
  t.equal(c.log.level, 'info');
  t.same(c, defaultConfig({}), 'defaultConfig(env) is what loadConfig gives with no file');
});

t.test('every default, as the daemon receives it', async (t) => {
  const none = { certificate: null, key: null };
  // Each listener's fair-sharing limits: counts, then deadlines in ms (schema.ts gives the reasons).
  const limits = (max: number, perSource: number, ipv6SourcePrefix: number, firstRequestTimeoutMs: number, idleTimeoutMs: number) =>
    ({ maxConnections: max, maxPerSource: perSource, ipv6SourcePrefix, firstRequestTimeoutMs, idleTimeoutMs });
  const dnsLimits = limits(256, 16, 64, 5_000, 10_000);
  const tlsLimits = { ...dnsLimits, handshakeTimeoutMs: 5_000 };
  const encryptedLimits = { dot: tlsLimits, doh: tlsLimits, quic: { ...limits(512, 16, 64, 10_000, 30_000), handshakeTimeoutMs: 10_000, handshakesPerSecond: 256 } };
  const encrypted = (port: number) => ({
    enabled: false,
    binds: [{ host: '127.0.0.1', port }],
    tls: none,
    hostname: 'localhost',
    limits: encryptedLimits[port === 18853 ? 'dot' : port === 18855 ? 'doh' : 'quic'],
  });
  t.same(defaultConfig({ LXD_DIR: '/srv/lxd' }), {
    source: null,
    lxd: {
      endpoint: { kind: 'unix', socket: '/srv/lxd/unix.socket' },
      suffix: 'lexa',
      project: 'default',
      allProjects: false,
      resyncIntervalMs: 300_000,
      watchdogMs: 25_000,
      watchLeases: true,
    },
    sites: [
      {
        name: null,
        endpoint: { kind: 'unix', socket: '/srv/lxd/unix.socket' },
        project: 'default',
        allProjects: false,
        resyncIntervalMs: 300_000,
        watchdogMs: 25_000,
        watchLeases: true,
      },
    ],
    rest: { enabled: true, binds: [{ host: '127.0.0.1', port: 18443 }], tls: none, limits: { ...limits(256, 32, 64, 10_000, 5_000), handshakeTimeoutMs: 5_000 }, clientCa: null },
    dns: {
      enabled: true,
      binds: [{ host: '127.0.0.1', port: 18053 }],
      ttl: 0,
      negativeTtl: 0,
      tcpIdleTimeoutMs: 10_000,
      maxTcpConnections: 256,
      ednsUdpSize: 1232,
      maxUdpReply: 4096,
      udpReceiveBuffer: 4 * 1024 * 1024,
      rateLimit: {
        responsesPerSecond: 200,
        slip: 2,
        windowMs: 15_000,
        ipv4Prefix: 24,
        ipv6Prefix: 56,
        maxPrefixes: 65_536,
        exempt: ['127.0.0.0/8', '::1/128'],
      },
      limits: dnsLimits,
      dot: encrypted(18853),
      doh: encrypted(18855),
      quic: encrypted(18854),
      nsAddresses: ['127.0.0.1'],
      reverseZones: null,
      transfer: { allow: [], notify: [], key: null },
    },
    log: { out: 'stdout', level: 'info' },
    agent: null,
    metrics: { enabled: false, binds: [{ host: '127.0.0.1', port: 18153 }] },
    consul: { datacenter: 'lexa' },
    stateDirectory: null,
    secrets: [],
    warnings: [],
  });
  // A declared block takes its keys' defaults; declaring an encrypted transport's block is what turns it on.
  const c = fromParsed({ server: [{ lxd: [{ bind: [{ host: '10.0.0.5' }], certificate: certFile, key: keyFile }], dns: [{ dot: [{}], bind: [{ port: 53 }] }] }] }, null);
  t.match(c.lxd.endpoint, { kind: 'https', binds: [{ host: '10.0.0.5', port: 8443 }] });
  t.same(c.dns.binds, [{ host: '127.0.0.1', port: 53 }], 'a bind block takes the omitted host from the default bind');
  t.same(c.dns.dot, { ...encrypted(18853), enabled: true });
});

t.test('finds lexa.hcl in the working directory before the home directory', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'lexa-cwd-'));
  const home = mkdtempSync(join(tmpdir(), 'lexa-home-'));
  writeFileSync(join(home, 'lexa.hcl'), 'server {\n  lxd {\n    suffix = "home"\n  }\n}\n');
  t.equal((await loadConfig({ cwd, home, env: {} })).lxd.suffix, 'home');
  writeFileSync(join(cwd, 'lexa.hcl'), 'server {\n  lxd {\n    suffix = "cwd"\n  }\n}\n');
  t.equal((await loadConfig({ cwd, home, env: {} })).lxd.suffix, 'cwd');
});

t.test('a full configuration in the original structure, multi-line blocks', async (t) => {
  const file = write(
    'full.hcl',
    `server {
  lxd {
    suffix = "LXD.Example.com."
    bind {
      port = 8443
      host = "127.0.0.1"
    }
    certificate = "c.crt"
    key         = "c.key"
    all_projects = true
    resync_interval = "2m"
  }
  tls {
    bind {
      port = 18443
      host = "0.0.0.0"
    }
    so_resue_port = true
  }
  dns {
    ttl = 5
    bind {
      port = 18053
      host = "127.0.0.1"
    }
    bind {
      port = 18053
      host = "::1"
    }
    dot {
      bind {
        port = 18853
        host = "127.0.0.1"
      }
      hostname = "lexa.example.com"
    }
  }
  log {
    out = "stderr"
    level = "debug"
  }
}
`,
  );
  const c = await loadConfig({ path: file });
  t.equal(c.source, file);
  t.equal(c.lxd.suffix, 'lxd.example.com');
  t.match(c.lxd.endpoint, { kind: 'https', binds: [{ host: '127.0.0.1', port: 8443 }], certificate: certFile, key: keyFile });
  t.equal(c.lxd.allProjects, true);
  t.equal(c.lxd.resyncIntervalMs, 120_000);
  t.same(c.dns.binds, [{ host: '127.0.0.1', port: 18053 }, { host: '::1', port: 18053 }]);
  t.equal(c.dns.ttl, 5);
  t.equal(c.dns.dot.enabled, true);
  t.equal(c.dns.dot.hostname, 'lexa.example.com');
  t.equal(c.dns.doh.enabled, false);
  t.equal(c.log.level, 'debug');
  t.match(c.warnings, [/so_reuse_port is accepted but ignored/]);
});

t.test('syntax errors name file, line and column', async (t) => {
  const p = await problems('server {\n  lxd {\n    suffix = "lexa\n  }\n}\n');
  t.ok(p.length >= 1);
  t.match(p[0], /case-.*\.hcl:3,\d+: /);
  const oneLine = await problems('server {\n  lxd {\n    bind { port = 8443 host = "x" }\n  }\n}\n');
  t.match(oneLine[0], /\.hcl:3,\d+: .+/, "the original README's one-line blocks are rejected with a position");
});

t.test('an empty list where blocks are expected (`lxd = []`) is a problem, not a crash', async (t) => {
  // Found by `npm run fuzz` (config target): `lxd = []` read as zero lxd blocks, and building the config from the
  // first one threw a TypeError, which `lexa check-config` printed as a stack trace.
  const dir = mkdtempSync(join(tmpdir(), 'lexa-cfg-'));
  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, 'server {\n  lxd = []\n}\n');
  const err = await loadConfig({ path: file }).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ConfigError, 'a ConfigError');
  t.same((err as ConfigError).problems, [`${file}: server.lxd: 0 items; at least 1`]);
});

t.test('semantic errors name the key path, all of them at once', async (t) => {
  const p = await problems(`server {
  lxd {
    sufix = "lexa"
  }
  dns {
    ttl = "five"
    bind {
      port = 70000
    }
  }
  log {
    level = "loud"
  }
}
`);
  t.equal(p.length, 4);
  t.match(p.join('\n'), /server\.lxd\.sufix: unknown key \(known here: suffix,/);
  t.match(p.join('\n'), /server\.dns\.ttl: expected a whole number, got string "five"/);
  t.match(p.join('\n'), /server\.dns\.bind\.port: 70000 is out of range 0\.\.65535/);
  t.match(p.join('\n'), /server\.log\.level: expected one of "debug", "info", "warn", "error", got string "loud"/);
});

t.test('unknown top-level and misplaced blocks', async (t) => {
  t.match((await problems('client {\n}\n'))[0], /client: unknown key \(known here: server\)/);
  // Two lxd blocks are two sites (docs/sites.md): each must name its site.
  t.match((await problems('server {\n  lxd {\n  }\n  lxd {\n  }\n}\n'))[0], /server\.lxd\[0\]\.name: required when there is more than one lxd block/);
  t.match((await problems('server {\n  lxd = "x"\n}\n'))[0], /server\.lxd: must be a block/);
});

t.test('certificate files must exist and be readable', async (t) => {
  const p = await problems(`server {
  lxd {
    bind {
      host = "127.0.0.1"
    }
    certificate = "missing.crt"
    key = "c.key"
  }
}
`);
  t.match(p.join('\n'), /server\.lxd\.certificate: .*missing\.crt: no such file/);
  const unreadable = write('locked.key', 'x');
  chmodSync(unreadable, 0o000);
  const q = await problems(`server {
  tls {
    certificate = "c.crt"
    key = "${unreadable}"
  }
}
`);
  // root can read anything; elsewhere this must be reported as unreadable
  if (process.getuid?.() !== 0) t.match(q.join('\n'), /server\.tls\.key: .*cannot read/);
  else t.same(q, []);
  t.match((await problems('server {\n  tls {\n    certificate = "c.crt"\n  }\n}\n')).join(), /server\.tls: set both certificate and key/);
});

t.test('contradictions are reported', async (t) => {
  t.match(
    (await problems('server {\n  lxd {\n    project = "a"\n    all_projects = true\n  }\n}\n')).join(),
    /set project or all_projects = true, not both/,
  );
  t.match((await problems('server {\n  lxd {\n    bind {\n      port = 1\n    }\n  }\n}\n')).join('\n'), /server\.lxd\.bind\.host: required/);
  t.match((await problems('server {\n  lxd {\n    certificate = "c.crt"\n  }\n}\n')).join('\n'), /server\.lxd\.certificate: only used with bind/);
  t.match((await problems('server {\n  lxd {\n    suffix = "bad_suffix!"\n  }\n}\n')).join(), /server\.lxd\.suffix: "bad_suffix!" is not a DNS name/);
  t.match((await problems('server {\n  consul {\n    datacenter = "DC 1"\n  }\n}\n')).join(), /server\.consul\.datacenter: "DC 1" is not a datacenter name/);
  t.match((await problems('server {\n  lxd {\n    watchdog_timeout = "10ms"\n  }\n}\n')).join(), /watchdog_timeout: must be at least 1s/);
});

t.test('an explicit --config that does not exist is an error, not a fallback', async (t) => {
  await t.rejects(loadConfig({ path: join(dir, 'nope.hcl') }), /nope\.hcl: no such file/);
});

t.test('fromParsed accepts parsed JSON directly', async (t) => {
  t.throws(() => fromParsed({ server: [{ dns: [{ ttl: -1 }] }] }, '/x.hcl'), /\/x\.hcl: server\.dns\.ttl: -1 is out of range/);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('1m30s'), 90_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration(2), 2000);
  t.equal(parseDuration('soon'), undefined);
  t.equal(parseDuration(-1), undefined);
});

/** A block written as a plain object, as HCL2 → JSON gives it: every block an array of bodies. */
function hclJson(body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) {
    if (Array.isArray(v)) out[k] = v.map((b) => (typeof b === 'object' && b !== null ? hclJson(b as Record<string, unknown>) : b));
    else if (typeof v === 'object' && v !== null) out[k] = [hclJson(v as Record<string, unknown>)];
    else out[k] = v;
  }
  return out;
}

t.test('every key declared in the schema reaches the Config', async (t) => {
  const https = { host: '10.0.0.5' };
  const TOKEN = '0123456789abcdef0123';
  const tokenFile = write('agent.token', `${TOKEN}\n`);
  const tsigFile = write('xfr.secret', 'c2VjcmV0\n');
  const files = { certificate: certFile, key: keyFile };
  const enc = (k: 'dot' | 'doh' | 'quic'): Record<string, Case> => ({
    [`server.dns.${k}.enabled`]: [{ dns: { [k]: { enabled: true } } }, (c) => c.dns[k].enabled, true],
    [`server.dns.${k}.bind.host`]: [{ dns: { [k]: { bind: [{ host: '::1' }] } } }, (c) => c.dns[k].binds[0]?.host, '::1'],
    [`server.dns.${k}.bind.port`]: [{ dns: { [k]: { bind: [{ port: 1 }] } } }, (c) => c.dns[k].binds[0]?.port, 1],
    [`server.dns.${k}.certificate`]: [{ dns: { [k]: files } }, (c) => c.dns[k].tls.certificate, certFile],
    [`server.dns.${k}.key`]: [{ dns: { [k]: files } }, (c) => c.dns[k].tls.key, keyFile],
    [`server.dns.${k}.hostname`]: [{ dns: { [k]: { hostname: 'ns.example' } } }, (c) => c.dns[k].hostname, 'ns.example'],
    ...limitCases(`server.dns.${k}.limits`, (l) => ({ dns: { [k]: { limits: l } } }), (c) => c.dns[k].limits),
  });
  /** Cases for a `limits` block at `path`: `wrap` puts the block where it belongs, `get` finds the result. */
  const limitCases = (path: string, wrap: (l: object) => Record<string, unknown>, get: (c: Config) => object | undefined, tls = true) => {
    const one = (key: string, value: unknown, field: string, want: unknown): Record<string, Case> => ({
      [`${path}.${key}`]: [wrap({ [key]: value }), (c) => (get(c) as Record<string, unknown> | undefined)?.[field], want],
    });
    return {
      ...one('max_connections', 3, 'maxConnections', 3),
      ...one('max_per_source', 2, 'maxPerSource', 2),
      ...one('ipv6_source_prefix', 48, 'ipv6SourcePrefix', 48),
      ...one('first_request_timeout', '300ms', 'firstRequestTimeoutMs', 300),
      ...one('idle_timeout', '6s', 'idleTimeoutMs', 6_000),
      ...(tls ? one('handshake_timeout', '2s', 'handshakeTimeoutMs', 2_000) : {}),
    };
  };
  // For each key: the `server` block that sets it (with whatever else it needs), where it lands, and the value.
  type Case = [Record<string, unknown>, (c: Config) => unknown, unknown];
  const cases: Record<string, Case> = {
    'server.lxd.suffix': [{ lxd: { suffix: 'Zone.' } }, (c) => c.lxd.suffix, 'zone'],
    'server.lxd.socket': [{ lxd: { socket: dir } }, (c) => c.lxd.endpoint.kind === 'unix' && c.lxd.endpoint.socket, dir],
    'server.lxd.bind.host': [{ lxd: { bind: https, ...files } }, (c) => c.lxd.endpoint.kind === 'https' && c.lxd.endpoint.binds[0]?.host, '10.0.0.5'],
    'server.lxd.bind.port': [{ lxd: { bind: { ...https, port: 1 }, ...files } }, (c) => c.lxd.endpoint.kind === 'https' && c.lxd.endpoint.binds[0]?.port, 1],
    'server.lxd.certificate': [{ lxd: { bind: https, ...files } }, (c) => c.lxd.endpoint.kind === 'https' && c.lxd.endpoint.certificate, certFile],
    'server.lxd.key': [{ lxd: { bind: https, ...files } }, (c) => c.lxd.endpoint.kind === 'https' && c.lxd.endpoint.key, keyFile],
    'server.lxd.server_certificate': [
      { lxd: { bind: https, ...files, server_certificate: certFile } },
      (c) => c.lxd.endpoint.kind === 'https' && c.lxd.endpoint.serverCertificate,
      certFile,
    ],
    'server.lxd.name': [{ lxd: { name: 'rack1' } }, (c) => c.sites[0]?.name, 'rack1'],
    'server.lxd.project': [{ lxd: { project: 'p1' } }, (c) => c.lxd.project, 'p1'],
    'server.lxd.all_projects': [{ lxd: { all_projects: true } }, (c) => c.lxd.allProjects, true],
    'server.lxd.resync_interval': [{ lxd: { resync_interval: '0s' } }, (c) => c.lxd.resyncIntervalMs, 0],
    'server.lxd.watchdog_timeout': [{ lxd: { watchdog_timeout: '1m' } }, (c) => c.lxd.watchdogMs, 60_000],
    'server.lxd.watch_leases': [{ lxd: { watch_leases: false } }, (c) => c.lxd.watchLeases, false],
    'server.tls.enabled': [{ tls: { enabled: false } }, (c) => c.rest.enabled, false],
    'server.tls.bind.host': [{ tls: { bind: [{ host: '::' }] } }, (c) => c.rest.binds[0]?.host, '::'],
    'server.tls.bind.port': [{ tls: { bind: [{ port: 1 }] } }, (c) => c.rest.binds[0]?.port, 1],
    'server.tls.so_reuse_port': [{ tls: { so_reuse_port: true } }, (c) => c.warnings.length, 1],
    'server.tls.so_resue_port': [{ tls: { so_resue_port: false } }, (c) => c.warnings.length, 1],
    'server.tls.certificate': [{ tls: files }, (c) => c.rest.tls.certificate, certFile],
    'server.tls.key': [{ tls: files }, (c) => c.rest.tls.key, keyFile],
    'server.tls.client_ca': [{ tls: { client_ca: certFile } }, (c) => c.rest.clientCa, certFile],
    'server.dns.enabled': [{ dns: { enabled: false } }, (c) => c.dns.enabled, false],
    'server.dns.bind.host': [{ dns: { bind: [{ host: '::1' }] } }, (c) => c.dns.binds[0]?.host, '::1'],
    'server.dns.bind.port': [{ dns: { bind: [{ port: 53 }] } }, (c) => c.dns.binds[0]?.port, 53],
    'server.dns.ttl': [{ dns: { ttl: 30 } }, (c) => c.dns.ttl, 30],
    'server.dns.negative_ttl': [{ dns: { negative_ttl: 60 } }, (c) => c.dns.negativeTtl, 60],
    'server.dns.tcp_idle_timeout': [{ dns: { tcp_idle_timeout: '2s' } }, (c) => c.dns.tcpIdleTimeoutMs, 2000],
    'server.dns.max_tcp_connections': [{ dns: { max_tcp_connections: 8 } }, (c) => c.dns.maxTcpConnections, 8],
    'server.dns.edns_udp_size': [{ dns: { edns_udp_size: 4096 } }, (c) => c.dns.ednsUdpSize, 4096],
    'server.dns.max_udp_reply': [{ dns: { max_udp_reply: 1232 } }, (c) => c.dns.maxUdpReply, 1232],
    'server.dns.udp_receive_buffer': [{ dns: { udp_receive_buffer: 0 } }, (c) => c.dns.udpReceiveBuffer, 0],
    'server.dns.rate_limit.responses_per_second': [{ dns: { rate_limit: { responses_per_second: 0 } } }, (c) => c.dns.rateLimit, null],
    'server.dns.rate_limit.slip': [{ dns: { rate_limit: { slip: 0 } } }, (c) => c.dns.rateLimit?.slip, 0],
    'server.dns.rate_limit.window': [{ dns: { rate_limit: { window: '1m' } } }, (c) => c.dns.rateLimit?.windowMs, 60_000],
    'server.dns.rate_limit.ipv4_prefix': [{ dns: { rate_limit: { ipv4_prefix: 32 } } }, (c) => c.dns.rateLimit?.ipv4Prefix, 32],
    'server.dns.rate_limit.ipv6_prefix': [{ dns: { rate_limit: { ipv6_prefix: 64 } } }, (c) => c.dns.rateLimit?.ipv6Prefix, 64],
    'server.dns.rate_limit.max_prefixes': [{ dns: { rate_limit: { max_prefixes: 10 } } }, (c) => c.dns.rateLimit?.maxPrefixes, 10],
    'server.dns.rate_limit.exempt': [{ dns: { rate_limit: { exempt: ['10.99.0.1', 'fd42::/16'] } } }, (c) => c.dns.rateLimit?.exempt, ['10.99.0.1', 'fd42::/16']],
    ...limitCases('server.dns.limits', (l) => ({ dns: { limits: l } }), (c) => c.dns.limits, false),
    ...limitCases('server.tls.limits', (l) => ({ tls: { limits: l } }), (c) => c.rest.limits),
    ...limitCases('server.agent.limits', (l) => ({ agent: { token: TOKEN, limits: l } }), (c) => c.agent?.limits),
    'server.dns.reverse_zones': [
      { dns: { reverse_zones: ['10.99.0.0/24', 'fd42:99::/64', '1.10.IN-ADDR.ARPA.'] } },
      (c) => c.dns.reverseZones,
      ['0.99.10.in-addr.arpa', '0.0.0.0.0.0.0.0.9.9.0.0.2.4.d.f.ip6.arpa', '1.10.in-addr.arpa'],
    ],
    'server.dns.ns_addresses': [{ dns: { ns_addresses: ['10.99.0.1', 'fd42:99::1'] } }, (c) => c.dns.nsAddresses, ['10.99.0.1', 'fd42:99::1']],
    'server.dns.transfer.allow': [{ dns: { transfer: { allow: ['127.0.0.1', '10.0.0.0/8', '::1'] } } }, (c) => c.dns.transfer.allow, ['127.0.0.1', '10.0.0.0/8', '::1']],
    'server.dns.transfer.notify': [
      { dns: { transfer: { notify: ['10.0.0.2', '10.0.0.3:5353', '[fd00::1]:54'] } } },
      (c) => c.dns.transfer.notify,
      [{ host: '10.0.0.2', port: 53 }, { host: '10.0.0.3', port: 5353 }, { host: 'fd00::1', port: 54 }],
    ],
    'server.dns.transfer.key.name': [{ dns: { transfer: { key: { name: 'Xfr.', secret: 'c2VjcmV0' } } } }, (c) => c.dns.transfer.key?.name, 'xfr'],
    'server.dns.transfer.key.algorithm': [
      { dns: { transfer: { key: { name: 'x', secret: 'c2VjcmV0', algorithm: 'hmac-sha512' } } } },
      (c) => c.dns.transfer.key?.algorithm,
      'hmac-sha512',
    ],
    'server.dns.transfer.key.secret': [{ dns: { transfer: { key: { name: 'x', secret: 'c2VjcmV0' } } } }, (c) => c.dns.transfer.key?.secret.toString(), 'secret'],
    'server.dns.transfer.key.secret_file': [{ dns: { transfer: { key: { name: 'x', secret_file: tsigFile } } } }, (c) => c.dns.transfer.key?.secret.toString(), 'secret'],
    ...enc('dot'),
    ...enc('doh'),
    ...enc('quic'),
    'server.dns.quic.limits.handshakes_per_second': [
      { dns: { quic: { limits: { handshakes_per_second: 16 } } } },
      (c) => c.dns.quic.limits.handshakesPerSecond,
      16,
    ],
    'server.agent.bind.host': [{ agent: { token: TOKEN, bind: [{ host: '10.99.0.1' }] } }, (c) => c.agent?.binds[0]?.host, '10.99.0.1'],
    'server.agent.bind.port': [{ agent: { token: TOKEN, bind: [{ port: 1 }] } }, (c) => c.agent?.binds[0]?.port, 1],
    'server.agent.token': [{ agent: { token: TOKEN } }, (c) => c.agent?.token, TOKEN],
    'server.agent.token_file': [{ agent: { token_file: tokenFile } }, (c) => c.agent?.token, TOKEN],
    'server.agent.certificate': [{ agent: { token: TOKEN, ...files } }, (c) => c.agent?.tls.certificate, certFile],
    'server.agent.key': [{ agent: { token: TOKEN, ...files } }, (c) => c.agent?.tls.key, keyFile],
    'server.agent.hostname': [{ agent: { token: TOKEN, hostname: 'lexa.example' } }, (c) => c.agent?.hostname, 'lexa.example'],
    'server.agent.grace': [{ agent: { token: TOKEN, grace: '1m' } }, (c) => c.agent?.graceMs, 60_000],
    'server.agent.services': [{ agent: { services: ['https', '*'] } }, (c) => c.agent?.services, ['https', '*']],
    'server.agent.issue_tokens': [{ agent: { issue_tokens: false } }, (c) => c.agent?.issueTokens, false],
    'server.log.out': [{ log: { out: 'stderr' } }, (c) => c.log.out, 'stderr'],
    'server.log.level': [{ log: { level: 'debug' } }, (c) => c.log.level, 'debug'],
    'server.metrics.enabled': [{ metrics: { enabled: true } }, (c) => c.metrics.enabled, true],
    'server.metrics.bind.host': [{ metrics: { bind: [{ host: '::1' }] } }, (c) => c.metrics.binds[0]?.host, '::1'],
    'server.metrics.bind.port': [{ metrics: { bind: [{ port: 9 }] } }, (c) => c.metrics.binds[0]?.port, 9],
    'server.consul.datacenter': [{ consul: { datacenter: 'dc-2' } }, (c) => c.consul.datacenter, 'dc-2'],
    'server.state_directory': [{ state_directory: dir }, (c) => c.stateDirectory, dir],
  };
  t.same(Object.keys(cases).sort(), leafPaths(configSchema).sort(), 'one case per declared key: a new key needs a case here');
  const defaults = defaultConfig({});
  for (const [path, [server, get, want]] of Object.entries(cases)) {
    const c = fromParsed({ server: [hclJson(server)] }, join(dir, 'x.hcl'), {});
    t.same(get(c), want, path);
    t.notSame(get(defaults), want, `${path}: the case differs from the default`);
  }
});

t.test('checks declared with a key: duplicate binds, minimum durations, required keys', async (t) => {
  const problemsOf = (server: Record<string, unknown>): string => {
    try {
      fromParsed({ server: [hclJson(server)] }, '/x.hcl', {});
    } catch (err) {
      if (err instanceof ConfigError) return err.problems.join('\n');
      throw err;
    }
    return '';
  };
  t.match(problemsOf({ dns: { bind: [{ port: 53 }, { host: '127.0.0.1', port: 53 }] } }), /\/x\.hcl: server\.dns\.bind: 127\.0\.0\.1:53 is listed twice/);
  t.equal(problemsOf({ dns: { bind: [{ port: 0 }, { port: 0 }] } }), '', 'port 0 (any free port) may repeat');
  t.match(
    fromParsed({ server: [hclJson({ dns: { transfer: { notify: ['10.0.0.2'] } } })] }, '/x.hcl', {}).warnings,
    [/transfer\.notify is set but transfer\.allow is empty/],
    'NOTIFY without an allow list: a warning',
  );
  t.match(problemsOf({ dns: { reverse_zones: ['10.0.0.0/4'] } }), /server\.dns\.reverse_zones: "10\.0\.0\.0\/4" is neither a subnet/);
  t.match(problemsOf({ dns: { reverse_zones: ['example.com'] } }), /server\.dns\.reverse_zones: "example\.com" is neither/);
  t.match(problemsOf({ dns: { transfer: { allow: ['10.0.0.0/33'] } } }), /server\.dns\.transfer\.allow: "10\.0\.0\.0\/33" is not an address or prefix/);
  t.match(problemsOf({ dns: { rate_limit: { exempt: ['::1/129'] } } }), /server\.dns\.rate_limit\.exempt: "::1\/129" is not an address or prefix/);
  t.match(problemsOf({ dns: { edns_udp_size: 8192 } }), /server\.dns\.edns_udp_size: 8192 is out of range 512\.\.4096/);
  t.match(problemsOf({ dns: { rate_limit: { window: '0s' } } }), /server\.dns\.rate_limit\.window: must be 1s\.\.1h/);
  t.match(problemsOf({ dns: { transfer: { allow: ['host.example'] } } }), /server\.dns\.transfer\.allow: .*an address or prefix/);
  t.match(problemsOf({ dns: { transfer: { notify: ['10.0.0.2:70000'] } } }), /server\.dns\.transfer\.notify: "10\.0\.0\.2:70000" is not an address/);
  t.match(problemsOf({ dns: { transfer: { key: { name: 'x' } } } }), /server\.dns\.transfer\.key: set secret or secret_file/);
  t.match(problemsOf({ dns: { transfer: { key: { name: 'x', secret: 'not base64!' } } } }), /server\.dns\.transfer\.key\.secret: .*base64/);
  t.match(problemsOf({ dns: { transfer: { key: { name: 'x', secret: 'c2VjcmV0', algorithm: 'hmac-md5' } } } }), /server\.dns\.transfer\.key\.algorithm/);
  t.match(problemsOf({ lxd: { resync_interval: '500ms' } }), /server\.lxd\.resync_interval: must be 0 \(off\) or at least 1s/);
  t.match(problemsOf({ lxd: { bind: { port: 1 }, certificate: certFile, key: keyFile } }), /^\/x\.hcl: server\.lxd\.bind\.host: required to reach LXD over HTTPS$/);
  t.match(problemsOf({ lxd: { project: 'default', all_projects: true } }), /set project or all_projects = true, not both/, 'a project given, even the default one');
  t.match(problemsOf({ dns: { dot: { certificate: certFile } } }), /server\.dns\.dot: set both certificate and key/);
  t.match(problemsOf({ tls: { limits: { idle_timeout: '50ms' } } }), /server\.tls\.limits\.idle_timeout: must be at least 100ms/);
  t.match(problemsOf({ dns: { quic: { limits: { idle_timeout: '2s' } } } }), /server\.dns\.quic\.limits\.idle_timeout: must be at least 5s/);
  t.match(problemsOf({ dns: { max_tcp_connections: 8, limits: { max_connections: 9 } } }), /set max_tcp_connections or limits\.max_connections, not both/);
});

t.test('the older server.dns keys still set plain TCP and DoT limits, unless a limits block sets them', async (t) => {
  const c = fromParsed({ server: [hclJson({ dns: { tcp_idle_timeout: '2s', max_tcp_connections: 8, dot: { limits: { max_connections: 9 } } } })] }, '/x.hcl', {});
  t.match(c.dns.limits, { maxConnections: 8, idleTimeoutMs: 2_000 }, 'plain TCP');
  t.match(c.dns.dot.limits, { maxConnections: 9, idleTimeoutMs: 2_000 }, 'DoT: its own limits block wins');
  t.match(c.dns.doh.limits, { maxConnections: 256, idleTimeoutMs: 10_000 }, 'DoH has its own defaults');
});

t.test('several lxd bind blocks: the cluster members tried in order for the first connection', async (t) => {
  const file = write(
    'cluster.hcl',
    `server {
  lxd {
    bind {
      host = "10.77.0.12"
    }
    bind {
      host = "10.77.0.11"
      port = 9443
    }
    certificate = "c.crt"
    key         = "c.key"
  }
}
`,
  );
  const c = await loadConfig({ path: file });
  t.match(c.lxd.endpoint, { kind: 'https', binds: [{ host: '10.77.0.12', port: 8443 }, { host: '10.77.0.11', port: 9443 }] });
  const one = fromParsed({ server: [{ lxd: [{ bind: [{ host: 'lxd1' }], certificate: certFile, key: keyFile }] }] }, null);
  t.match(one.lxd.endpoint, { kind: 'https', binds: [{ host: 'lxd1', port: 8443 }] }, 'a single bind is still valid');
});

t.test('the local socket: $LXD_DIR, then $INCUS_DIR, then the first standard socket that exists', async (t) => {
  t.equal(defaultSocket({ LXD_DIR: '/srv/lxd', INCUS_DIR: '/srv/incus' }), '/srv/lxd/unix.socket');
  t.equal(defaultSocket({ INCUS_DIR: '/srv/incus' }), '/srv/incus/unix.socket');
  const found = defaultSocket({});
  t.ok(LXD_SOCKETS.includes(found as (typeof LXD_SOCKETS)[number]), `one of the standard places: ${found}`);
});
