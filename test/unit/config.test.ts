import { mkdtempSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError, DEFAULTS, fromParsed, loadConfig, parseDuration } from '../../src/config/index.js';

// loadConfig parses HCL in a child process running the compiled dist/config/hcl-child.js, so these tests need
// `npm run build` first (the test script does it).

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
  t.same(c.rest.binds, [DEFAULTS.restBind]);
  t.same(c.dns.binds, [DEFAULTS.dnsBind]);
  t.equal(c.dns.ttl, 0);
  t.equal(c.dns.dot.enabled, false);
  t.equal(c.log.level, 'info');
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
  t.match(c.lxd.endpoint, { kind: 'https', bind: { host: '127.0.0.1', port: 8443 }, certificate: certFile, key: keyFile });
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
  t.match((await problems('server {\n  lxd {\n  }\n  lxd {\n  }\n}\n'))[0], /server\.lxd: block is declared 2 times/);
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
