import { Buffer } from 'node:buffer';
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Observable, Subscription } from 'rxjs';
import type { Logger } from '../log/index.js';
import { realClock, type Clock } from '../time/clock.js';
import type { View } from '../streams/index.js';
import type { ZoneSerials } from './serial.js';
import { emitName } from '../dns/records.js';
import { checkResponse, signMessage, type TsigKey } from './tsig.js';

/**
 * NOTIFY (RFC 1996) to the secondaries: on every serial change of a zone, a NOTIFY for it goes to each target
 * over UDP, and is sent again until the target acknowledges it (a response with the same ID and opcode) or the
 * attempts run out. A newer serial of the same zone replaces a pending one. With a key, NOTIFY is signed (TSIG)
 * and an acknowledgement counts only when signed by it.
 */

/**
 * Retry schedule. RFC 1996 §3.6 suggests 60 s between tries; lexa's secondaries sit on the same network and the
 * point is that they follow within about a second, so the first retry comes after 1 s and the delay doubles.
 */
export const NOTIFY_FIRST_RETRY_MS = 1_000;
/** Five tries in all (§3.6's count): 1 + 2 + 4 + 8 s, then give up until the next change (the secondary's own
 * SOA refresh still catches up). */
export const NOTIFY_ATTEMPTS = 5;

export interface NotifyTarget {
  readonly host: string;
  readonly port: number;
}

export class Notifier {
  #targets: readonly NotifyTarget[];
  #key: TsigKey | null;
  readonly #log: Logger;
  readonly #sockets = new Map<'udp4' | 'udp6', dgram.Socket>();
  /** Pending NOTIFYs by `zone|host|port`. */
  readonly #pending = new Map<string, Pending>();
  #closed = false;
  readonly #clock: Clock;

  /** `clock` times the retries (and TSIG's time signed); tests pass a fake one to drive the schedule. */
  constructor(targets: readonly NotifyTarget[], key: TsigKey | null, log: Logger, clock: Clock = realClock) {
    this.#targets = targets;
    this.#key = key;
    this.#log = log;
    this.#clock = clock;
  }

  /**
   * Targets and key for every NOTIFY from now on (SIGHUP). NOTIFYs still being retried are dropped: their key or
   * target may be the old one, and the next serial change tells the new targets with the new key.
   */
  configure(targets: readonly NotifyTarget[], key: TsigKey | null): void {
    this.#targets = targets;
    this.#key = key;
    for (const p of this.#pending.values()) p.cancel();
    this.#pending.clear();
  }

  /** Tells every target that `zone` is now at `serial`. */
  notify(zone: string, serial: number): void {
    if (this.#closed) return;
    for (const target of this.#targets) {
      const id = `${zone}|${target.host}|${target.port}`;
      this.#pending.get(id)?.cancel();
      const pending = new Pending(zone, serial, target, this.#key, this.#socket(target), this.#log, this.#clock, () => {
        if (this.#pending.get(id) === pending) this.#pending.delete(id);
      });
      this.#pending.set(id, pending);
      pending.send();
    }
  }

  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) p.cancel();
    this.#pending.clear();
    for (const s of this.#sockets.values()) s.close();
    this.#sockets.clear();
  }

  #socket(target: NotifyTarget): dgram.Socket {
    const type = isIPv6(target.host) ? 'udp6' : 'udp4';
    let socket = this.#sockets.get(type);
    if (socket === undefined) {
      socket = dgram.createSocket(type);
      socket.on('error', (err) => this.#log.warn('dns/notify: socket error', { error: err.message }));
      socket.on('message', (msg) => {
        if (msg.length < 12) return;
        for (const p of this.#pending.values()) if (p.answeredBy(msg)) return;
      });
      socket.unref();
      this.#sockets.set(type, socket);
    }
    return socket;
  }
}

class Pending {
  readonly #id = randomInt(0, 0x10000);
  #attempt = 0;
  #timer: unknown;
  #mac: Buffer | undefined;
  #done = false;

  constructor(
    readonly zone: string,
    readonly serial: number,
    readonly target: NotifyTarget,
    readonly key: TsigKey | null,
    readonly socket: dgram.Socket,
    readonly log: Logger,
    readonly clock: Clock,
    readonly onDone: () => void,
  ) {}

  send(): void {
    if (this.#done) return;
    if (this.#attempt >= NOTIFY_ATTEMPTS) {
      this.log.warn('dns/notify: no acknowledgement, giving up', { zone: this.zone, serial: this.serial, target: `${this.target.host}:${this.target.port}` });
      this.cancel();
      return;
    }
    this.#attempt++;
    let msg = notifyMessage(this.#id, this.zone);
    if (this.key !== null) {
      const signed = signMessage(msg, this.key, { timeSigned: Math.floor(this.clock.now() / 1000) });
      msg = signed.message;
      this.#mac = signed.mac;
    }
    this.socket.send(msg, this.target.port, this.target.host, (err) => {
      if (err) this.log.debug('dns/notify: send failed', { target: this.target.host, error: err.message });
    });
    this.#timer = this.clock.setTimeout(() => this.send(), NOTIFY_FIRST_RETRY_MS * 2 ** (this.#attempt - 1));
    this.clock.unref(this.#timer);
  }

  /** Whether `msg` acknowledges this NOTIFY (and so ends it). */
  answeredBy(msg: Buffer): boolean {
    if (this.#done || msg.readUInt16BE(0) !== this.#id) return false;
    const flags = msg.readUInt16BE(2);
    if (!(flags & 0x8000) || ((flags >> 11) & 0xf) !== OPCODE_NOTIFY) return false;
    if (this.key !== null && (this.#mac === undefined || !checkResponse(msg, this.key, this.#mac))) return false;
    const rcode = flags & 0xf;
    if (rcode !== 0) this.log.warn('dns/notify: secondary answered with an error', { zone: this.zone, target: this.target.host, rcode });
    else this.log.debug('dns/notify: acknowledged', { zone: this.zone, serial: this.serial, target: this.target.host, attempt: this.#attempt });
    this.cancel();
    return true;
  }

  cancel(): void {
    this.#done = true;
    this.clock.clearTimeout(this.#timer);
    this.onDone();
  }
}

const OPCODE_NOTIFY = 4;

/** NOTIFY for `zone`: opcode 4, AA, one question `<zone> SOA IN` (RFC 1996 §3.7). */
export function notifyMessage(id: number, zone: string): Buffer {
  const nameLen = emitName(zone, 0, null);
  const out = Buffer.alloc(12 + nameLen + 4);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE((OPCODE_NOTIFY << 11) | 0x0400, 2);
  out.writeUInt16BE(1, 4);
  emitName(zone, 12, out);
  out.writeUInt16BE(6, 12 + nameLen);
  out.writeUInt16BE(1, 12 + nameLen + 2);
  return out;
}

/**
 * After a change settles, wait at least this long before numbering the zones again: it coalesces a burst of
 * events (a launch is several snapshots within ~2 s: created, started, IPv4, IPv6) into few passes while keeping
 * NOTIFY well within a second of the change.
 */
export const ZONE_SETTLE_MS = 100;
/**
 * ... and at least this many times as long as the last pass took, so numbering (O(N)) uses at most a third of a
 * core even while LXD emits events without pause (a pass: ~30 ms for 1,000 instances here, ~0.5 s for 10,000).
 */
export const ZONE_PASS_SPACING = 2;

/**
 * Watches the snapshots: a while after each change (see ZONE_SETTLE_MS) numbers every zone of the current
 * snapshot (serial.ts) and NOTIFYs the targets of each zone whose serial moved, including the first (a restarted
 * lexa tells its secondaries where it is). Returns a stop function.
 */
export function watchZones(
  snapshots: Observable<View>,
  current: () => View,
  zones: (s: View) => readonly string[],
  serials: ZoneSerials,
  notifier: Notifier,
  log: Logger,
): () => void {
  const last = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let delay = ZONE_SETTLE_MS;
  const pass = (): void => {
    timer = undefined;
    const s = current();
    if (!s.synced) return;
    const started = performance.now();
    try {
      for (const zone of zones(s)) {
        const { serial } = serials.refresh(zone, s);
        if (last.get(zone) === serial) continue;
        last.set(zone, serial);
        notifier.notify(zone, serial);
      }
    } catch (err) {
      log.error('dns: numbering the zones failed', { error: err instanceof Error ? err.message : String(err) });
    }
    delay = Math.max(ZONE_SETTLE_MS, ZONE_PASS_SPACING * (performance.now() - started));
  };
  const subscription: Subscription = snapshots.subscribe(() => {
    timer ??= setTimeout(pass, delay);
  });
  return () => {
    subscription.unsubscribe();
    clearTimeout(timer);
  };
}
