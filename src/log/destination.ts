import { constants, openSync } from 'node:fs';
import sonicBoom from 'sonic-boom';

/**
 * The most bytes of log lines held in memory while the destination is slower than the daemon (a full pipe nobody
 * reads, a stalled terminal, a slow disk). Lines past it are dropped and counted, so a stuck destination costs at
 * most this much memory and never blocks the event loop. 1 MiB is ~5,000 of lexa's lines (~200 bytes each): far
 * more than any burst lexa logs (start-up or a reload write a few dozen), small beside the daemon's ~100 MiB.
 */
export const MAX_QUEUED_BYTES = 2 ** 20;

/** A place lines are written to asynchronously, with a bounded queue. */
export interface Destination {
  /** Queues one line (with its newline); dropped, and counted, when MAX_QUEUED_BYTES are already queued. */
  write(line: string): void;
  /** Lines dropped since start, because the queue was full. */
  readonly dropped: number;
  /**
   * Resolves true once every line queued so far is written, or false after `ms` if the destination has not taken
   * them by then (they are abandoned, never waited for without bound). For the exit path: nothing is flushed
   * synchronously at exit, so a destination that does not read can never hold the process.
   */
  flush(ms: number): Promise<boolean>;
  /**
   * For a file: opens the path again and writes every later line there, so a log rotated away by renaming (logrotate
   * without copytruncate) is followed by a new file at the configured path. Lines already queued still go to the old
   * file, which is closed once they are written. Returns false for stdout and stderr (nothing to reopen). Throws, and
   * keeps writing where it did, when the path cannot be opened.
   */
  reopen(): boolean;
}

/**
 * `out` ("stdout", "stderr" or a file path, appended to) as a Destination on sonic-boom, pino's own asynchronous
 * destination (no worker thread). `onCaughtUp(dropped)` is called when the queue empties after lines were dropped,
 * with how many, so the logger can say so in the log itself. Throws when a file cannot be opened.
 */
export function openDestination(out: string, onCaughtUp: (dropped: number) => void): Destination {
  let dropped = 0;
  let droppedUnreported = 0;
  const onDrop = () => {
    dropped++;
    droppedUnreported++;
  };
  const onDrained = () => {
    if (droppedUnreported === 0) return;
    const count = droppedUnreported;
    droppedUnreported = 0;
    onCaughtUp(count);
  };
  let current = openSink(fdFor(out), onDrop, onDrained);
  /** Sinks replaced by reopen() whose queued lines are still being written: a flush waits for them too. */
  const retiring = new Set<Sink>();
  return {
    write(line) {
      current.write(line);
    },
    get dropped() {
      return dropped;
    },
    async flush(ms) {
      const results = await Promise.all([current, ...retiring].map((sink) => sink.flush(ms)));
      return results.every(Boolean);
    },
    reopen() {
      if (out === 'stdout' || out === 'stderr') return false;
      const next = openSink(fdFor(out), onDrop, onDrained);
      const old = current;
      current = next;
      retiring.add(old);
      void old.close().then(() => retiring.delete(old));
      return true;
    },
  };
}

/** One descriptor's writer and its queue accounting. */
interface Sink {
  write(line: string): void;
  flush(ms: number): Promise<boolean>;
  /** Writes what is queued (waiting at most RETIRE_FLUSH_MS), then closes the descriptor. */
  close(): Promise<void>;
}

/**
 * How long a sink replaced by reopen() may take to write its queued lines before its descriptor is closed anyway:
 * a rotated file on a stalled disk must not keep a descriptor (and its queue) forever.
 */
const RETIRE_FLUSH_MS = 30_000;

function openSink(fd: number, onDrop: () => void, onDrained: () => void): Sink {
  // Buffers, not strings: sonic-boom then keeps a list per write instead of re-measuring a growing string on every
  // line, so one write may take the whole queue (maxWrite) and a destination that keeps up drains it in one turn
  // of the event loop (with 16 KiB strings, the default, a burst of lines outran /dev/null: bench/log.ts).
  const stream = new sonicBoom.SonicBoom({
    fd,
    sync: false,
    contentMode: 'buffer',
    minLength: 0,
    maxLength: MAX_QUEUED_BYTES,
    maxWrite: MAX_QUEUED_BYTES,
  });
  let queued = 0;
  let written = 0;
  let broken = false;
  const waiters = new Set<() => void>();
  stream.on('drop', (line: Buffer) => {
    queued -= line.length;
    onDrop();
  });
  stream.on('write', (n: number) => {
    written += n;
    if (written < queued) return;
    for (const wake of waiters) wake();
    onDrained();
  });
  // A destination that fails (EPIPE: the reader went away) must not crash the daemon; nothing more is written to
  // it (as pino does for EPIPE), and whoever waits for a flush stops waiting.
  stream.on('error', () => {
    broken = true;
    for (const wake of waiters) wake();
  });
  const flush = (ms: number): Promise<boolean> => {
    if (written >= queued || broken) return Promise.resolve(!broken);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve(ok);
      };
      const wake = () => done(!broken);
      const timer = setTimeout(() => done(false), ms);
      waiters.add(wake);
    });
  };
  return {
    write(line) {
      if (broken) return;
      const bytes = Buffer.from(line);
      queued += bytes.length;
      // sonic-boom types write() for strings only; in buffer mode it takes (and needs) a Buffer.
      stream.write(bytes as unknown as string);
    },
    flush,
    async close() {
      await flush(RETIRE_FLUSH_MS);
      broken = true;
      // end() closes the descriptor once sonic-boom holds nothing more; after an error it is closed already, and
      // end() throws "destroyed".
      try {
        stream.end();
      } catch {
        // nothing left to release
      }
    },
  };
}

/**
 * The descriptor to write `out` to, never one whose write can wait forever: a libuv thread blocked in write(2) on
 * a full pipe also stops the process from exiting (measured: process.exit waited for it). For stdout and stderr,
 * touching process.stdout/stderr makes Node open a pipe or socket in non-blocking mode (a terminal and a file stay
 * as they are), so a full pipe answers EAGAIN and sonic-boom retries on a timer. A file is opened non-blocking too,
 * so a FIFO given as `out` fails at once (ENXIO without a reader) instead of blocking start-up.
 */
function fdFor(out: string): number {
  if (out === 'stdout') {
    void process.stdout;
    return 1;
  }
  if (out === 'stderr') {
    void process.stderr;
    return 2;
  }
  return openSync(out, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
}
