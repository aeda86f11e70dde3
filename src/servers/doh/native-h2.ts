import { fileURLToPath } from 'node:url';
import { loadAddon } from '../native-addon.js';

/**
 * The native HTTP/2 session addon (native/h2_session.c documents the contract): nghttp2, the copy inside Node,
 * driven with one call per socket read instead of node:http2's JavaScript per stream. This file loads it and
 * decides whether it may be used; h2-session.ts serves connections with it.
 */

/** A session handle: opaque to JavaScript. */
export type H2Handle = object & { readonly __h2Session: unique symbol };

/** native/h2_session.c's exports. */
export interface H2Addon {
  open(maxConcurrentStreams: number, state: Int32Array): H2Handle;
  /** The events this read completed (EVENT_SLOTS values each), or nghttp2's (negative) error code. */
  feed(session: H2Handle, bytes: Buffer): unknown[] | number;
  /** 0, or nghttp2's error code (the stream is gone or already answered). */
  respond(session: H2Handle, streamId: number, status: number, headers: string[], body: Uint8Array | null, flags: number): number;
  informational(session: H2Handle, streamId: number): number;
  /** Sends an unread reply's RST_STREAM(NO_ERROR) with the next flush, if not sent yet. */
  reset(session: H2Handle, streamId: number): void;
  flush(session: H2Handle): Buffer | null;
  goaway(session: H2Handle): void;
  close(session: H2Handle): void;
}

/** state[] slots the addon keeps current (h2_session.c: STATE_*). */
export const STATE_CLOSE = 0;
export const STATE_STREAMS = 1;
export const STATE_SLOTS = 2;
/** Event layout: [kind, streamId, method, path, contentType, contentLength, expect, body] (h2_session.c: EV_*). */
export const EVENT_SLOTS = 8;
export const EV_HEAD = 1;
export const EV_COMPLETE = 2;
export const EV_TOO_LARGE = 3;
export const EV_CLOSED = 4;
/** respond() flags (h2_session.c: RESPOND_*). */
export const RESPOND_HEAD = 1;
export const RESPOND_UNREAD = 2;

/**
 * The oldest nghttp2 the addon may drive: 1.61 added the limit on CONTINUATION frames
 * (nghttp2_option_set_max_continuations) the addon sets; an older Node would not export it.
 */
export const MIN_NGHTTP2 = [1, 61] as const;

/** Where install puts the addon: <package>/native/build, from src/servers/doh or dist/servers/doh alike. */
export const H2_ADDON_PATH = fileURLToPath(new URL('../../../native/build/h2_session.node', import.meta.url));

/** `LEXA_DOH_HTTP2=node` forces node:http2 (a comparison, or a way around a defect of the native stack). */
export const FORCE_NODE_ENV = 'LEXA_DOH_HTTP2';

/** Whether `version` (x.y.z) is at least MIN_NGHTTP2. */
export function nghttp2Suffices(version: string | undefined): boolean {
  const [major = 0, minor = 0] = (version ?? '').split('.').map(Number);
  return major > MIN_NGHTTP2[0] || (major === MIN_NGHTTP2[0] && minor >= MIN_NGHTTP2[1]);
}

/**
 * The addon, or why HTTP/2 is served by node:http2 instead: forced by the environment, Node's nghttp2 older than
 * MIN_NGHTTP2, or the addon not built or not loadable (a symbol this Node does not export fails the load). Loaded
 * once per path.
 */
export function loadH2Addon(path: string = H2_ADDON_PATH, env: NodeJS.ProcessEnv = process.env, nghttp2 = process.versions.nghttp2): H2Addon | Error {
  if (env[FORCE_NODE_ENV] === 'node') return new Error(`${FORCE_NODE_ENV}=node`);
  if (!nghttp2Suffices(nghttp2)) return new Error(`Node's nghttp2 is ${nghttp2 ?? 'absent'}; the native session needs ${MIN_NGHTTP2.join('.')}`);
  return loadAddon<H2Addon>(path, 'h2_session', ['open', 'feed']);
}
