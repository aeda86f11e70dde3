import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import t from 'tap';
import { answerBlocking, blockingParams, DEFAULT_WAIT_MS, JITTER_FRACTION, MAX_WAIT_MS } from '../../src/servers/rest/blocking.js';
import { Documents, type Doc } from '../../src/servers/rest/documents.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { snapshotOf } from '../helpers/model.js';

// The blocking-query wait cap (a trust check: a client cannot hold a connection slot longer than MAX_WAIT_MS,
// whatever `?wait=` it asks for). Time is driven with a FakeClock, never slept.

t.test('wait: asked-for values up to the cap are kept; longer ones are cut to the cap, jitter included', (t) => {
  const waitOf = (wait: string | undefined, random = 0) => {
    const p = blockingParams({ index: '7', ...(wait === undefined ? {} : { wait }) }, () => random);
    return p !== undefined && 'waitMs' in p ? p.waitMs : p;
  };
  t.equal(waitOf(undefined), DEFAULT_WAIT_MS, 'no wait: the default');
  t.equal(waitOf('30s'), 30_000);
  t.equal(waitOf('10m'), MAX_WAIT_MS, 'the cap itself');
  t.equal(waitOf('10m1s'), MAX_WAIT_MS, 'a second over');
  t.equal(waitOf('1h'), MAX_WAIT_MS, 'an hour');
  t.equal(waitOf('99999999'), MAX_WAIT_MS, 'a number of seconds');
  t.ok((waitOf('1h', 0.999) as number) <= MAX_WAIT_MS * (1 + JITTER_FRACTION), 'the jitter stretches the cap by at most its fraction');
  t.end();
});

t.test('a blocking query asking to wait an hour is answered at the cap, with the unchanged document', async (t) => {
  const clock = new FakeClock();
  const docs = new Documents({ render: () => '{"hosts":[]}', snapshot: () => snapshotOf([]), suffix: () => 'lexa' });
  const index = docs.get('all').index;
  const sent: Doc[] = [];
  const res = Object.assign(new EventEmitter(), { writableEnded: false, destroyed: false }) as unknown as Response;
  const req = { query: { index: String(index), wait: '1h' } } as unknown as Request;
  answerBlocking(req, res, docs, 'all', (_res, doc) => void sent.push(doc), () => 0, clock);
  t.equal(sent.length, 0, 'waiting: the index has not moved');
  await clock.advance(MAX_WAIT_MS - 1);
  t.equal(sent.length, 0, 'still waiting a millisecond before the cap');
  await clock.advance(1);
  t.equal(sent.length, 1, 'answered at the cap, not after the hour asked for');
  t.equal(sent[0]?.index, index, 'with the document as it is');
});

t.test('a stale index (or 0) is answered at once with the current document, not an error', (t) => {
  // Regression: `finish` referred to `leave` before it was declared, so an index that had already moved threw
  // (a 500 for /services/<name>?index=<old>, the very request a watcher makes after a change it missed).
  const clock = new FakeClock();
  const docs = new Documents({ render: () => '{"hosts":[]}', snapshot: () => snapshotOf([]), suffix: () => 'lexa' });
  const index = docs.get('all').index;
  for (const stale of ['0', String(index - 1), String(index + 1)]) {
    const sent: Doc[] = [];
    const res = Object.assign(new EventEmitter(), { writableEnded: false, destroyed: false }) as unknown as Response;
    const req = { query: { index: stale, wait: '1m' } } as unknown as Request;
    answerBlocking(req, res, docs, 'all', (_res, doc) => void sent.push(doc), () => 0, clock);
    t.same(sent.map((d) => d.index), [index], `index=${stale === String(index - 1) ? 'previous' : stale === '0' ? '0' : 'next'}: answered at once`);
    t.equal(clock.pending, 0, 'no timer left behind');
  }
  t.end();
});
