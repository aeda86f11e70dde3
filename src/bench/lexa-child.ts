/**
 * The built lexa (`dist/cli.js server`) as a child process of a load run, optionally pinned to one CPU with
 * `taskset` so the load generator on the other CPU does not take its time (2-core machines). Every port is 0 in
 * the configuration; the ports lexa chose are read from its JSON log.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { portFrom } from './logged-port.js';

/** The built CLI, from dist/bench (npm run churn) and from src/bench (the tests, which need npm run build) alike. */
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
/** From spawn to "lxd connected" with every listener up: ~1 s idle; generous for a busy 2-core machine. */
const READY_TIMEOUT_MS = 30_000;
/** SIGTERM, then SIGKILL after this: lexa flushes its log for at most 1 s at exit. */
const STOP_TIMEOUT_MS = 5_000;
/** The largest log kept in memory (a run at info level logs a line per reconnect, not per query). */
const LOG_CAP = 4 * 1024 * 1024;

export interface LexaChild {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The port lexa logged for listener `name` ("dns/udp", "dns/tcp", "dot", "doh", "rest", "metrics"). */
  port(name: string): number;
  log(): string;
  /** SIGTERM, then SIGKILL; resolves when it has exited. Removes the configuration's directory. */
  stop(): Promise<void>;
}

/** Starts lexa with `serverBody` inside `server { ... }`; resolves once LXD is connected and `listeners` are up. */
export async function startLexaChild(serverBody: string, listeners: readonly string[], cpu?: number): Promise<LexaChild> {
  const dir = mkdtempSync(join(tmpdir(), 'lexa-load-'));
  const file = join(dir, 'lexa.hcl');
  writeFileSync(file, `server {\n${serverBody}\n}\n`);
  const argv = [process.execPath, CLI, 'server', '--config', file];
  const command = cpu === undefined ? argv : ['taskset', '-c', String(cpu), ...argv];
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const append = (d: Buffer) => {
    if (log.length < LOG_CAP) log += d.toString();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killed);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!log.includes('"lxd connected"') || listeners.some((l) => portFrom(log, `${l}: listening`) === undefined)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`lexa did not start (listeners ${listeners.join(', ')}):\n${log}`);
    }
    await sleep(20);
  }
  return {
    child,
    pid: child.pid!,
    port: (name) => {
      const p = portFrom(log, `${name}: listening`);
      if (p === undefined) throw new Error(`lexa logged no port for ${name}`);
      return p;
    },
    log: () => log,
    stop,
  };
}
