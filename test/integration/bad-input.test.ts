import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import t from 'tap';
import { dig } from '../helpers/dig.js';
import { curl, startLexa } from '../helpers/lexa.js';
import { deleteByPrefix, instanceState, launch, LXD_SOCKET, waitFor } from '../helpers/lxd-cli.js';
import { seeded } from '../helpers/model.js';

// Bad input at every socket of a running lexa watching the real LXD: random and mutated packets over UDP, garbage
// over TCP, DoT and DoH, malformed REST requests. Afterwards lexa must still answer with LXD's real state.
const NAME = 'bad-in-1';


t.test('lexa survives fuzzed packets and garbage on every transport', async (t) => {
  await deleteByPrefix('bad-in-');
  await launch(NAME);
  t.teardown(() => deleteByPrefix('bad-in-').then(() => undefined));
  const lexa = await startLexa(
    `    socket = "${LXD_SOCKET}"`,
    `  dns {\n    bind {\n      host = "127.0.0.1"\n      port = 0\n    }\n    dot {\n      bind {\n        host = "127.0.0.1"\n        port = 0\n      }\n    }\n    doh {\n      bind {\n        host = "127.0.0.1"\n        port = 0\n      }\n    }\n  }\n`,
  );
  t.teardown(() => lexa.close());
  const v4 = await waitFor(async () => (await instanceState(NAME)).network?.['eth0']?.addresses.find((a) => a.family === 'inet')?.address, { what: 'IPv4' });
  const ask = dig(lexa.dnsPort);
  await waitFor(async () => (await ask(`${NAME}.lexa`, 'A')).answer.length === 1, { what: 'lexa to know the container' });

  // UDP: 3000 datagrams, random bytes and single-byte mutations of a valid query; count the replies.
  const random = seeded(1234); // deterministic, so a failure can be replayed
  const valid = dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [{ type: 'A', name: `${NAME}.lexa`, class: 'IN' }] });
  const udp = dgram.createSocket('udp4');
  let replies = 0;
  udp.on('message', () => replies++);
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  for (let i = 0; i < 3000; i++) {
    let pkt: Buffer;
    if (i % 2 === 0) {
      pkt = Buffer.alloc(Math.floor(random() * 600));
      for (let j = 0; j < pkt.length; j++) pkt[j] = Math.floor(random() * 256);
    } else {
      pkt = Buffer.from(valid);
      for (let k = 0; k < 1 + Math.floor(random() * 4); k++) pkt[Math.floor(random() * pkt.length)] = Math.floor(random() * 256);
    }
    udp.send(pkt, lexa.dnsPort, '127.0.0.1');
    if (i % 200 === 0) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 300));
  udp.close();
  t.ok(replies > 0, `lexa answered what it could (${replies} replies to 3000 bad datagrams)`);

  // TCP and DoT: garbage, a huge length prefix, and a half-sent frame, then hang up.
  for (let i = 0; i < 20; i++) {
    const s = net.connect(lexa.dnsPort, '127.0.0.1');
    s.on('error', () => undefined);
    s.write(i % 2 ? Buffer.from([0xff, 0xff, 1, 2, 3]) : Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    s.destroy();
  }
  const dotPort = lexa.daemon.ports.dot[0]!;
  for (let i = 0; i < 10; i++) {
    const raw = net.connect(dotPort, '127.0.0.1');
    raw.on('error', () => undefined);
    raw.write('\x16\x03\x01\x00\x05hello'); // a broken TLS record
    raw.destroy();
    const s = tls.connect({ host: '127.0.0.1', port: dotPort, rejectUnauthorized: false });
    s.on('error', () => undefined);
    s.on('secureConnect', () => {
      s.write(Buffer.from([0, 40, ...Array.from({ length: 10 }, () => 0xab)]));
      s.destroy();
    });
  }

  // DoH and REST: bad requests get 4xx, not crashes.
  const doh = `https://127.0.0.1:${lexa.daemon.ports.doh[0]}/dns-query`;
  t.equal((await curl(`${doh}?dns=!!!notbase64`)).status, 400);
  t.equal((await curl(`${doh}?dns=AAAA`)).status, 400, 'a too-short message is refused');
  t.equal((await curl(doh, '-X', 'POST', '-H', 'content-type: text/plain', '--data', 'x')).status, 415);
  t.equal((await curl(`${lexa.restUrl}/containers/%ZZ`)).status, 400, 'a malformed path is a client error');
  t.equal((await curl(`${lexa.restUrl}/containers/`, '-X', 'DELETE')).status, 405);
  t.equal((await curl(`${lexa.restUrl}/nope`)).status, 404);

  // Still alive, still right.
  const after = await ask(`${NAME}.lexa`, 'A');
  t.same(after.answer, [`${NAME}.lexa. 0 IN A ${v4}`], 'lexa still answers with the real address');
  t.equal((await dig(lexa.dnsPort, ['+tcp'])(`${NAME}.lexa`, 'A')).status, 'NOERROR', 'TCP still answers');
  t.equal((await curl(`${lexa.restUrl}/readyz`)).status, 200, 'REST still ready');
});
