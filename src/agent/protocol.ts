import type { AgentService, ServiceHealth, ServiceProto } from '../streams/model/model.js';
import { INTERFACE_NAME, MAX_TAGS, PORT, PRIORITY, SERVICE_LABEL, WEIGHT } from '../streams/model/service-rules.js';

/**
 * The agent protocol: what the lexa agent inside a container and the server's agent endpoint say to each other
 * over one TLS connection. Each message is a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
 *
 *   agent → server   {"type":"hello","version":2,"credential":"...","token":"..."}   first, exactly once
 *                    {"type":"state","seq":N,"services":[<service>...]}               the whole set, N rising
 *                    {"type":"ping"}                                                  keepalive
 *   server → agent   {"type":"welcome","instance":"<project>/<name>","graceMs":G}     hello accepted
 *                    {"type":"ack","seq":N,"refused":[{"name","reason"}...]}          state N applied; refused
 *                                                                                     names (not allowed) left out;
 *                                                                                     states the rate limit
 *                                                                                     coalesced get no ack of their own
 *                    {"type":"pong"}
 *                    {"type":"error","reason":"..."}                                  then the server closes
 *
 *   <service> = {"name","port","proto","tags","interface","priority","weight","health"}, the same fields and ranges
 *               as a `user.lexa.service.*` declaration, plus "health": "passing" | "critical".
 *
 * `credential` is the instance's own `user.lexa.agent.token` (the agent reads it from /dev/lxd/sock); `token` is the
 * optional shared `server.agent.token`. Version 1 agents had no credential: the version says why they are refused.
 *
 * Decoding is total: any byte string gives a message or a reason, never an exception. Unknown keys are refused
 * rather than ignored, so a confused peer is noticed at once.
 */

export const PROTOCOL_VERSION = 2;
/**
 * Largest message, either way. A state of MAX_SERVICES services with long tag lists stays well below it; anything
 * bigger is a broken or hostile peer, and the connection is closed before the bytes are buffered.
 */
export const MAX_MESSAGE_BYTES = 64 * 1024;
/** Services one agent may declare: a container offering more than this is not what an agent is for. */
export const MAX_SERVICES = 256;
/** Characters per token. */
export const MAX_TOKEN_CHARS = 1024;
/**
 * Characters of any peer-provided text that reach a log line or an error message: enough to recognise a service
 * name or a reason, not enough for a refused peer to fill the log with its own 64 KiB per attempt.
 */
export const MAX_LOGGED_CHARS = 200;

/** A service name the server left out of a state, and why. */
export interface Refusal {
  readonly name: string;
  readonly reason: string;
}

export type AgentMessage =
  | { readonly type: 'hello'; readonly version: number; readonly credential: string; readonly token?: string }
  | { readonly type: 'state'; readonly seq: number; readonly services: readonly AgentService[] }
  | { readonly type: 'ping' };

export type ServerMessage =
  | { readonly type: 'welcome'; readonly instance: string; readonly graceMs: number }
  | { readonly type: 'ack'; readonly seq: number; readonly refused?: readonly Refusal[] }
  | { readonly type: 'pong' }
  | { readonly type: 'error'; readonly reason: string };

export type Decoded<T> = { readonly ok: true; readonly message: T } | { readonly ok: false; readonly reason: string };

/**
 * One frame: length prefix and JSON body (a state's services without `source`, which the wire implies). Throws
 * only when the message is too large (a programming error).
 */
export function encodeFrame(message: AgentMessage | ServerMessage): Buffer {
  const wire = message.type === 'state' ? { ...message, services: message.services.map(serviceOnWire) } : message;
  const body = Buffer.from(JSON.stringify(wire), 'utf8');
  if (body.length > MAX_MESSAGE_BYTES) throw new RangeError(`message of ${body.length} bytes exceeds ${MAX_MESSAGE_BYTES}`);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/**
 * Splits a byte stream into message bodies. `push` returns the complete bodies so far, or a reason when a
 * length prefix announces more than MAX_MESSAGE_BYTES (the stream cannot be trusted past that point). At most one
 * incomplete message is buffered, so memory per connection is bounded by MAX_MESSAGE_BYTES.
 */
export class AgentFrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): { readonly bodies: Buffer[]; readonly error?: string } {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const bodies: Buffer[] = [];
    while (this.#buffer.length >= 4) {
      const length = this.#buffer.readUInt32BE(0);
      if (length > MAX_MESSAGE_BYTES) return { bodies, error: `message of ${length} bytes exceeds ${MAX_MESSAGE_BYTES}` };
      if (this.#buffer.length < 4 + length) break;
      bodies.push(this.#buffer.subarray(4, 4 + length));
      this.#buffer = this.#buffer.subarray(4 + length);
    }
    return { bodies };
  }

  /** Bytes held of an incomplete message. */
  get pending(): number {
    return this.#buffer.length;
  }
}

/** An agent's message (server side). */
export function decodeAgentMessage(body: Buffer): Decoded<AgentMessage> {
  const obj = parseObject(body);
  if (typeof obj === 'string') return fail(obj);
  switch (obj['type']) {
    case 'hello': {
      const { version, token, credential } = obj;
      // The version first: an older agent's hello is refused with the reason an operator can act on.
      if (version !== PROTOCOL_VERSION)
        return fail(`hello: unsupported version ${clip(JSON.stringify(version) ?? 'none')} (this server speaks ${PROTOCOL_VERSION}: upgrade the agent)`);
      const extra = unknownKeys(obj, ['type', 'version', 'credential', 'token']);
      if (extra) return fail(extra);
      if (!secret(credential)) return fail(`hello: credential (the instance's user.lexa.agent.token) must be a string of 1..${MAX_TOKEN_CHARS} characters`);
      if (token !== undefined && !secret(token)) return fail(`hello: token must be a string of 1..${MAX_TOKEN_CHARS} characters`);
      return { ok: true, message: token === undefined ? { type: 'hello', version, credential } : { type: 'hello', version, credential, token } };
    }
    case 'state': {
      const extra = unknownKeys(obj, ['type', 'seq', 'services']);
      if (extra) return fail(extra);
      const { seq, services } = obj;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return fail('state: seq must be a whole number ≥ 0');
      if (!Array.isArray(services)) return fail('state: services must be a list');
      if (services.length > MAX_SERVICES) return fail(`state: ${services.length} services; at most ${MAX_SERVICES}`);
      const out: AgentService[] = [];
      const seen = new Set<string>();
      for (const [i, raw] of services.entries()) {
        const svc = decodeService(raw);
        if (typeof svc === 'string') return fail(`state: services[${i}]: ${svc}`);
        const id = `${svc.name}/${svc.proto}`;
        if (seen.has(id)) return fail(`state: services[${i}]: ${id} is declared twice`);
        seen.add(id);
        out.push(svc);
      }
      return { ok: true, message: { type: 'state', seq, services: out } };
    }
    case 'ping': {
      const extra = unknownKeys(obj, ['type']);
      return extra ? fail(extra) : { ok: true, message: { type: 'ping' } };
    }
    default:
      return fail(`unknown message type ${clip(JSON.stringify(obj['type']) ?? 'none')}`);
  }
}

/** The server's message (agent side). */
export function decodeServerMessage(body: Buffer): Decoded<ServerMessage> {
  const obj = parseObject(body);
  if (typeof obj === 'string') return fail(obj);
  switch (obj['type']) {
    case 'welcome':
      return typeof obj['instance'] === 'string' && typeof obj['graceMs'] === 'number'
        ? { ok: true, message: { type: 'welcome', instance: obj['instance'], graceMs: obj['graceMs'] } }
        : fail('welcome: instance and graceMs required');
    case 'ack': {
      if (!Number.isSafeInteger(obj['seq'])) return fail('ack: seq required');
      const refused = obj['refused'];
      if (refused === undefined) return { ok: true, message: { type: 'ack', seq: obj['seq'] as number } };
      if (!Array.isArray(refused) || refused.length > MAX_SERVICES) return fail(`ack: refused must be a list of at most ${MAX_SERVICES}`);
      const list = refused.map((r: unknown) => {
        const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
        return { name: clip(asText(o['name'])), reason: clip(asText(o['reason'])) };
      });
      return { ok: true, message: { type: 'ack', seq: obj['seq'] as number, refused: list } };
    }
    case 'pong':
      return { ok: true, message: { type: 'pong' } };
    case 'error':
      return { ok: true, message: { type: 'error', reason: clip(asText(obj['reason'])) } };
    default:
      return fail(`unknown message type ${clip(JSON.stringify(obj['type']) ?? 'none')}`);
  }
}

/** Service names and tags are DNS labels, as in `user.lexa.service.*` keys (services.ts). */
const SERVICE_KEYS = ['name', 'port', 'proto', 'tags', 'interface', 'priority', 'weight', 'health'];

function decodeService(raw: unknown): AgentService | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'must be an object';
  const o = raw as Record<string, unknown>;
  const extra = unknownKeys(o, SERVICE_KEYS);
  if (extra) return extra;
  const { name, port, proto, tags, priority, weight, health } = o;
  const iface = o['interface'];
  if (typeof name !== 'string' || !SERVICE_LABEL.test(name)) return 'name must be a lower-case DNS label';
  if (!intIn(port, PORT.min, PORT.max)) return `port must be ${PORT.min}..${PORT.max}`;
  if (proto !== 'tcp' && proto !== 'udp') return 'proto must be "tcp" or "udp"';
  if (!Array.isArray(tags) || tags.length > MAX_TAGS || !tags.every((t) => typeof t === 'string' && SERVICE_LABEL.test(t)))
    return `tags must be a list of at most ${MAX_TAGS} lower-case DNS labels`;
  if (new Set(tags).size !== tags.length) return 'tags must not repeat';
  if (iface !== null && (typeof iface !== 'string' || !INTERFACE_NAME.test(iface))) return 'interface must be an interface name or null';
  if (!intIn(priority, PRIORITY.min, PRIORITY.max)) return `priority must be ${PRIORITY.min}..${PRIORITY.max}`;
  if (!intIn(weight, WEIGHT.min, WEIGHT.max)) return `weight must be ${WEIGHT.min}..${WEIGHT.max}`;
  if (health !== 'passing' && health !== 'critical') return 'health must be "passing" or "critical"';
  return {
    name,
    port: port as number,
    proto: proto as ServiceProto,
    tags: tags as string[],
    interface: iface as string | null,
    priority: priority as number,
    weight: weight as number,
    source: 'agent',
    health: health as ServiceHealth,
  };
}

/** A service as sent on the wire (the model minus `source`). */
export function serviceOnWire(s: AgentService): Omit<AgentService, 'source'> {
  const { source: _source, ...rest } = s;
  return rest;
}

function parseObject(body: Buffer): Record<string, unknown> | string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return 'not UTF-8';
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  return value as Record<string, unknown>;
}

function unknownKeys(obj: Record<string, unknown>, known: readonly string[]): string | undefined {
  const extra = Object.keys(obj).filter((k) => !known.includes(k));
  return extra.length > 0 ? clip(`unknown key(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}`) : undefined;
}

/**
 * Peer-provided text made safe for a log line: control characters escaped, at most MAX_LOGGED_CHARS characters
 * (then an ellipsis and the original length), so a peer can neither forge lines nor flood the log.
 */
export function clip(text: string, max: number = MAX_LOGGED_CHARS): string {
  const cut = text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
  return cut.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A JSON value as text for a message: a string as is, anything else as its JSON ('' when absent). Not String():
 * a parsed object whose "toString" is no function makes String() throw, and the decoder must not.
 */
function asText(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : (JSON.stringify(v) ?? '');
}

function secret(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_TOKEN_CHARS;
}

function intIn(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}
