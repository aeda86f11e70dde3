/**
 * What the benchmarks that run the whole daemon share (growth.ts, sites.ts): a bounded UDP query load, polling
 * with a deadline, a process's RSS and CPU time from /proc, and a clean stop.
 */
import type { ChildProcess } from 'node:child_process';
import type dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

/** Sends `total` queries for `names` with `window` in flight; resolves when every one is answered or lost. */
export function load(client: dgram.Socket, port: number, names: string[], total: number, window: number): Promise<void> {
  const packets = names.map((name, k) => dnsPacket.encode({ type: 'query', id: k, questions: [{ name, type: 'A' }] }));
  return new Promise((resolve) => {
    let sent = 0;
    let done = 0;
    const send = () => {
      client.send(packets[sent % packets.length]!, port, '127.0.0.1');
      sent++;
    };
    const onReply = () => {
      done++;
      if (sent < total) send();
      else if (done >= total) finish();
    };
    // A lost datagram must not stall the window: a watchdog tops it up.
    const watchdog = setInterval(() => {
      if (sent >= total) return finish();
      for (let k = 0; k < window / 4 && sent < total; k++) send();
    }, 200);
    const finish = () => {
      clearInterval(watchdog);
      client.off('message', onReply);
      resolve();
    };
    client.on('message', onReply);
    for (let k = 0; k < window; k++) send();
  });
}

export async function until<T>(probe: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: string, pollMs = 10): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`growth: timed out waiting for ${what}`);
    if (pollMs > 0) await new Promise((r) => setTimeout(r, pollMs));
  }
}

export function rss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
