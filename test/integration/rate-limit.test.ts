import dgram from 'node:dgram';
import t from 'tap';
import dnsPacket from 'dns-packet';
import { dig } from '../helpers/dig.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { LXD_SOCKET } from '../helpers/lxd-cli.js';

// The daemon as configured from a file, watching the real LXD: its OPT advertises 1232 by default, and
// `server.dns.rate_limit` reaches the UDP listener: a flood from 127.0.0.5 is limited (loopback is exempt by
// default, so the test empties `exempt` and counts /32s), dig there falls back to TCP, 127.0.0.1 is answered,
// and /metrics counts the limited replies.

const FLOOD = 200;

/** Sends `count` queries for the zone's SOA from `from`, paced, and resolves once they are all sent. */
async function flood(from: string, port: number, count: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, from, resolve));
  const q = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'lexa', type: 'SOA' }] });
  for (let i = 0; i < count; i++) {
    sock.send(q, port, '127.0.0.1');
    if (i % 25 === 24) await new Promise((r) => setTimeout(r, 1));
  }
  await new Promise((r) => setTimeout(r, 200));
  sock.close();
}

t.test('the daemon advertises EDNS 1232 and rate-limits UDP per its configuration', async (t) => {
  const lexa = await startLexa(
    `    socket = "${LXD_SOCKET}"`,
    `  dns {
    bind {
      host = "127.0.0.1"
      port = 0
    }
    rate_limit {
      responses_per_second = 5
      window = "60s"
      ipv4_prefix = 32
      exempt = []
    }
  }
  metrics {
    bind {
      host = "127.0.0.1"
      port = 0
    }
  }
`,
  );
  t.teardown(() => lexa.close());

  const first = await dig(lexa.dnsPort, ['-b', '127.0.0.1', '+bufsize=4096'])('lexa', 'SOA');
  t.equal(first.status, 'NOERROR');
  t.match(first.raw, /; EDNS: version: 0, flags:; udp: 1232\n/, 'our OPT advertises 1232');

  await flood('127.0.0.5', lexa.dnsPort, FLOOD);
  const viaTcp = await dig(lexa.dnsPort, ['-b', '127.0.0.5', '+tries=3', '+time=1'])('lexa', 'SOA');
  t.match(viaTcp.raw, /Truncated, retrying in TCP mode/, '127.0.0.5: limited, dig retried over TCP');
  t.equal(viaTcp.status, 'NOERROR', '127.0.0.5: answered over TCP');
  t.equal(viaTcp.answer.length, 1);
  const neighbour = await dig(lexa.dnsPort, ['-b', '127.0.0.1'])('lexa', 'SOA');
  t.notMatch(neighbour.raw, /Truncated/, '127.0.0.1: answered over UDP');
  t.equal(neighbour.answer.length, 1);

  const metricsPort = lexa.daemon.ports.metrics[0]!;
  const text = (await curl(`http://127.0.0.1:${metricsPort}/metrics`)).body;
  const count = (action: string) => Number(new RegExp(`^lexa_dns_rate_limited_total\\{action="${action}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? -1);
  t.ok(count('slip') > 0 && count('drop') > 0, `limited replies counted: ${count('slip')} slipped, ${count('drop')} dropped`);
});
