import { Buffer } from 'node:buffer';
import net from 'node:net';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { frameMessage, serveStream } from '../../src/servers/dns/index.js';
import { MESSAGE_LIMIT } from '../../src/dns/index.js';
import { waitFor } from '../helpers/lxd-cli.js';
import { query, STREAM_LIMITS, stubHandler } from '../helpers/transport-stub.js';

// PER-QUERY BACKPRESSURE on stream transports (plain TCP and DoT share serveStream), with the STUB handler
// (transport-stub.ts: big.test is 300 A records, ~7 KB): a client pipelines many queries in one write and never
// reads. lexa must stop answering once its unread replies pass the buffer bound, not answer the whole read first.

const QUERIES = 2_000;
const BOUND = 16 * 1024;

t.test('a client that pipelines many queries and never reads keeps lexa\'s buffered replies bounded; reading resumes them all', async (t) => {
  const stub = stubHandler();
  const replySize = frameMessage(stub.handle(query(0, 'big.test'), MESSAGE_LIMIT)!).length;
  stub.calls.length = 0;
  let served: net.Socket | undefined;
  const server = net.createServer((socket) => {
    served = socket;
    serveStream(socket, stub.handle, { ...STREAM_LIMITS, maxBufferedBytes: BOUND }, memoryLogger(), 'test');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  client.pause(); // never reads, for now
  t.teardown(() => client.destroy());
  const burst = Buffer.concat(Array.from({ length: QUERIES }, (_, i) => frameMessage(query(i, 'big.test'))));
  t.ok(burst.length < 64 * 1024, `all ${QUERIES} queries (${burst.length} bytes) fit one 64 KiB read`);
  client.write(burst);

  // Settled: the server stopped answering and stopped reading (the kernel's socket buffers are full).
  let last = -1;
  await waitFor(() => {
    const settled = served?.isPaused() === true && stub.calls.length === last;
    last = stub.calls.length;
    return settled;
  }, { what: 'the server to stop answering', intervalMs: 200 });
  const buffered = served!.writableLength;
  t.ok(stub.calls.length < QUERIES, `${stub.calls.length} of ${QUERIES} queries answered while the client reads nothing`);
  t.ok(buffered <= BOUND + replySize, `lexa holds ${buffered} bytes of unread replies (bound ${BOUND} + one ${replySize}-byte reply)`);

  // The client reads again: every query is answered, in order.
  let got = Buffer.alloc(0);
  client.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  client.resume();
  await waitFor(() => got.length >= QUERIES * replySize, { what: 'every reply', timeoutMs: 20_000 });
  t.equal(got.length, QUERIES * replySize, 'every reply arrived once');
  t.same(stub.calls.map((c) => c.id), Array.from({ length: QUERIES }, (_, i) => i), 'each query answered once, in order');
});
