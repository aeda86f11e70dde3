import { EventEmitter } from 'node:events';
import t from 'tap';
import { memoryLogger } from '../../src/log/index.js';
import { guardFirstRequest, REFUSAL_LOG_INTERVAL_MS, RefusalLog } from '../../src/servers/fairness.js';
import { FakeClock } from '../helpers/fake-clock.js';

// The listeners' timers on a FakeClock, with stand-in sockets and sessions (the real-socket slow-loris checks
// per transport are in test/fair/listeners.test.ts): the first-request deadline, which only a whole request meets,
// and the bound on refusal log lines.

const FIRST_REQUEST_MS = 5_000;

/** A TLS socket or HTTP/2 session as guardFirstRequest sees it: knows whether it was destroyed. */
class Conn extends EventEmitter {
  destroyed = false;
  constructor(readonly alpnProtocol: string | false = 'http/1.1') {
    super();
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

t.test('first request: closed at the deadline however bytes trickle; a whole request or stream meets it', async (t) => {
  const clock = new FakeClock();
  const server = new EventEmitter();
  guardFirstRequest(server, FIRST_REQUEST_MS, clock);

  const loris = new Conn();
  const served = new Conn();
  server.emit('secureConnection', loris);
  server.emit('secureConnection', served);
  server.emit('request', { socket: served });
  await clock.advance(FIRST_REQUEST_MS - 1);
  t.notOk(loris.destroyed, 'not before the deadline');
  await clock.advance(1);
  t.ok(loris.destroyed, 'an HTTP/1.1 connection without a whole request is closed at the deadline');
  t.notOk(served.destroyed, 'one whose request arrived stays');

  const h2 = new Conn('h2');
  server.emit('secureConnection', h2); // an HTTP/2 connection: its session is guarded instead
  const idle = new Conn();
  const busy = new Conn();
  server.emit('session', idle);
  server.emit('session', busy);
  busy.emit('stream');
  await clock.advance(FIRST_REQUEST_MS);
  t.ok(idle.destroyed, 'an HTTP/2 session without a stream is closed at the deadline');
  t.notOk(busy.destroyed, 'one that opened a stream stays');
  t.notOk(h2.destroyed, 'the HTTP/2 socket itself is left to its session');
  t.equal(clock.pending, 0, 'every deadline fired or was cleared');
});

t.test('refusals: at most one log line per REFUSAL_LOG_INTERVAL_MS, carrying the count since the last', async (t) => {
  const clock = new FakeClock();
  const log = memoryLogger();
  const refusals = new RefusalLog(log, 'test', clock);
  for (let i = 0; i < 5; i++) refusals.note('source-limit', '192.0.2.1');
  t.equal(log.lines.length, 1, 'the first refusal is logged, the next four are only counted');
  await clock.advance(REFUSAL_LOG_INTERVAL_MS - 1);
  refusals.note('source-limit', '192.0.2.1');
  t.equal(log.lines.length, 1, 'still within the interval');
  await clock.advance(1);
  refusals.note('listener-full', '192.0.2.2');
  t.equal(log.lines.length, 2, 'a line again once the interval has passed');
  t.equal(log.lines[1]?.refusedSinceLastLine, 6, 'with every refusal since the last line');
});
