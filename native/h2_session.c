// HTTP/2 server sessions for DoH on nghttp2, driven from JavaScript one socket read at a time.
//
// node:http2 costs ~28 µs of CPU per stream on its own (docs/performance.md, "DoH"): most of it JavaScript around
// nghttp2 (a stream object, its header objects, its Duplex machinery). Here nghttp2 runs with no JavaScript per
// frame: JS hands a session the decrypted bytes of one read (feed), gets back the requests that read completed as
// one flat array, answers each (respond), and takes the bytes to write in one buffer (flush). TLS stays Node's.
//
// nghttp2 is not linked: the Node running lexa exports its own nghttp2's symbols (1.61 in Node 20), resolved when
// the addon loads (scripts/build-native.mjs builds with -Wl,-z,now, so a missing symbol fails the load, not a
// request); Debian's libnghttp2-dev provides the headers only. native-h2.ts refuses the addon under an older
// nghttp2, whose options this file relies on (max CONTINUATIONs: 1.61).
//
// JavaScript API (src/servers/doh/native-h2.ts types it):
//   open(maxConcurrentStreams, state: Int32Array(STATE_SLOTS)) → session     a server session; SETTINGS queued
//   feed(session, bytes) → events[] | errorCode        events: EVENT_SLOTS values per event (see push_event)
//   respond(session, streamId, status, headers: string[], body | null, flags) → 0 | nghttp2 error code
//   informational(session, streamId) → 0 | error       100 Continue
//   reset(session, streamId)                            an unread reply's RST_STREAM, with the next flush (see on_frame_send)
//   flush(session) → Buffer | null                      every byte nghttp2 has to send now
//   goaway(session)                                     GOAWAY(NO_ERROR): no new streams, open ones finish
//   close(session)                                      frees it (also done when the session is collected)
// state[STATE_CLOSE] is set when the session wants neither to read nor to write (after a GOAWAY, or a protocol
// error nghttp2 answered with one): JS writes what flush gave and ends the socket.
// state[STATE_STREAMS] counts open streams (for the idle deadline).

#define NAPI_VERSION 8
#include <node_api.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Why these values: docs/security.md, "DoH over HTTP/2".
// A header list beyond this (name + value + 32 per field, RFC 9113 §6.5.2) resets its stream; advertised too.
#define MAX_HEADER_LIST_BYTES (96 * 1024)
// A DNS message is at most 65535 bytes (the TCP length prefix): a body beyond it is a 413.
#define MAX_BODY 65535
// At most this many SETTINGS and PING acks queued unsent: a client flooding them and not reading loses its session.
#define MAX_OUTBOUND_ACK 1000
// A SETTINGS frame has at most this many entries (RFC 9113 defines 6; extensions a few more).
#define MAX_SETTINGS 32
// A header block in at most this many CONTINUATION frames (CVE-2024-27316 class: endless CONTINUATIONs).
#define MAX_CONTINUATIONS 8
// Rapid reset (CVE-2023-44487): a burst of 1000 client stream resets, then 33 a second, else GOAWAY.
#define RESET_BURST 1000
#define RESET_RATE 33

enum { STATE_CLOSE, STATE_STREAMS, STATE_SLOTS };
// Event kinds: HEAD: headers in, body to come (route it now); COMPLETE: the request is whole (body, or none);
// TOO_LARGE: the body passed MAX_BODY (answer 413 unread); CLOSED: a stream whose body was awaited is gone.
enum { EV_HEAD = 1, EV_COMPLETE = 2, EV_TOO_LARGE = 3, EV_CLOSED = 4 };
// [kind, streamId, method, path, contentType, contentLength, expect, body]
#define EVENT_SLOTS 8
// respond() flags: HEAD: no body; UNREAD: the client may still be sending: RST_STREAM(NO_ERROR) after the reply.
enum { RESPOND_HEAD = 1, RESPOND_UNREAD = 2 };

enum { F_METHOD, F_PATH, F_CTYPE, F_CLEN, F_EXPECT, FIELDS };

typedef struct stream {
  int32_t id;
  unsigned head_reported : 1, ended : 1, too_large : 1, responded : 1, unread : 1, closed : 1, queued : 1,
      in_request_headers : 1, reply_ended : 1, reset_wanted : 1;
  char *field[FIELDS];
  size_t field_len[FIELDS];
  size_t header_bytes;
  uint8_t *body;
  size_t body_len, body_cap;
  uint8_t *reply;  // the response body being sent
  size_t reply_len, reply_sent;
  struct stream *next_queued;
  struct stream *prev, *next;  // every stream of the session, to free them with it
} stream;

typedef struct {
  nghttp2_session *ng;
  napi_ref state_ref;
  int32_t *state;
  stream *all;
  stream *queue_head, *queue_tail;
  int open_streams;
} session;

static void stream_free(session *s, stream *st) {
  if (st->prev) st->prev->next = st->next;
  else s->all = st->next;
  if (st->next) st->next->prev = st->prev;
  for (int i = 0; i < FIELDS; i++) free(st->field[i]);
  free(st->body);
  free(st->reply);
  free(st);
}

static void enqueue(session *s, stream *st) {
  if (st->queued) return;
  st->queued = 1;
  st->next_queued = NULL;
  if (s->queue_tail) s->queue_tail->next_queued = st;
  else s->queue_head = st;
  s->queue_tail = st;
}

// ---- nghttp2 callbacks ----

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  session *s = user;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  stream *st = calloc(1, sizeof *st);
  if (!st) return NGHTTP2_ERR_CALLBACK_FAILURE;
  st->id = frame->hd.stream_id;
  st->in_request_headers = 1;
  st->next = s->all;
  if (s->all) s->all->prev = st;
  s->all = st;
  s->open_streams++;
  nghttp2_session_set_stream_user_data(ng, st->id, st);
  return 0;
}

static int field_index(const uint8_t *name, size_t len) {
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
  if (IS(":method")) return F_METHOD;
  if (IS(":path")) return F_PATH;
  if (IS("content-type")) return F_CTYPE;
  if (IS("content-length")) return F_CLEN;
  if (IS("expect")) return F_EXPECT;
  return -1;
#undef IS
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user) {
  (void)flags;
  (void)user;
  stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st) return 0;
  st->header_bytes += namelen + valuelen + 32;
  // Resets the stream (nghttp2 decodes and drops the rest of the block, keeping HPACK's state).
  if (st->header_bytes > MAX_HEADER_LIST_BYTES) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  if (!st->in_request_headers) return 0;  // trailers: counted, not kept
  int i = field_index(name, namelen);
  if (i < 0 || st->field[i]) return 0;  // the first of a repeated field counts (nghttp2 refuses repeated pseudo-headers)
  st->field[i] = malloc(valuelen + 1);
  if (!st->field[i]) return NGHTTP2_ERR_CALLBACK_FAILURE;
  memcpy(st->field[i], value, valuelen);
  st->field[i][valuelen] = 0;
  st->field_len[i] = valuelen;
  return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user) {
  (void)flags;
  session *s = user;
  stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
  // Flow control is ours (no automatic WINDOW_UPDATE): the connection's window always reopens; a stream's only
  // while its body is wanted, so a client sending a body we refused stops at its window until the reset.
  if (!st || st->too_large || st->responded) {
    nghttp2_session_consume_connection(ng, len);
    return 0;
  }
  nghttp2_session_consume(ng, stream_id, len);
  if (st->body_len + len > MAX_BODY) {
    st->too_large = 1;
    free(st->body);
    st->body = NULL;
    st->body_len = st->body_cap = 0;
    enqueue(s, st);
    return 0;
  }
  if (st->body_len + len > st->body_cap) {
    size_t cap = st->body_cap ? st->body_cap * 2 : 512;
    while (cap < st->body_len + len) cap *= 2;
    if (cap > MAX_BODY) cap = MAX_BODY;
    uint8_t *grown = realloc(st->body, cap);
    if (!grown) return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->body = grown;
    st->body_cap = cap;
  }
  memcpy(st->body + st->body_len, data, len);
  st->body_len += len;
  return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  session *s = user;
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st) return 0;
  if (frame->hd.type == NGHTTP2_HEADERS) st->in_request_headers = 0;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) st->ended = 1;
  if (!st->responded) enqueue(s, st);
  return 0;
}

// The reply is out and the client may still be sending a body we did not read: RST_STREAM(NO_ERROR) tells it to
// stop (RFC 9113 §8.1), sent when JS asks (reset(), UNREAD_RESET_MS after the reply), never with the reply itself:
// curl 7.88, given the reset before it has taken in the reply, fails the request (error 92; 17 of 20 times with a
// 64 KiB body, and 12 of 20 with the reset sent once the client's window was used up; none with 100 ms), and
// node:http2's client given both in one read never closes the stream.
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user) {
  (void)user;
  if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
  stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
  if (!st || !st->unread) return 0;
  st->reply_ended = 1;
  if (st->reset_wanted) nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
  return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user) {
  (void)error_code;
  session *s = user;
  stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
  if (!st) return 0;
  nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
  s->open_streams--;
  st->closed = 1;
  // JS holds a deadline for a stream whose body it awaits: it hears of the close from the queue.
  if (st->head_reported && !st->responded) enqueue(s, st);
  if (!st->queued) stream_free(s, st);
  return 0;
}

static ssize_t read_reply(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *flags,
                          nghttp2_data_source *source, void *user) {
  (void)ng;
  (void)stream_id;
  (void)user;
  stream *st = source->ptr;
  size_t n = st->reply_len - st->reply_sent;
  if (n > length) n = length;
  if (n) memcpy(buf, st->reply + st->reply_sent, n);
  st->reply_sent += n;
  if (st->reply_sent == st->reply_len) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return (ssize_t)n;
}

// ---- N-API ----

#define CHECK(call)                                          \
  do {                                                       \
    if ((call) != napi_ok) {                                 \
      napi_throw_error(env, NULL, "h2_session: " #call);     \
      return NULL;                                           \
    }                                                        \
  } while (0)

static void session_destroy(napi_env env, session *s) {
  if (!s->ng) return;
  nghttp2_session_del(s->ng);  // calls no callbacks: our streams are freed below
  s->ng = NULL;
  while (s->all) stream_free(s, s->all);
  s->queue_head = s->queue_tail = NULL;
  if (s->state_ref) napi_delete_reference(env, s->state_ref);
  s->state_ref = NULL;
  s->state = NULL;
}

static void session_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  session_destroy(env, data);
  free(data);
}

static session *get_session(napi_env env, napi_value v) {
  session *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "h2_session: not a session");
    return NULL;
  }
  if (!s->ng) {
    napi_throw_error(env, NULL, "h2_session: session closed");
    return NULL;
  }
  return s;
}

// Every call after open(): up to `count` arguments into argv (those not given are undefined), the first of which
// must be an open session. NULL, with a JavaScript exception pending, otherwise.
static session *session_args(napi_env env, napi_callback_info info, napi_value *argv, size_t count) {
  size_t argc = count;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "h2_session: napi_get_cb_info");
    return NULL;
  }
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "h2_session: not a session");
    return NULL;
  }
  return get_session(env, argv[0]);
}

// reset() and informational(): (session, streamId). NULL, with a TypeError naming `usage`, otherwise.
static session *stream_args(napi_env env, napi_callback_info info, const char *usage, int32_t *id) {
  napi_value argv[2];
  session *s = session_args(env, info, argv, 2);
  if (!s) return NULL;
  if (napi_get_value_int32(env, argv[1], id) != napi_ok) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  return s;
}

static void update_state(session *s) {
  if (!s->state) return;
  s->state[STATE_CLOSE] = !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng);
  s->state[STATE_STREAMS] = s->open_streams;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t max_streams = 0;
  if (argc < 2 || napi_get_value_uint32(env, argv[0], &max_streams) != napi_ok || max_streams == 0) {
    napi_throw_type_error(env, NULL, "h2_session.open(maxConcurrentStreams > 0, state)");
    return NULL;
  }
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  napi_is_typedarray(env, argv[1], &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, argv[1], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_int32_array || length < STATE_SLOTS) {
    napi_throw_type_error(env, NULL, "h2_session.open: state must be an Int32Array of 2");
    return NULL;
  }
  session *s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, NULL, "h2_session: out of memory");
    return NULL;
  }
  nghttp2_session_callbacks *cb;
  nghttp2_option *opt;
  if (nghttp2_session_callbacks_new(&cb) != 0) goto oom;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    goto oom;
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACK);
  nghttp2_option_set_max_settings(opt, MAX_SETTINGS);
  nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
  nghttp2_option_set_stream_reset_rate_limit(opt, RESET_BURST, RESET_RATE);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // see on_data_chunk
  int rv = nghttp2_session_server_new2(&s->ng, cb, s, opt);
  nghttp2_session_callbacks_del(cb);
  nghttp2_option_del(opt);
  if (rv != 0) goto oom;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_BYTES},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]);
  CHECK(napi_create_reference(env, argv[1], 1, &s->state_ref));
  s->state = data;
  update_state(s);
  napi_value out;
  if (napi_create_external(env, s, session_finalize, NULL, &out) != napi_ok) {
    session_destroy(env, s);
    free(s);
    napi_throw_error(env, NULL, "h2_session: napi_create_external");
    return NULL;
  }
  return out;
oom:
  free(s);
  napi_throw_error(env, NULL, "h2_session: out of memory");
  return NULL;
}

static napi_value field_value(napi_env env, stream *st, int i) {
  napi_value v;
  if (st->field[i]) napi_create_string_latin1(env, st->field[i], st->field_len[i], &v);
  else napi_get_undefined(env, &v);
  return v;
}

// Appends one event to `events` at `*at`: [kind, id, method, path, contentType, contentLength, expect, body].
static napi_status push_event(napi_env env, napi_value events, uint32_t *at, int kind, stream *st, int with_head,
                              int with_body) {
  napi_value v[EVENT_SLOTS];
  napi_create_int32(env, kind, &v[0]);
  napi_create_int32(env, st->id, &v[1]);
  napi_value undef;
  napi_get_undefined(env, &undef);
  for (int i = 0; i < FIELDS; i++) v[2 + i] = with_head ? field_value(env, st, i) : undef;
  v[7] = undef;
  if (with_body && st->body_len) {
    void *copy;
    napi_create_buffer_copy(env, st->body_len, st->body, &copy, &v[7]);
  }
  for (int i = 0; i < EVENT_SLOTS; i++) {
    napi_status status = napi_set_element(env, events, (*at)++, v[i]);
    if (status != napi_ok) return status;
  }
  return napi_ok;
}

static napi_value js_feed(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  session *s = session_args(env, info, argv, 2);
  if (!s) return NULL;
  void *data;
  size_t len;
  bool is_buffer = false;
  napi_is_buffer(env, argv[1], &is_buffer);
  if (!is_buffer || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "h2_session.feed(session, Buffer)");
    return NULL;
  }
  ssize_t rv = nghttp2_session_mem_recv(s->ng, data, len);
  napi_value out;
  if (rv < 0) {
    update_state(s);
    CHECK(napi_create_int32(env, (int32_t)rv, &out));
    return out;
  }
  CHECK(napi_create_array(env, &out));
  uint32_t at = 0;
  stream *st = s->queue_head;
  s->queue_head = s->queue_tail = NULL;
  while (st) {
    stream *next = st->next_queued;
    st->queued = 0;
    if (st->closed) {
      if (st->head_reported && !st->responded) push_event(env, out, &at, EV_CLOSED, st, 0, 0);
      stream_free(s, st);
    } else if (!st->responded) {
      int head = !st->head_reported;
      if (st->too_large) push_event(env, out, &at, EV_TOO_LARGE, st, head, 0);
      else if (st->ended) push_event(env, out, &at, EV_COMPLETE, st, head, 1);
      else if (head) push_event(env, out, &at, EV_HEAD, st, 1, 0);
      st->head_reported = 1;
      if (st->too_large || st->ended) {
        // JS answers now: what the event carried is no longer needed.
        free(st->body);
        st->body = NULL;
        st->body_len = st->body_cap = 0;
      }
    }
    st = next;
  }
  update_state(s);
  return out;
}

static napi_value js_respond(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  session *s = session_args(env, info, argv, 6);
  if (!s) return NULL;
  int32_t id = 0, status = 0, flags = 0;
  uint32_t nheaders = 0;
  bool is_array = false;
  if (napi_get_value_int32(env, argv[1], &id) != napi_ok || napi_get_value_int32(env, argv[2], &status) != napi_ok ||
      status < 100 || status > 999 || napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[3], &nheaders) != napi_ok || nheaders % 2 || nheaders > 64 ||
      napi_get_value_int32(env, argv[5], &flags) != napi_ok) {
    napi_throw_type_error(env, NULL, "h2_session.respond(session, streamId, status, [name, value...], body, flags)");
    return NULL;
  }
  napi_value result;
  stream *st = nghttp2_session_get_stream_user_data(s->ng, id);
  if (!st || st->responded) {  // gone (reset, closed) or answered: nothing to do
    CHECK(napi_create_int32(env, NGHTTP2_ERR_INVALID_ARGUMENT, &result));
    return result;
  }
  void *body = NULL;
  size_t body_len = 0;
  bool is_buffer = false;
  napi_is_buffer(env, argv[4], &is_buffer);
  if (is_buffer) napi_get_buffer_info(env, argv[4], &body, &body_len);
  // Header names and values copied into one block: nghttp2 copies them again into its own frame.
  char status_text[4];
  status_text[0] = (char)('0' + status / 100);
  status_text[1] = (char)('0' + status / 10 % 10);
  status_text[2] = (char)('0' + status % 10);
  status_text[3] = 0;
  size_t count = 1 + nheaders / 2;
  nghttp2_nv nva[33];
  char strings[4096];
  size_t used = 0;
  nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, 3, NGHTTP2_NV_FLAG_NONE};
  for (uint32_t i = 0; i < nheaders; i++) {
    napi_value v;
    size_t n = 0;
    if (napi_get_element(env, argv[3], i, &v) != napi_ok ||
        napi_get_value_string_latin1(env, v, strings + used, sizeof strings - used, &n) != napi_ok ||
        used + n + 1 >= sizeof strings) {
      napi_throw_type_error(env, NULL, "h2_session.respond: headers must be short strings");
      return NULL;
    }
    nghttp2_nv *nv = &nva[1 + i / 2];
    if (i % 2 == 0) {
      nv->name = (uint8_t *)strings + used;
      nv->namelen = n;
      nv->flags = NGHTTP2_NV_FLAG_NONE;
    } else {
      nv->value = (uint8_t *)strings + used;
      nv->valuelen = n;
    }
    used += n + 1;
  }
  int head = flags & RESPOND_HEAD;
  nghttp2_data_provider provider = {{.ptr = st}, read_reply};
  if (!head) {
    st->reply = malloc(body_len ? body_len : 1);
    if (!st->reply) {
      napi_throw_error(env, NULL, "h2_session: out of memory");
      return NULL;
    }
    if (body_len) memcpy(st->reply, body, body_len);
    st->reply_len = body_len;
  }
  st->responded = 1;
  st->unread = (flags & RESPOND_UNREAD) && !st->ended;
  int rv = nghttp2_submit_response(s->ng, id, nva, count, head ? NULL : &provider);
  CHECK(napi_create_int32(env, rv, &result));
  return result;
}

static napi_value js_reset(napi_env env, napi_callback_info info) {
  int32_t id = 0;
  session *s = stream_args(env, info, "h2_session.reset(session, streamId)", &id);
  if (!s) return NULL;
  stream *st = nghttp2_session_get_stream_user_data(s->ng, id);
  // A reply still being sent (the client's window for it closed) gets its reset once it has ended (on_frame_send).
  if (st && st->unread) {
    if (st->reply_ended) nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    else st->reset_wanted = 1;
  }
  return NULL;
}

static napi_value js_informational(napi_env env, napi_callback_info info) {
  int32_t id = 0;
  session *s = stream_args(env, info, "h2_session.informational(session, streamId)", &id);
  if (!s) return NULL;
  nghttp2_nv nv = {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE};
  int rv = nghttp2_session_get_stream_user_data(s->ng, id) ? nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, id, NULL, &nv, 1, NULL)
                                                             : NGHTTP2_ERR_INVALID_ARGUMENT;
  napi_value result;
  CHECK(napi_create_int32(env, rv, &result));
  return result;
}

static napi_value js_flush(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  session *s = session_args(env, info, argv, 1);
  if (!s) return NULL;
  // mem_send hands out one frame's bytes at a time (valid until the next call): gathered into one buffer.
  uint8_t *out = NULL;
  size_t len = 0, cap = 0;
  napi_value result;
  for (;;) {
    const uint8_t *chunk;
    ssize_t n = nghttp2_session_mem_send(s->ng, &chunk);
    if (n < 0) {
      // Fatal (out of memory, a callback failure): the session can do nothing more; JS ends the connection.
      nghttp2_session_terminate_session(s->ng, NGHTTP2_INTERNAL_ERROR);
      break;
    }
    if (n == 0) break;
    if (len + (size_t)n > cap) {
      size_t grown_cap = cap ? cap * 2 : 4096;
      while (grown_cap < len + (size_t)n) grown_cap *= 2;
      uint8_t *grown = realloc(out, grown_cap);
      if (!grown) {
        free(out);
        napi_throw_error(env, NULL, "h2_session: out of memory");
        return NULL;
      }
      out = grown;
      cap = grown_cap;
    }
    memcpy(out + len, chunk, (size_t)n);
    len += (size_t)n;
  }
  update_state(s);
  if (len == 0) {
    free(out);
    CHECK(napi_get_null(env, &result));
    return result;
  }
  napi_status status = napi_create_buffer_copy(env, len, out, NULL, &result);
  free(out);
  CHECK(status);
  return result;
}

static napi_value js_goaway(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  session *s = session_args(env, info, argv, 1);
  if (!s) return NULL;
  // No stream is accepted after it; the session wants neither read nor write once the open ones are answered.
  nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng), NGHTTP2_NO_ERROR, NULL, 0);
  update_state(s);
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  session *s = NULL;
  napi_valuetype t;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, NULL, "h2_session.close(session)");
    return NULL;
  }
  session_destroy(env, s);  // the struct itself goes with the external's finalizer
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"feed", NULL, js_feed, NULL, NULL, NULL, napi_default, NULL},
      {"respond", NULL, js_respond, NULL, NULL, NULL, napi_default, NULL},
      {"informational", NULL, js_informational, NULL, NULL, NULL, napi_default, NULL},
      {"reset", NULL, js_reset, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, js_flush, NULL, NULL, NULL, napi_default, NULL},
      {"goaway", NULL, js_goaway, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
