#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { parseArgs } from 'node:util';
import { Agent, loadAgentConfig } from './agent/index.js';
import { ConfigError, loadConfig } from './config/index.js';
import { startDaemon } from './daemon.js';
import { createLogger } from './log/index.js';

const HELP = `lexa: instance and service discovery for LXD

Usage:
  lexa server [--config FILE]   run the daemon (DNS, REST) against LXD
  lexa agent [--config FILE]    run the agent inside a container: announce its services to the server
  lexa version                  print the build version and platform
  lexa --help                   show this help

Without --config, lexa reads ./lexa.hcl, else ~/lexa.hcl, else runs on defaults:
the local LXD socket, suffix "lexa", DNS on 127.0.0.1:18053, REST on https://127.0.0.1:18443.
The agent reads --config, else ./lexa.hcl, else ~/lexa.hcl, else /etc/lexa/agent.hcl.

Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error.
`;

/** How long a clean shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 5_000;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
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
  if (command !== 'server' || extra.length > 0) {
    process.stderr.write(`lexa: ${command ? `unknown command "${[command, ...extra].join(' ')}"` : 'no command given'}\n\n${HELP}`);
    return 2;
  }

  let config;
  try {
    config = await loadConfig({ path: parsed.values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lexa: configuration error:\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 2;
    }
    throw err;
  }
  const logger = createLogger(config.log);
  let daemon;
  try {
    daemon = await startDaemon(config, logger);
  } catch (err) {
    logger.error('start-up failed', { error: (err as Error).message });
    return 1;
  }
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      setTimeout(() => resolve(1), SHUTDOWN_GRACE_MS).unref();
      daemon.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGHUP', () => {
      logger.info('reloading certificates', { signal: 'SIGHUP' });
      void daemon.reloadCertificates();
    });
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

/** `lexa agent`: runs until SIGINT/SIGTERM; configuration errors exit 2 before anything starts. */
async function runAgent(path: string | undefined): Promise<number> {
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
  const logger = createLogger({ out: 'stdout', level: 'info' }).child({ component: 'agent' });
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
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`lexa: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
