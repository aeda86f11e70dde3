import type { Logger } from '../../src/log/index.js';
import type { Rng } from './random.js';

/**
 * What every fuzz target is: a name, its share of a run's cases, and `open`, which starts what it drives (an
 * in-process handler, a loopback server, a daemon) and returns the function that runs one case. A case draws all
 * its input from its Rng, so (seed, target, index) reproduces it. A case fails by throwing: a Finding when an
 * oracle saw a wrong answer, anything else is a crash of the code under test.
 */
export interface Target {
  readonly name: string;
  /** Share of the default count; the shares of a run's targets are normalised. */
  readonly weight: number;
  /** What it covers, for `npm run fuzz -- --list` and the report. */
  readonly covers: string;
  open(ctx: CaseContext): Promise<OpenTarget>;
}

export interface OpenTarget {
  /** Runs case `index` with its input drawn from `rng`; throws on a finding. */
  run(rng: Rng, index: number): void | Promise<void>;
  /** Checks the thing under test still answers a known-good input (run after the last case); throws if not. */
  alive?(): Promise<void>;
  close(): Promise<void>;
}

/** What the runner hands a target. */
export interface CaseContext {
  /** Targets call this with each case's input before using it: a failure writes it beside the finding. */
  note(input: Buffer | string | object): void;
  /** A logger that counts error lines: an error logged during a case is a finding (the code under test hid a crash). */
  readonly log: FuzzLog;
}

/** An oracle's verdict that an answer was wrong. */
export class Finding extends Error {
  override readonly name = 'Finding';
}

export function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Finding(message);
}

/** Error lines kept per case at most: the first says what went wrong, the count says how often. */
const MAX_KEPT_ERRORS = 4;

/**
 * A Logger for code under fuzz: writes nothing (a million cases would log millions of lines), keeps the error
 * lines since the last `take`. Errors are what lexa logs when its own code threw and it answered SERVFAIL or
 * dropped the input: exactly what a fuzzer is looking for.
 */
export class FuzzLog implements Logger {
  #errors: string[] = [];
  #count = 0;
  constructor(private readonly fields: Record<string, unknown> = {}, private readonly root?: FuzzLog) {}

  debug(): void {}
  info(): void {}
  warn(): void {}
  error(msg: string, fields?: Record<string, unknown>): void {
    const target = this.root ?? this;
    target.#count++;
    if (target.#errors.length < MAX_KEPT_ERRORS) target.#errors.push(`${msg} ${JSON.stringify({ ...this.fields, ...fields })}`);
  }
  child(fields: Record<string, unknown>): Logger {
    return new FuzzLog({ ...this.fields, ...fields }, this.root ?? this);
  }
  setLevel(): void {}
  hide(): void {}

  /** Error lines since the last call, and how many there were. */
  take(): { readonly count: number; readonly lines: readonly string[] } {
    const out = { count: this.#count, lines: this.#errors };
    this.#errors = [];
    this.#count = 0;
    return out;
  }
}

/** Runs `p` with a deadline: a case that does not finish in time is a hang. */
export async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Finding(`hang: ${what} not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
