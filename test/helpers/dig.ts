import { execFile } from 'node:child_process';

/**
 * Real DNS clients (dig from bind9 9.18, kdig from Knot 3.2) run as processes, their output parsed into a
 * comparable form: status, flags, and each section as normalised zone-file lines ("owner ttl IN TYPE rdata").
 * SOA serials are masked as SERIAL because they follow the snapshot's time.
 */
export interface DnsReply {
  readonly status: string;
  readonly flags: readonly string[];
  readonly answer: readonly string[];
  readonly authority: readonly string[];
  readonly additional: readonly string[];
  /** The client's whole output, for failure messages. */
  readonly raw: string;
}

export type DnsClient = (name: string, type: string) => Promise<DnsReply>;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      // dig exits non-zero for some statuses only with +fail; a real failure has no header
      if (err && !/^;;.*status: [A-Z]/m.test(stdout)) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || stdout || err.message}`));
      else resolve(stdout);
    });
  });
}

/** dig against 127.0.0.1:port; `extra` selects the transport, e.g. ['+tcp'], ['+tls'], ['+https']. */
export function dig(port: number, extra: string[] = []): DnsClient {
  return async (name, type) =>
    parse(await run('dig', ['@127.0.0.1', '-p', String(port), name, type, '+norecurse', '+time=5', '+tries=1', ...extra]));
}

/** lexa's independent DoQ test client (Go, quic-go + miekg/dns; built by scripts/doq-client.sh). */
export function doqClient(binary: string, port: number, extra: string[] = []): DnsClient {
  return async (name, type) =>
    parse(await run(binary, ['-server', `127.0.0.1:${port}`, '-name', name, '-type', type, '-full', ...extra]));
}

/** kdig against 127.0.0.1:port; `extra` e.g. ['+tcp'], ['+tls'], ['+https']. */
export function kdig(port: number, extra: string[] = []): DnsClient {
  return async (name, type) =>
    parse(await run('kdig', ['@127.0.0.1', '-p', String(port), name, type, '+norecurse', '+time=5', '+retry=0', ...extra]));
}

/**
 * kdig +quic (Knot 3.2.6: ngtcp2 0.12 + GnuTLS, a QUIC stack independent of lexa's and of the Go client's) against
 * 127.0.0.1:port. `+quic` goes after `extra` because kdig's +tls-* options select DoT when they follow it. Rejects
 * unless kdig reports a QUIC session, so a reply that came some other way never passes for DoQ.
 */
export function kdigQuic(port: number, extra: string[] = []): DnsClient {
  const ask = kdig(port, [...extra, '+quic']);
  return async (name, type) => {
    const reply = await ask(name, type);
    if (!/^;; QUIC session \(QUICv1\)/m.test(reply.raw)) throw new Error(`kdig +quic printed no QUIC session line:\n${reply.raw}`);
    return reply;
  };
}

export function parse(out: string): DnsReply {
  const status = /^;;.*?opcode: QUERY[,;] status: ([A-Z]+)/m.exec(out)?.[1] ?? 'NONE';
  const flagsText = /;; [Ff]lags: ([a-z ]*)[;\n]/.exec(out)?.[1] ?? '';
  const sections: Record<string, string[]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let current: string[] | undefined;
  for (const line of out.split('\n')) {
    const header = /^;; (ANSWER|AUTHORITY|ADDITIONAL) SECTION:/.exec(line);
    if (header) {
      current = sections[header[1]!];
      continue;
    }
    if (line.trim() === '' || line.startsWith(';;') || line.startsWith(';')) {
      if (line.trim() === '' || /^;; [A-Z]/.test(line)) current = line.trim() === '' ? undefined : current;
      continue;
    }
    current?.push(normalise(line));
  }
  return {
    status,
    flags: flagsText.trim().split(/\s+/).filter(Boolean),
    answer: sections['ANSWER']!.sort(),
    authority: sections['AUTHORITY']!.sort(),
    additional: sections['ADDITIONAL']!.filter((l) => !/\sOPT\s/.test(l)).sort(),
    raw: out,
  };
}

function normalise(line: string): string {
  const f = line.trim().split(/\s+/);
  if (f[3] === 'SOA' && f.length >= 11) f[6] = 'SERIAL';
  return f.join(' ');
}
