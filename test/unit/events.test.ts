import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import t from 'tap';
import { EventStreams, HEARTBEAT_MS, STALLED_MS } from '../../src/servers/rest/events.js';
import { Documents } from '../../src/servers/rest/documents.js';
import type { Snapshot } from '../../src/streams/index.js';
import { FakeClock } from '../helpers/fake-clock.js';

// GET /events' timers, driven by a FakeClock on a stand-in response (the socket is not the point here; the
// REST tests on real sockets cover the stream's bytes): the heartbeat that keeps proxies from closing an idle
// stream, the cut of a client that stopped reading, and no timer left once the last stream is gone.

const HEARTBEAT = ': heartbeat\n\n';

/** The parts of an express Response that EventStreams uses, recording what is written. */
class FakeResponse extends EventEmitter {
  readonly written: string[] = [];
  writableNeedDrain = false;
  destroyed = false;
  writeHead(): this {
    return this;
  }
  write(chunk: string): boolean {
    this.written.push(chunk);
    return true;
  }
  end(): void {
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

/** Streams over a document that changes when `change()` is called (each change a new snapshot version). */
function setup() {
  const clock = new FakeClock();
  let version = 1;
  const docs = new Documents({
    render: () => JSON.stringify({ version }),
    snapshot: () => ({ version }) as unknown as Snapshot,
    suffix: () => 'lexa',
  });
  const streams = new EventStreams(docs, 'containers', clock);
  const open = () => {
    const res = new FakeResponse();
    streams.serve({ get: () => undefined } as unknown as Request, res as unknown as Response);
    return res;
  };
  const change = () => {
    version++;
    docs.changed();
  };
  return { clock, streams, open, change };
}

t.test('an idle stream gets a heartbeat every HEARTBEAT_MS, and none before', async (t) => {
  const { clock, streams, open } = setup();
  const res = open();
  t.match(res.written.at(-1), /^id: \d+\nevent: snapshot\n/, 'the document at once');
  await clock.advance(HEARTBEAT_MS - 1);
  t.notOk(res.written.includes(HEARTBEAT), 'no heartbeat before its time');
  await clock.advance(1);
  t.equal(res.written.filter((w) => w === HEARTBEAT).length, 1, 'one heartbeat at HEARTBEAT_MS');
  await clock.advance(HEARTBEAT_MS);
  t.equal(res.written.filter((w) => w === HEARTBEAT).length, 2, 'and one more each period');
  res.end();
  t.equal(streams.size, 0);
  t.equal(clock.pending, 0, 'the last stream gone, no timer is left');
});

t.test('a client that stops reading is cut after STALLED_MS; one that drains gets the latest document and stays', async (t) => {
  const { clock, streams, open, change } = setup();
  const stuck = open();
  const slow = open();
  stuck.writableNeedDrain = true;
  slow.writableNeedDrain = true;
  change(); // both are behind from now on
  await clock.advance(STALLED_MS / 2);
  slow.writableNeedDrain = false;
  slow.emit('drain');
  t.match(slow.written.at(-1), /"version":2/, 'the drained client gets the latest document');
  await clock.advance(STALLED_MS / 2);
  t.notOk(stuck.destroyed, 'not cut at STALLED_MS exactly');
  await clock.advance(HEARTBEAT_MS);
  t.ok(stuck.destroyed, 'cut at the first heartbeat after STALLED_MS without draining');
  t.notOk(slow.destroyed, 'the client that drained stays');
  t.equal(streams.size, 1);
  streams.close();
  t.equal(clock.pending, 0, 'closed: no timer is left');
});
