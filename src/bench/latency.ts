/**
 * Latency at a fixed rate: sends DNS queries over UDP at `--qps` for `--seconds`, paced in 1 ms slices, and
 * reports the round-trip percentiles of the replies (dnsperf reports only the mean). The same client measures
 * every server in a run (scripts/bench.sh), so the differences are the servers'.
 *
 *   node dist/bench/latency.js --port 53 [--host 127.0.0.1] [--qps 20000] [--seconds 5] --queries FILE
 *   FILE: one "name TYPE" per line (dnsperf's format). Prints one JSON line:
 *   {"sent":…,"received":…,"p50_us":…,"p99_us":…,"p999_us":…}
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';

/** Query IDs in flight per socket; a reply whose ID slot was reused is not counted. */
const IDS = 65_536;
/** Sockets the queries are spread over (distinct source ports, as a resolver's would be). */
const SOCKETS = 4;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      qps: { type: 'string', default: '20000' },
      seconds: { type: 'string', default: '5' },
      queries: { type: 'string' },
    },
  });
  if (!values.port || !values.queries) throw new Error('--port and --queries are required');
  const port = Number(values.port);
  const qps = Number(values.qps);
  const seconds = Number(values.seconds);
  const questions = readFileSync(values.queries, 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 2 && f[0] !== '')
    .map(([name, type]) => ({ name: name!, type: type as dnsPacket.RecordType }));
  if (questions.length === 0) throw new Error(`${values.queries}: no queries`);
  const packets = questions.map((q) => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [q] }));

  const sent = Array.from({ length: SOCKETS }, () => new Float64Array(IDS));
  const rtts: number[] = [];
  const sockets = await Promise.all(
    Array.from({ length: SOCKETS }, (_, s) => new Promise<dgram.Socket>((resolve) => {
      const sock = dgram.createSocket(values.host!.includes(':') ? 'udp6' : 'udp4');
      sock.on('message', (msg) => {
        if (msg.length < 2) return;
        const id = msg.readUInt16BE(0);
        const t = sent[s]![id]!;
        if (t > 0) {
          rtts.push(performance.now() - t);
          sent[s]![id] = 0;
        }
      });
      sock.bind(0, () => resolve(sock));
    })),
  );

  const total = Math.round(qps * seconds);
  let n = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * qps));
      for (; n < due; n++) {
        const s = n % SOCKETS;
        const id = Math.floor(n / SOCKETS) % IDS;
        const pkt = packets[n % packets.length]!;
        pkt.writeUInt16BE(id, 0);
        sent[s]![id] = performance.now();
        sockets[s]!.send(pkt, port, values.host);
      }
      if (n < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 500)); // stragglers
  for (const s of sockets) s.close();
  rtts.sort((a, b) => a - b);
  const pct = (p: number) => Math.round((rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))] ?? NaN) * 1000);
  console.log(JSON.stringify({ sent: total, received: rtts.length, p50_us: pct(0.5), p99_us: pct(0.99), p999_us: pct(0.999) }));
}

void main().catch((err: unknown) => {
  console.error(`latency: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
