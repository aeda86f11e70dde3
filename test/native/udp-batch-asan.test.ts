import { join } from 'node:path';
import t from 'tap';
import { runUnderAsan } from '../helpers/asan.js';

// native/udp_batch.c (batched UDP for DNS, and the QUIC socket's receive batches and send queue) built once with
// AddressSanitizer and driven through every entry point by test/native/asan-driver.mjs: bad open() arguments,
// a burst of 203 datagrams into 8-slot batches (empty, larger than a slot, replies longer than a slot or negative),
// the send queue with bad ports, lengths, counts, an IPv6 destination on an IPv4 socket, a double close, a send after
// close, and the wrappers collected after close. ASan turns any out-of-bounds access, use after free or double free
// into a report on stderr and a non-zero exit.

t.test('udp_batch.c under AddressSanitizer: no report, and every entry point reached', async (t) => {
  const { counts } = await runUnderAsan(t, 'udp_batch', join(import.meta.dirname, 'asan-driver.mjs'), ['--expose-gc'], 60_000);
  t.equal(counts['refused'], 10, 'bad open() and send() arguments are refused with an exception (a count of 2^32 reads as 0)');
  t.equal(counts['replies'], 81, 'the in-range replies of the burst were written');
  t.equal(counts['emptyOrOversize'], 2, 'the empty datagram and the one larger than a slot reach JavaScript with no length');
  t.equal(counts['queued'], 4, 'the send queue took exactly its 4 valid datagrams');
  t.equal(counts['received'], 84, 'and they arrived, as did every reply');
  t.equal(counts['afterClose'], 0, 'a send on a closed socket sends nothing');
});
