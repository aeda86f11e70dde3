import { readdirSync, readFileSync } from 'node:fs';

/** A process's resident set size now, in bytes (VmRSS of /proc/<pid>/status), or 0 once it is gone. */
export function rssBytes(pid: number): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

/**
 * Every SAMPLE_MS: often enough to see a peak that lasts as long as one garbage collection, cheap enough (one small
 * file read) to cost the measured process nothing.
 */
export const SAMPLE_MS = 20;

/** Samples `pid`'s RSS from construction until stop(); the peak is what an attack cost in memory at its worst. */
export class RssSampler {
  #peak: number;
  readonly #timer: NodeJS.Timeout;

  constructor(readonly pid: number) {
    this.#peak = rssBytes(pid);
    this.#timer = setInterval(() => (this.#peak = Math.max(this.#peak, rssBytes(pid))), SAMPLE_MS);
  }

  /** Stops sampling; the highest RSS seen, in bytes. */
  stop(): number {
    clearInterval(this.#timer);
    this.#peak = Math.max(this.#peak, rssBytes(this.pid));
    return this.#peak;
  }
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ: 100 on every Linux lexa runs on). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system, every thread) `pid` has used so far, or 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces): state is the 3rd field, utime the 14th, stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Open file descriptors of `pid` (every accepted connection holds one), or 0 once it is gone. */
export function openDescriptors(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}
