import type { Request, Response } from 'express';
import { realClock, type Clock } from '../../time/clock.js';
import type { Doc, Documents } from './documents.js';

/**
 * `GET /events`: server-sent events. On connect and on every change, one `snapshot` event whose data is the whole
 * `/containers/` document and whose `id:` is its index, so a client that reconnects with `Last-Event-ID` gets no
 * event until something changed. A comment line every HEARTBEAT_MS keeps proxies from closing an idle stream.
 *
 * A slow client costs at most one pending document: while its socket is not draining, changes only mark it
 * behind, and the latest document is written when it drains (intermediate ones are skipped: each event is the
 * full state). A client that does not drain for STALLED_MS is disconnected.
 */

export const HEARTBEAT_MS = 15_000;
/** A watcher that has read nothing for this long is gone or stuck; its connection slot is worth more. */
export const STALLED_MS = 60_000;
/** What browsers wait before reconnecting a dropped stream (the SSE `retry:` field). */
const RETRY_MS = 1_000;

interface Stream {
  readonly res: Response;
  /** Since when its socket has not drained, or 0. */
  blockedSince: number;
  cancel: () => void;
}

export class EventStreams {
  readonly #docs: Documents;
  readonly #key: string;
  readonly #streams = new Set<Stream>();
  readonly #clock: Clock;
  #heartbeat: unknown;
  #closed = false;

  /** Streams document `key` of `docs`, heartbeats and stall checks on `clock`. */
  constructor(docs: Documents, key: string, clock: Clock = realClock) {
    this.#docs = docs;
    this.#key = key;
    this.#clock = clock;
  }

  serve(req: Request, res: Response): void {
    const last = req.get('last-event-id');
    const doc = this.#docs.get(this.#key);
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
      'x-lexa-index': String(doc.index),
    });
    res.write(`retry: ${RETRY_MS}\n\n`);
    if (this.#closed) {
      res.end();
      return;
    }
    const stream: Stream = { res, blockedSince: 0, cancel: () => undefined };
    this.#streams.add(stream);
    const send = (d: Doc) => {
      if (res.writableNeedDrain) {
        // Behind: the drain handler sends the latest document then.
        if (stream.blockedSince === 0) stream.blockedSince = this.#clock.now();
        res.once('drain', () => {
          stream.blockedSince = 0;
          if (this.#streams.has(stream)) send(this.#docs.get(this.#key));
        });
        return;
      }
      res.write(`id: ${d.index}\nevent: snapshot\ndata: ${d.body ?? 'null'}\n\n`);
      stream.cancel = this.#docs.watch(this.#key, d.index, onChange);
    };
    const onChange = (next: Doc) => {
      if (!this.#closed) send(next);
    };
    res.on('close', () => {
      stream.cancel();
      this.#streams.delete(stream);
      this.#heartbeats();
    });
    if (last !== undefined && last === String(doc.index)) stream.cancel = this.#docs.watch(this.#key, doc.index, onChange);
    else send(doc);
    this.#heartbeats();
  }

  /** Ends every stream (shutdown); later clients get the first event and an end. */
  close(): void {
    this.#closed = true;
    for (const s of this.#streams) s.res.end();
    this.#streams.clear();
    this.#heartbeats();
  }

  get size(): number {
    return this.#streams.size;
  }

  /** One timer for all streams, running only while there are any. */
  #heartbeats(): void {
    if (this.#streams.size === 0) {
      this.#clock.clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
      return;
    }
    if (this.#heartbeat !== undefined) return;
    this.#heartbeat = this.#clock.setInterval(() => {
      const now = this.#clock.now();
      for (const s of this.#streams) {
        if (s.blockedSince !== 0 && now - s.blockedSince > STALLED_MS) s.res.destroy();
        else if (!s.res.writableNeedDrain) s.res.write(': heartbeat\n\n');
      }
    }, HEARTBEAT_MS);
    this.#clock.unref(this.#heartbeat);
  }
}
