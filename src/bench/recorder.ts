/**
 * The recorder of the churn run (src/bench/churn.ts): asks lexa A and AAAA of a list of names over UDP at a fixed
 * rate for a fixed time, and keeps every reply with the instants its query was sent and its reply received
 * (`performance.now()`, the clock the churn's steps are timed on), so each can be judged against LXD's state at that
 * moment (churn-judge.ts). It stops by itself: `seconds` of sending, then one `timeoutMs` for the last replies.
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import type { Answer } from './churn-judge.js';

/** Queries are sent in slices of this many ms (a timer per query would cost more than the queries). */
const SLICE_MS = 5;
/** The recorder socket's queue (SO_RCVBUF, up to net.core.rmem_max): replies lost here would count against lexa. */
const CLIENT_BUFFER = 4 * 1024 * 1024;

export interface RecorderOptions {
  readonly port: number;
  readonly host?: string;
  /** Asked in turn, each as A then AAAA. */
  readonly names: readonly string[];
  /** Every name, the zone's suffix appended (e.g. "lexa"). */
  readonly suffix: string;
  readonly qps: number;
  readonly seconds: number;
  /** A query unanswered this long is recorded as a timeout. */
  readonly timeoutMs: number;
}

interface Pending {
  readonly name: string;
  readonly type: 'A' | 'AAAA';
  readonly sentAt: number;
}

/** Runs the recorder; resolves with every answer once the last query has been answered or timed out. */
export async function record(o: RecorderOptions): Promise<Answer[]> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  socket.setRecvBufferSize(CLIENT_BUFFER); // replies wait here while this process is off the CPU
  const answers: Answer[] = [];
  // One query per id at a time: at most 65,536 outstanding, far above qps × timeout at the rates used here.
  const pending = new Map<number, Pending>();
  socket.on('message', (msg) => {
    const receivedAt = performance.now();
    let p: dnsPacket.DecodedPacket & { rcode?: string };
    try {
      p = dnsPacket.decode(msg) as typeof p;
    } catch {
      answers.push({ name: '(undecodable)', type: 'A', sentAt: receivedAt, receivedAt, rcode: 'UNDECODABLE', addresses: [] });
      return;
    }
    const q = pending.get(p.id ?? -1);
    if (q === undefined) return;
    pending.delete(p.id!);
    const addresses = (p.answers ?? []).flatMap((r) => (r.type === q.type ? [String(r.data)] : []));
    answers.push({ ...q, receivedAt, rcode: p.rcode ?? 'UNKNOWN', addresses });
  });
  socket.on('error', () => undefined);

  const start = performance.now();
  const total = Math.floor(o.qps * o.seconds);
  let sent = 0;
  let id = 0;
  const questions = o.names.flatMap((n) => [
    { name: n, type: 'A' as const },
    { name: n, type: 'AAAA' as const },
  ]);
  const expire = (now: number, all = false) => {
    for (const [k, q] of pending) {
      if (!all && now - q.sentAt < o.timeoutMs) break; // insertion order is send order
      pending.delete(k);
      answers.push({ ...q, receivedAt: now, rcode: 'TIMEOUT', addresses: [] });
    }
  };
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      expire(now);
      const due = Math.min(total, Math.floor(((now - start) / 1000) * o.qps));
      for (; sent < due; sent++) {
        do id = (id + 1) & 0xffff;
        while (pending.has(id)); // an id still out is skipped, not the query
        const q = questions[sent % questions.length]!;
        const wire = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `${q.name}.${o.suffix}`, type: q.type }] });
        pending.set(id, { ...q, sentAt: performance.now() });
        socket.send(wire, o.port, o.host ?? '127.0.0.1');
      }
      if (sent >= total && (pending.size === 0 || now - start > o.seconds * 1000 + o.timeoutMs)) {
        clearInterval(tick);
        expire(now, true);
        resolve();
      }
    }, SLICE_MS);
  });
  socket.close();
  return answers;
}
