import { Buffer } from 'node:buffer';
import { EV_CLOSED, EV_COMPLETE, EV_HEAD, EV_TOO_LARGE, EVENT_SLOTS, loadH2Addon, STATE_CLOSE, STATE_SLOTS, type H2Addon } from '../../../src/servers/doh/native-h2.js';
import { doh, ERROR, FLAG, FRAME, frame, headerBlock, PREFACE, request, rstStream, settings, windowUpdate } from '../../helpers/h2-frames.js';
import { check, type Target } from '../harness.js';
import { BYTE_MUTATORS, mutate } from '../mutate.js';
import type { Rng } from '../random.js';

/**
 * The native HTTP/2 session (native/h2_session.c through its JavaScript API, in-process): a client preface, then
 * requests (GET, POST with bodies in pieces, trailers, resets, bodies left open or over 64 KiB) among control
 * frames, frames drawn at random and byte-mutated ones, fed in random splits, every request answered as the
 * server would (sometimes not at all, twice, or after its stream is gone; resets asked for at random). Oracle:
 * feed returns events of whole EVENT_SLOTS records with known kinds, or a negative nghttp2 code; flush returns
 * whole frames; nothing throws. test/native/h2-session-asan.test.ts runs the same cases against the addon built
 * with AddressSanitizer.
 */

/** web.test A, ID 0xabcd. */
const QUERY = Buffer.from('abcd010000010000000000000377656204746573740000010001', 'hex');
const KINDS = new Set([EV_HEAD, EV_COMPLETE, EV_TOO_LARGE, EV_CLOSED]);
const REPLY_HEADERS = ['content-type', 'application/dns-message', 'cache-control', 'max-age=0', 'content-length', '12'];

/** One frame a client might send on `stream`, well-formed or not. */
function someFrame(rng: Rng, stream: number): Buffer {
  // Most frames well-formed, so that a case gets past its first errors to the requests (most errors end a session).
  switch (rng.chance(0.05) ? 10 + rng.int(2) : rng.int(10)) {
    case 0:
      return request(stream, doh('GET', `/dns-query?dns=${QUERY.toString('base64url')}`), true);
    case 1:
    case 2:
      return request(stream, doh('POST', '/dns-query'), rng.chance(0.2));
    case 3:
      return frame(FRAME.DATA, rng.chance(0.6) ? FLAG.END_STREAM : 0, stream, rng.chance(0.8) ? QUERY : rng.bytes(rng.int(20_000)));
    case 4:
      return frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, headerBlock([['x-trailer', 'v']]));
    case 5:
      return rstStream(stream, rng.pick(Object.values(ERROR)));
    case 6:
      return windowUpdate(rng.chance(0.5) ? 0 : stream, rng.int(0x80000000));
    case 7:
      return settings(Array.from({ length: rng.int(40) }, () => [rng.int(10), rng.int(0x100000000)] as const));
    case 8:
      return frame(FRAME.PING, rng.chance(0.2) ? FLAG.ACK : 0, 0, rng.bytes(rng.chance(0.9) ? 8 : rng.int(20)));
    case 9:
      return frame(FRAME.CONTINUATION, rng.chance(0.5) ? FLAG.END_HEADERS : 0, stream, headerBlock([['x-c', 'v'.repeat(rng.int(2000))]]));
    case 10:
      return frame(rng.int(256), rng.int(256), rng.chance(0.5) ? stream : rng.int(0x80000000), rng.bytes(rng.int(64)));
    default:
      return frame(FRAME.GOAWAY, 0, 0, rng.bytes(8));
  }
}

/** One request's frames on `stream`: a GET, or a POST whose body comes in pieces, ended, trailed, reset or left open. */
function someRequest(rng: Rng, stream: number): Buffer[] {
  if (rng.chance(0.3)) return [request(stream, doh('GET', `/dns-query?dns=${QUERY.toString('base64url')}`), true)];
  const out = [request(stream, doh('POST', '/dns-query'), false)];
  const body = rng.chance(0.9) ? QUERY : rng.bytes(rng.int(70_000));
  for (let at = 0; at < body.length; ) {
    const size = 1 + rng.int(Math.min(16_384, body.length - at));
    out.push(frame(FRAME.DATA, 0, stream, body.subarray(at, at + size)));
    at += size;
  }
  const end = rng.int(10);
  if (end < 6) out.push(frame(FRAME.DATA, FLAG.END_STREAM, stream));
  else if (end < 8) out.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, stream, headerBlock([['x-trailer', 'v']])));
  else if (end < 9) out.push(rstStream(stream, ERROR.CANCEL));
  return out;
}

/**
 * A case's bytes: the preface (usually intact), then requests interleaved with control frames and, rarely, frames
 * drawn at random (someFrame), some of it byte-mutated, cut into random-sized pieces.
 */
export function h2Input(rng: Rng): Buffer[] {
  const opening = Buffer.concat([PREFACE, settings()]);
  const frames: Buffer[] = [rng.chance(0.95) ? opening : mutate(rng, opening, [QUERY], BYTE_MUTATORS)];
  let stream = -1;
  for (let n = rng.int(30) + 1; n > 0; n--) {
    stream += 2;
    for (const f of someRequest(rng, stream)) frames.push(rng.chance(0.02) ? mutate(rng, f, frames, BYTE_MUTATORS) : f);
    if (rng.chance(0.1)) frames.push(frame(FRAME.PING, 0, 0, rng.bytes(8)));
    if (rng.chance(0.05)) frames.push(windowUpdate(0, 1 + rng.int(65_535)));
    if (rng.chance(0.05)) frames.push(someFrame(rng, rng.chance(0.8) ? stream : stream + 2));
  }
  const all = Buffer.concat(frames);
  const pieces: Buffer[] = [];
  for (let at = 0; at < all.length; ) {
    const size = rng.chance(0.5) ? all.length - at : 1 + rng.int(Math.min(all.length - at, 4096));
    pieces.push(all.subarray(at, at + size));
    at += size;
  }
  return pieces;
}

/** Checks `out` is whole frames. */
function checkFrames(out: Buffer | null): void {
  if (out === null) return;
  let at = 0;
  while (at + 9 <= out.length) at += 9 + out.readUIntBE(at, 3);
  check(at === out.length, `flush returned ${out.length} bytes that are not whole frames`);
}

/**
 * Runs one case against `addon`: feeds `pieces`, answers events (randomly), flushes after each piece. Returns the
 * count of events seen. Throws a Finding on a broken contract.
 */
export function runH2Case(addon: H2Addon, rng: Rng, pieces: readonly Buffer[]): number {
  const state = new Int32Array(STATE_SLOTS);
  const session = addon.open(1 + rng.int(100), state);
  let events = 0;
  try {
    checkFrames(addon.flush(session));
    for (const piece of pieces) {
      const got = addon.feed(session, piece);
      if (typeof got === 'number') {
        check(got < 0, `feed returned ${got}`);
        checkFrames(addon.flush(session));
        break;
      }
      check(got.length % EVENT_SLOTS === 0, `${got.length} event values`);
      for (let i = 0; i < got.length; i += EVENT_SLOTS) {
        events++;
        check(KINDS.has(got[i] as number), `event kind ${String(got[i])}`);
        const id = got[i + 1] as number;
        if (got[i] === EV_CLOSED || rng.chance(0.1)) continue;
        const status = rng.pick([200, 200, 413, 400, 100, 999]);
        const answer = () => addon.respond(session, rng.chance(0.95) ? id : rng.int(1000), status, REPLY_HEADERS, rng.chance(0.9) ? QUERY : null, rng.int(4));
        if (got[i] === EV_HEAD && rng.chance(0.3)) addon.informational(session, id);
        else answer();
        if (rng.chance(0.05)) answer();
        if (rng.chance(0.2)) addon.reset(session, rng.chance(0.9) ? id : rng.int(1000));
      }
      checkFrames(addon.flush(session));
      if (state[STATE_CLOSE] === 1) break;
      if (rng.chance(0.02)) {
        addon.goaway(session);
        checkFrames(addon.flush(session));
      }
    }
  } finally {
    addon.close(session);
  }
  return events;
}

export const h2NativeTarget: Target = {
  name: 'h2-native',
  weight: 4,
  covers: 'native/h2_session.c (nghttp2 sessions: frames, mutated frames, odd answers), in-process',
  async open(ctx) {
    const addon = loadH2Addon(undefined, {});
    if (addon instanceof Error) throw new Error(`h2-native: the addon is not available: ${addon.message}`);
    return {
      run(rng) {
        const pieces = h2Input(rng);
        ctx.note(Buffer.concat(pieces));
        runH2Case(addon, rng, pieces);
      },
      async alive() {
        const state = new Int32Array(STATE_SLOTS);
        const session = addon.open(100, state);
        addon.flush(session);
        const got = addon.feed(session, Buffer.concat([PREFACE, settings(), request(1, doh('GET', '/dns-query?dns=AAAA'), true)]));
        check(Array.isArray(got) && got[0] === EV_COMPLETE, 'a fresh session reports a GET');
        addon.close(session);
      },
      async close() {},
    };
  },
};
