import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TESTBED_DIR } from './lxd-cli.js';
import { loggedPort } from './net.js';

/** The built CLI (`npm run build`), run as a user would. */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
/** Prometheus's own text-format checker, put there by scripts/prometheus-bin.sh. */
export const PROMTOOL = join(TESTBED_DIR, 'promtool');

/** A `lexa server` process: its log as it grows, the ports it reported, signals, and its exit. */
export class LexaProcess {
  readonly child: ChildProcess;
  log = '';
  readonly exited: Promise<{ code: number | null; signal: string | null; at: number }>;

  constructor(args: readonly string[], opts: SpawnOptions = {}, command: readonly string[] = [process.execPath, CLI]) {
    this.child = spawn(command[0]!, [...command.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.child.stdout!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.log += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  /** Resolves when `pattern` appears in the log after `from` characters; rejects after `ms` or if lexa exits. */
  async waitLog(pattern: RegExp, ms = 15_000, from = 0): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pattern.test(this.log.slice(from))) {
      if (this.child.exitCode !== null) throw new Error(`lexa exited (${this.child.exitCode}) before ${pattern}:\n${this.log}`);
      if (Date.now() > deadline) throw new Error(`no ${pattern} in lexa's log within ${ms} ms:\n${this.log}`);
      await sleep(25);
    }
  }

  /** The port lexa logged for listener `name` (e.g. "dns/udp", "dot", "rest"). */
  port(name: string): number {
    const p = loggedPort(this.log, name);
    if (p === undefined) throw new Error(`lexa logged no port for ${name}:\n${this.log}`);
    return p;
  }

  /** Log lines (parsed) whose msg matches. */
  lines(msg: RegExp): Record<string, unknown>[] {
    return this.log
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => msg.test(String(l['msg'])));
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}

/** Samples of a Prometheus text exposition: `name{labels}` (labels as printed) → value. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** The sum of every sample of `name` whose labels include each of `labels` (0 when there is none). */
export function sample(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    const n = brace < 0 ? key : key.slice(0, brace);
    if (n !== name) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}
