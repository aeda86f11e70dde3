/**
 * Debian's dnsperf (2.10) as a load generator at a fixed rate, and its summary read into numbers: what it sent,
 * completed and lost (no reply within its timeout), and how many replies carried each rcode.
 */
import { execFile } from 'node:child_process';

/**
 * dnsperf -b (KiB): its sockets' queues. Replies wait there while dnsperf is off the CPU on a busy machine; with
 * the kernel's default (208 KiB, 256 replies) a reply dropped there would count as a query lexa lost.
 */
const CLIENT_BUFFER_KB = 4096;

export interface DnsperfOptions {
  readonly port: number;
  readonly queryFile: string;
  readonly qps: number;
  readonly seconds: number;
  /** dnsperf -t: a query unanswered this long counts as lost. */
  readonly timeoutSeconds: number;
  /** dnsperf -c and -q: simulated clients (source ports) and queries outstanding. */
  readonly clients: number;
  readonly outstanding: number;
  /** taskset -c: the CPU dnsperf runs on. */
  readonly cpu?: number;
  /** dnsperf -m (default udp). */
  readonly mode?: 'udp' | 'tcp' | 'dot';
}

export interface DnsperfSummary {
  readonly sent: number;
  readonly completed: number;
  readonly lost: number;
  readonly qps: number;
  /** Replies by rcode name ("NOERROR", "NXDOMAIN", "SERVFAIL", ...). */
  readonly rcodes: Readonly<Record<string, number>>;
  readonly output: string;
}

/** Reads dnsperf's closing statistics; throws naming the output when a line is missing. */
export function parseDnsperf(output: string): DnsperfSummary {
  const num = (label: string) => {
    const m = new RegExp(`^\\s*${label}:\\s+([0-9.]+)`, 'm').exec(output);
    if (!m) throw new Error(`dnsperf printed no "${label}":\n${output}`);
    return Number(m[1]);
  };
  const rcodes: Record<string, number> = {};
  const line = /^\s*Response codes:\s*(.*)$/m.exec(output)?.[1] ?? '';
  for (const m of line.matchAll(/([A-Z]+)\s+(\d+)\s+\(/g)) rcodes[m[1]!] = Number(m[2]);
  return { sent: num('Queries sent'), completed: num('Queries completed'), lost: num('Queries lost'), qps: num('Queries per second'), rcodes, output };
}

/** Runs dnsperf for `seconds` at `qps`; resolves with its summary (rejects if it fails to run). */
export function runDnsperf(o: DnsperfOptions): Promise<DnsperfSummary> {
  const args = ['-s', '127.0.0.1', '-p', String(o.port), '-m', o.mode ?? 'udp', '-d', o.queryFile, '-l', String(o.seconds), '-Q', String(o.qps)];
  args.push('-t', String(o.timeoutSeconds), '-c', String(o.clients), '-q', String(o.outstanding), '-b', String(CLIENT_BUFFER_KB));
  const command = o.cpu === undefined ? ['dnsperf', ...args] : ['taskset', '-c', String(o.cpu), 'dnsperf', ...args];
  return new Promise((resolve, reject) => {
    // dnsperf stops by itself after -l seconds plus its timeout; the kill is the bound if it does not.
    const limit = (o.seconds + o.timeoutSeconds + 30) * 1000;
    execFile(command[0]!, command.slice(1), { timeout: limit, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`dnsperf failed: ${err.message}\n${stdout}${stderr}`));
      try {
        resolve(parseDnsperf(stdout));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}
