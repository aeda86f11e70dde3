import { Buffer } from 'node:buffer';
import tls from 'node:tls';

/**
 * A tiny HTTP/2 frame writer and reader (RFC 9113 §4, §6) for tests that must send what no well-behaved client
 * sends: streams beyond the limit, resets in bulk, endless CONTINUATIONs, PING floods. Header blocks are HPACK
 * literals without indexing and without Huffman coding (RFC 7541 §6.2.2), which every decoder must take; replies
 * are read as frames only (types, flags, stream IDs, payloads), their header blocks left undecoded.
 */

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;
export const SETTING = { MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4 } as const;
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

/** One frame: the 9-byte header and `payload`. */
export function frame(type: number, flags: number, stream: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an `bits`-bit prefix, the first byte's other bits `high` (RFC 7541 §5.1). */
function hpackInt(value: number, bits: number, high = 0): number[] {
  const max = (1 << bits) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  for (value -= max; value >= 128; value >>= 7) out.push((value & 127) | 128);
  out.push(value);
  return out;
}

/** A header block of literals without indexing (new names), no Huffman coding. */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    const n = Buffer.from(name);
    const v = Buffer.from(value);
    parts.push(Buffer.from([0x00, ...hpackInt(n.length, 7)]), n, Buffer.from(hpackInt(v.length, 7)), v);
  }
  return Buffer.concat(parts);
}

export function settings(entries: ReadonlyArray<readonly [number, number]> = []): Buffer {
  const payload = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

export function rstStream(stream: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, payload);
}

export function windowUpdate(stream: number, increment: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(increment);
  return frame(FRAME.WINDOW_UPDATE, 0, stream, payload);
}

/** A request's HEADERS frame (END_HEADERS; END_STREAM when `end`). */
export function request(stream: number, headers: ReadonlyArray<readonly [string, string]>, end: boolean): Buffer {
  return frame(FRAME.HEADERS, FLAG.END_HEADERS | (end ? FLAG.END_STREAM : 0), stream, headerBlock(headers));
}

/** The pseudo-headers of a DoH request on `path` (`:authority` localhost). */
export function doh(method: 'GET' | 'POST', path: string): Array<[string, string]> {
  const h: Array<[string, string]> = [
    [':method', method],
    [':scheme', 'https'],
    [':authority', 'localhost'],
    [':path', path],
  ];
  if (method === 'POST') h.push(['content-type', 'application/dns-message']);
  return h;
}

/** A client connection over TLS (ALPN h2) that has sent the preface and `firstSettings`, collecting every frame. */
export class RawH2 {
  readonly frames: Frame[] = [];
  readonly socket: tls.TLSSocket;
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  #pending = Buffer.alloc(0);
  #waiters: Array<() => void> = [];

  constructor(port: number, ca: string, firstSettings: Buffer = settings()) {
    this.socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] });
    this.socket.on('error', () => {});
    this.ready = new Promise((resolve) => this.socket.once('secureConnect', () => resolve()));
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    this.socket.write(Buffer.concat([PREFACE, firstSettings]));
    this.socket.on('data', (chunk: Buffer) => {
      this.#pending = Buffer.concat([this.#pending, chunk]);
      while (this.#pending.length >= 9) {
        const length = this.#pending.readUIntBE(0, 3);
        if (this.#pending.length < 9 + length) break;
        const f = this.#pending;
        this.frames.push({ type: f[3]!, flags: f[4]!, stream: f.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(f.subarray(9, 9 + length)) });
        this.#pending = f.subarray(9 + length);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.socket.once('close', () => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  write(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  /** Resolves once `predicate` holds over the frames received (true), or after `ms` or the close (false). */
  async until(predicate: (frames: readonly Frame[]) => boolean, ms = 5000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!predicate(this.frames)) {
      if (this.socket.destroyed || Date.now() > deadline) return predicate(this.frames);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** The DATA payload received on `stream`, once it ended (END_STREAM), else undefined. */
  body(stream: number): Buffer | undefined {
    const data = this.frames.filter((f) => f.stream === stream && f.type === FRAME.DATA);
    if (!data.some((f) => f.flags & FLAG.END_STREAM)) return undefined;
    return Buffer.concat(data.map((f) => f.payload));
  }

  /** The error code of the first RST_STREAM on `stream`, or undefined. */
  reset(stream: number): number | undefined {
    return this.frames.find((f) => f.stream === stream && f.type === FRAME.RST_STREAM)?.payload.readUInt32BE(0);
  }

  /** The first GOAWAY's error code, or undefined. */
  goaway(): number | undefined {
    return this.frames.find((f) => f.type === FRAME.GOAWAY)?.payload.readUInt32BE(4);
  }

  close(): void {
    this.socket.destroy();
  }
}
