#!/usr/bin/env node
import { arch, platform } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { effectiveSettings } from './config/effective.js';
import { createLogger } from './log/index.js';
import { version } from './version.js';

// Each command loads only what it runs: the daemon (LXD client, undici, ws, rxjs, every listener) and the agent are
// imported by the command that needs them, so `lexa agent` inside a container and `lexa check-config` start without
// the server's dependencies (test/unit/imports.test.ts holds this).

const HELP = `lexa: instance and service discovery for LXD

Usage:
  lexa server [--config FILE]        run the daemon (DNS, REST) against LXD
  lexa agent [--config FILE]         run the agent inside a container: announce its services to the server
  lexa check-config [FILE]           validate a configuration and print it with every default filled in (JSON)
  lexa version                       print the build version and platform
  lexa --help                        show this help

Without --config (or FILE), lexa reads ./lexa.hcl, else ~/lexa.hcl, else runs on defaults:
the local LXD socket, suffix "lexa", DNS on 127.0.0.1:18053, REST on https://127.0.0.1:18443.
The agent reads --config, else ./lexa.hcl, else ~/lexa.hcl, else /etc/lexa/agent.hcl.

Signals (server): SIGTERM/SIGINT stop cleanly; SIGHUP re-reads the configuration file and applies what it can
without a restart (log level, suffix, TTLs, certificates, listeners, the agent token and allow-list default),
logging what needs one.

Exit codes: 0 clean stop (or a valid configuration), 1 runtime failure, 2 usage or configuration error.
`;

/** How long a clean shutdown may take before the process exits anyway (with 1). */
const SHUTDOWN_GRACE_MS = 5_000;
/**
 * How long the exit waits for the log's last lines to be written. Lines reach a destination that keeps up within
 * milliseconds; one that does not read (a full pipe) would otherwise hold the process forever.
 */
const LOG_FLUSH_MS = 1_000;

/** Waits, at most `ms`, for the lines logged so far to be written: set once a command has its logger. */
let flushLog: (ms: number) => Promise<boolean> = () => Promise.resolve(true);

function printProblems(err: ConfigError): void {
  process.stderr.write(`lexa: configuration error:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    process.stderr.write(`lexa: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const [command, ...extra] = parsed.positionals;
  if (parsed.values.help || command === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === 'version' && extra.length === 0) {
    process.stdout.write(`lexa ${version()} (node ${process.versions.node}, ${platform()}/${arch()})\n`);
    return 0;
  }
  if (command === 'agent' && extra.length === 0) return runAgent(parsed.values.config);
  if (command === 'check-config' && extra.length <= 1 && !(extra.length === 1 && parsed.values.config !== undefined)) {
    return checkConfig(extra[0] ?? parsed.values.config);
  }
  if (command !== 'server' || extra.length > 0) {
    process.stderr.write(`lexa: ${command ? `unknown command "${[command, ...extra].join(' ')}"` : 'no command given'}\n\n${HELP}`);
    return 2;
  }

  let config: Config;
  try {
    config = await loadConfig({ path: parsed.values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      printProblems(err);
      return 2;
    }
    throw err;
  }
  let logger;
  try {
    logger = createLogger(config.log);
  } catch (err) {
    process.stderr.write(`lexa: log.out: ${(err as Error).message}\n`);
    return 1;
  }
  flushLog = logger.flush;
  let daemon;
  try {
    const { startDaemon } = await import('./daemon.js');
    daemon = await startDaemon(config, logger);
  } catch (err) {
    logger.error('start-up failed', { error: (err as Error).message });
    return 1;
  }
  // A reload reads the file the daemon started from (found once, at start), or none when it runs on defaults.
  const source = config.source;
  const reload = async () => {
    // First, whatever else the reload does: a log file rotated away by renaming is replaced by a new one at its path.
    try {
      if (logger.reopen()) logger.info('log file reopened', { signal: 'SIGHUP', file: config.log.out });
    } catch (err) {
      logger.error('log file not reopened; still writing to the one open before', { file: config.log.out, error: (err as Error).message });
    }
    if (source === null) {
      logger.warn('SIGHUP: running on defaults (no configuration file); re-reading certificates only');
      await daemon.reloadCertificates();
      return;
    }
    logger.info('reloading configuration', { signal: 'SIGHUP', file: source });
    let next: Config;
    try {
      next = await loadConfig({ path: source });
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      for (const problem of problems) logger.error('reload: configuration error', { problem });
      logger.error('reload rejected; the running configuration stays', { file: source, problems: problems.length });
      return;
    }
    try {
      await daemon.reload(next);
    } catch (err) {
      logger.error('reload rejected; the running configuration stays', { file: source, error: (err as Error).message });
    }
  };
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      setTimeout(() => resolve(1), SHUTDOWN_GRACE_MS).unref();
      daemon.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGHUP', () => void reload());
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** `lexa check-config [FILE]`: the effective configuration as JSON on stdout (0), or every problem on stderr (2). */
async function checkConfig(path: string | undefined): Promise<number> {
  try {
    const config = await loadConfig({ path });
    process.stdout.write(`${JSON.stringify(effectiveSettings(config), null, 2)}\n`);
    process.stderr.write(`lexa: ${config.source ?? 'no configuration file found; the defaults'} ${config.source ? 'is valid' : 'apply'}\n`);
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      printProblems(err);
      return 2;
    }
    throw err;
  }
}

/** `lexa agent`: runs until SIGINT/SIGTERM; configuration errors exit 2 before anything starts. */
async function runAgent(path: string | undefined): Promise<number> {
  const [{ Agent }, { loadAgentConfig }] = await Promise.all([import('./agent/agent.js'), import('./agent/config.js')]);
  let config;
  try {
    config = await loadAgentConfig({ path });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lexa agent: configuration error:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 2;
    }
    throw err;
  }
  const root = createLogger({ out: 'stdout', level: 'info' });
  flushLog = root.flush;
  const logger = root.child({ component: 'agent' });
  if (config.token !== null) logger.hide([config.token]);
  const agent = new Agent(config, logger);
  agent.start();
  logger.info('lexa agent started', { config: config.source, server: `${config.server.host}:${config.server.port}`, services: config.services.length });
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      setTimeout(() => resolve(1), SHUTDOWN_GRACE_MS).unref();
      agent.stop().then(() => resolve(0), () => resolve(1));
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

main(process.argv.slice(2)).then(
  (code) => flushLog(LOG_FLUSH_MS).then(() => process.exit(code)),
  (err: unknown) => {
    process.stderr.write(`lexa: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
