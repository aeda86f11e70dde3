import { isDeepStrictEqual } from 'node:util';
import t, { type Test } from 'tap';
import type { DnsClient, DnsReply } from '../helpers/dig.js';
import { cases, runTable, type Fixture } from '../helpers/nameforms.js';

// The checker of the name-form table (test/helpers/nameforms.ts), which the peer tests run through real clients
// against the real LXD. Here it is given scripted clients (no LXD, no sockets) to show that it compares the
// whole reply of every row: a reply that is right passes, and a reply wrong in any one section fails the row.

const FIXTURE: Fixture = {
  v4: { 'nf-web-1': '10.0.0.1', 'nf-web-2': '10.0.0.2', 'nf-db-1': '10.0.0.3' },
  v6: { 'nf-web-1': 'fd00::1', 'nf-web-2': 'fd00::2', 'nf-db-1': 'fd00::3' },
  server: 'testbed',
  serverV4: '127.0.0.1',
};

/** A client that answers every row exactly as the table expects, after `tamper` has had its way. */
function scripted(tamper: (reply: Mutable<DnsReply>, status: string) => void = () => {}): DnsClient {
  return async (name, type) => {
    const c = cases(FIXTURE).find((x) => x.name === name && x.type === type)!;
    const aa = c.aa ?? c.status !== 'REFUSED';
    const reply: Mutable<DnsReply> = {
      status: c.status,
      flags: aa ? ['qr', 'aa'] : ['qr'],
      answer: [...c.answer].sort(),
      authority: [...(c.authority ?? [])].sort(),
      additional: [...(c.additional ?? [])].sort(),
      raw: '',
    };
    tamper(reply, c.status);
    return reply;
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Runs the table against `client` with a Test that only records the messages of failed assertions. */
async function failures(client: DnsClient): Promise<string[]> {
  const failed: string[] = [];
  const check = (ok: boolean, msg: string) => (ok || failed.push(msg), ok);
  const recorder = {
    equal: (a: unknown, b: unknown, msg: string) => check(a === b, msg),
    same: (a: unknown, b: unknown, msg: string) => check(isDeepStrictEqual(a, b), msg),
  } as unknown as Test;
  await runTable(recorder, FIXTURE, client);
  return failed;
}

const rows = cases(FIXTURE);
const count = (status: string) => rows.filter((c) => c.status === status).length;
const STRAY = 'stray.lexa. 0 IN A 10.9.9.9';

t.test('every row states its answer section, empty for NXDOMAIN and REFUSED', async (t) => {
  for (const c of rows) t.ok(Array.isArray(c.answer), `${c.name} ${c.type}`);
  t.ok(count('NXDOMAIN') > 0 && count('REFUSED') > 0, 'the table has NXDOMAIN and REFUSED rows');
  for (const c of rows.filter((x) => x.status !== 'NOERROR')) t.same(c.answer, [], `${c.name} ${c.type} ${c.status}`);
});

t.test('the exact reply passes every row', async (t) => {
  t.same(await failures(scripted()), []);
});

t.test('an answer record on an NXDOMAIN row fails that row', async (t) => {
  const failed = await failures(scripted((r, status) => status === 'NXDOMAIN' && (r.answer = [STRAY])));
  t.equal(failed.length, count('NXDOMAIN'));
  t.ok(failed.every((m) => m.endsWith(': answer')), failed.join('\n'));
});

t.test('an answer record on a REFUSED or NODATA row fails that row', async (t) => {
  const nodata = rows.filter((c) => c.status === 'NOERROR' && c.answer.length === 0).length;
  t.ok(nodata > 0, 'the table has NODATA rows');
  const failed = await failures(scripted((r) => r.answer.length === 0 && (r.answer = [STRAY])));
  t.equal(failed.length, count('REFUSED') + nodata + count('NXDOMAIN'));
});

t.test('a missing or extra record in any section fails, and so does a wrong rcode', async (t) => {
  t.equal((await failures(scripted((r) => r.answer.length > 0 && (r.answer = r.answer.slice(1))))).length, rows.filter((c) => c.answer.length > 0).length);
  t.equal((await failures(scripted((r) => (r.additional = [...r.additional, STRAY])))).length, rows.length);
  t.equal((await failures(scripted((r) => (r.authority = [])))).length, rows.filter((c) => c.authority?.length).length);
  t.equal((await failures(scripted((r, s) => s === 'NXDOMAIN' && (r.status = 'NOERROR')))).length, count('NXDOMAIN'));
});
