// Batched UDP for lexa's DNS server: one recvmmsg(2) takes up to `batch` queries, one call into JavaScript answers
// them all, one sendmmsg(2) sends the replies. Node's dgram costs one recvmsg, one JS callback, one Buffer and
// one send request per packet; this amortises all of it over a batch. Linux only; built from source at install
// with the headers Node ships (scripts/build-native.mjs), never downloaded. lexa falls back to dgram without it.
//
// Contract with JavaScript (src/servers/dns/udp-batch.ts, src/servers/doq/batch-socket.ts):
//   open(host, port, ipv6, batch, slot, onBatch[, receiveBuffer[, dualStack]])
//     -> { port, receiveBuffer, input, inputLengths, output, outputLengths, sources, sourcePorts,
//          destinations, destinationPorts, sendLengths, handle }
//     receiveBuffer > 0 sets SO_RCVBUF (SO_RCVBUFFORCE where permitted); the result's is what the kernel granted.
//     dualStack: an IPv6 socket also takes IPv4 (IPV6_V6ONLY off); by default IPv6 sockets are IPv6-only.
//     `input` holds batch slots of `slot` bytes (the datagrams); `inputLengths[i]` their sizes; `sources` 16 bytes
//     per slot, each datagram's source address (IPv6, or IPv4 as IPv4-mapped IPv6: rate limiting), `sourcePorts[i]`
//     its port. onBatch(count) is called with datagrams 0..count-1 in place; it may write reply i into output slot
//     i and its size into outputLengths[i] (0: no reply), sent to source i when onBatch returns. The buffers are
//     valid for the socket's life and reused by every batch.
//   send(handle, count) -> sent: sends output slots 0..count-1 (sizes in sendLengths, each to the 16-byte address
//     in destinations and the port in destinationPorts) with sendmmsg; the QUIC path's queue, independent of
//     onBatch's replies. JavaScript must not call it from inside onBatch while using outputLengths (the two share
//     the output slots). Returns how many datagrams the kernel took; 0 on a closed socket.
//   close(handle): stops polling and closes the socket (idempotent).
// A datagram larger than a slot is dropped (MSG_TRUNC): no DNS query that lexa answers is that large, and QUIC
// peers send no datagram larger than the max_udp_payload_size the server advertises.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

// Batches read per readable event before yielding to the event loop, so other sockets and timers are served
// under a flood.
#define MAX_ROUNDS 16
// input, output, their two length arrays, the source addresses and ports, and the send queue's destinations, ports
// and lengths.
#define NBUFFERS 9
// Bytes per source address handed to JavaScript: an IPv6 address; IPv4 is written as ::ffff:a.b.c.d.
#define SOURCE_BYTES 16

typedef struct {
  int fd;
  /** AF_INET or AF_INET6: how send() reads a destination. */
  int family;
  int closed;
  /** Two owners, freed when both are done: the poll handle (until libuv has closed it) and the JS wrapper. */
  int poll_closed;
  int wrapper_gone;
  unsigned batch;
  unsigned slot;
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  /** The ArrayBuffers the slots live in, held until the socket stops so no batch writes freed memory. */
  napi_ref buffers[NBUFFERS];
  napi_async_context async;
  unsigned char *in;
  unsigned char *out;
  int32_t *in_len;
  int32_t *out_len;
  unsigned char *sources;
  int32_t *source_ports;
  unsigned char *destinations;
  int32_t *destination_ports;
  int32_t *send_len;
  struct mmsghdr *rmsgs;
  struct mmsghdr *smsgs;
  struct iovec *riov;
  struct iovec *siov;
  struct sockaddr_storage *addrs;
  /** send()'s destinations, apart from `addrs` (the batch's sources, which onBatch's replies go to). */
  struct sockaddr_storage *send_addrs;
} batch_socket;

static void throw_errno(napi_env env, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, msg);
}

static void release(batch_socket *s) {
  free(s->rmsgs);
  free(s->smsgs);
  free(s->riov);
  free(s->siov);
  free(s->addrs);
  free(s->send_addrs);
  // `in`, `out`, the length, address and port arrays belong to ArrayBuffers that JavaScript may still hold: freed by their
  // finalizers, not here.
  free(s);
}

static void on_poll_closed(uv_handle_t *h) {
  batch_socket *s = (batch_socket *)h->data;
  s->poll_closed = 1;
  if (s->wrapper_gone) release(s);
}

static void stop_socket(batch_socket *s) {
  if (s->closed) return;
  s->closed = 1;
  // uv_poll_stop removes the descriptor from epoll at once (uv__platform_invalidate_fd), so it can be closed
  // now: close() returns with the port free, as dgram's close does.
  uv_poll_stop(&s->poll);
  close(s->fd);
  s->fd = -1;
  napi_delete_reference(s->env, s->callback);
  for (int i = 0; i < NBUFFERS; i++) napi_delete_reference(s->env, s->buffers[i]);
  napi_async_destroy(s->env, s->async);
  uv_close((uv_handle_t *)&s->poll, on_poll_closed);
}

/**
 * Sends smsgs[0..count-1] with as few sendmmsg calls as the kernel allows; returns how many it took. A full send
 * buffer drops the rest (as the kernel drops datagrams on a full queue); a datagram the kernel refuses for its
 * destination alone (unreachable, not permitted, too large) is skipped and the others still go.
 */
static unsigned send_prepared(batch_socket *s, unsigned count) {
  unsigned next = 0, taken = 0;
  while (next < count) {
    int m = sendmmsg(s->fd, s->smsgs + next, count - next, MSG_DONTWAIT);
    if (m > 0) {
      next += (unsigned)m;
      taken += (unsigned)m;
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    if (m == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
    next++;
  }
  return taken;
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  batch_socket *s = (batch_socket *)poll->data;
  if (status < 0 || s->closed) return;
  napi_env env = s->env;
  for (int round = 0; round < MAX_ROUNDS && !s->closed; round++) {
    for (unsigned i = 0; i < s->batch; i++) {
      s->riov[i].iov_base = s->in + (size_t)i * s->slot;
      s->riov[i].iov_len = s->slot;
      memset(&s->rmsgs[i].msg_hdr, 0, sizeof(struct msghdr));
      s->rmsgs[i].msg_hdr.msg_iov = &s->riov[i];
      s->rmsgs[i].msg_hdr.msg_iovlen = 1;
      s->rmsgs[i].msg_hdr.msg_name = &s->addrs[i];
      s->rmsgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int n = recvmmsg(s->fd, s->rmsgs, s->batch, MSG_DONTWAIT, NULL);
    if (n <= 0) return;  // EAGAIN (drained) or an error the next readable event will see again
    for (int i = 0; i < n; i++) {
      int truncated = (s->rmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      s->in_len[i] = truncated ? 0 : (int32_t)s->rmsgs[i].msg_len;
      s->out_len[i] = 0;
      unsigned char *src = s->sources + (size_t)i * SOURCE_BYTES;
      if (s->addrs[i].ss_family == AF_INET6) {
        memcpy(src, &((struct sockaddr_in6 *)&s->addrs[i])->sin6_addr, SOURCE_BYTES);
        s->source_ports[i] = ntohs(((struct sockaddr_in6 *)&s->addrs[i])->sin6_port);
      } else {
        s->source_ports[i] = ntohs(((struct sockaddr_in *)&s->addrs[i])->sin_port);
        memset(src, 0, 10);
        src[10] = 0xff;
        src[11] = 0xff;
        memcpy(src + 12, &((struct sockaddr_in *)&s->addrs[i])->sin_addr, 4);
      }
    }

    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value cb, recv, argv[1], result;
    napi_get_reference_value(env, s->callback, &cb);
    napi_get_global(env, &recv);  // napi_make_callback wants an object as `this`
    napi_create_uint32(env, (uint32_t)n, &argv[0]);
    napi_status st = napi_make_callback(env, s->async, recv, cb, 1, argv, &result);
    if (st == napi_pending_exception) {
      // The batch handler promises never to throw; if it does, report it as Node reports any uncaught error.
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
    napi_close_handle_scope(env, scope);
    if (s->closed) return;

    unsigned out = 0;
    for (int i = 0; i < n; i++) {
      int32_t len = s->out_len[i];
      if (len <= 0 || (uint32_t)len > s->slot) continue;
      s->siov[out].iov_base = s->out + (size_t)i * s->slot;
      s->siov[out].iov_len = (size_t)len;
      memset(&s->smsgs[out].msg_hdr, 0, sizeof(struct msghdr));
      s->smsgs[out].msg_hdr.msg_iov = &s->siov[out];
      s->smsgs[out].msg_hdr.msg_iovlen = 1;
      s->smsgs[out].msg_hdr.msg_name = &s->addrs[i];
      s->smsgs[out].msg_hdr.msg_namelen = s->rmsgs[i].msg_hdr.msg_namelen;
      out++;
    }
    send_prepared(s, out);
    if ((unsigned)n < s->batch) return;  // drained
  }
}

static napi_value get_arg_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len;
  napi_get_value_string_utf8(env, v, buf, size, &len);
  return NULL;
}

static void finalize_free(napi_env env, void *data, void *hint) { free(data); }

static napi_value external_buffer(napi_env env, void *data, size_t len) {
  napi_value ab;
  if (napi_create_external_arraybuffer(env, data, len, finalize_free, NULL, &ab) != napi_ok) return NULL;
  return ab;
}

static void finalize_socket(napi_env env, void *data, void *hint) {
  // The JS handle object is gone; the socket is closed by close() or here.
  batch_socket *s = (batch_socket *)data;
  s->wrapper_gone = 1;
  if (!s->closed) stop_socket(s);  // dropped without close(): stop now, release once libuv is done
  else if (s->poll_closed) release(s);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "open(host, port, ipv6, batch, slot, onBatch[, receiveBuffer[, dualStack]])");
    return NULL;
  }
  char host[64];
  get_arg_string(env, argv[0], host, sizeof host);
  uint32_t port, batch, slot;
  bool ipv6;
  napi_get_value_uint32(env, argv[1], &port);
  napi_get_value_bool(env, argv[2], &ipv6);
  napi_get_value_uint32(env, argv[3], &batch);
  napi_get_value_uint32(env, argv[4], &slot);
  uint32_t rcvbuf = 0;  // optional: 0 keeps the kernel's default
  if (argc >= 7) napi_get_value_uint32(env, argv[6], &rcvbuf);
  bool dual_stack = false;  // optional: IPv6 sockets are IPv6-only unless asked
  if (argc >= 8) napi_get_value_bool(env, argv[7], &dual_stack);
  if (port > 65535 || batch < 1 || batch > 1024 || slot < 512 || slot > 65535) {
    napi_throw_range_error(env, NULL, "udp_batch: port, batch (1..1024) or slot (512..65535) out of range");
    return NULL;
  }

  struct sockaddr_storage addr;
  socklen_t addrlen;
  memset(&addr, 0, sizeof addr);
  if (ipv6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
      napi_throw_error(env, "EINVAL", "udp_batch: not an IPv6 address");
      return NULL;
    }
    addrlen = sizeof(struct sockaddr_in6);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&addr;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
      napi_throw_error(env, "EINVAL", "udp_batch: not an IPv4 address");
      return NULL;
    }
    addrlen = sizeof(struct sockaddr_in);
  }
  int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    throw_errno(env, "udp_batch: socket");
    return NULL;
  }
  if (ipv6) {
    int only = dual_stack ? 0 : 1;  // as lexa's other sockets by default: `::` beside 0.0.0.0
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  }
  if (rcvbuf > 0) {
    // Past net.core.rmem_max where permitted (CAP_NET_ADMIN), else up to it: the caller logs what was granted.
    int size = rcvbuf > INT_MAX / 2 ? INT_MAX / 2 : (int)rcvbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  }
  if (bind(fd, (struct sockaddr *)&addr, addrlen) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    napi_value err, code, msg;
    char text[160];
    snprintf(text, sizeof text, "bind %s %s:%u", e == EADDRINUSE ? "EADDRINUSE" : strerror(e), host, port);
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, e == EADDRINUSE ? "EADDRINUSE" : e == EACCES ? "EACCES" : "EBIND", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &err);
    napi_set_named_property(env, err, "code", code);
    napi_throw(env, err);
    return NULL;
  }
  struct sockaddr_storage bound;
  socklen_t boundlen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &boundlen);
  uint32_t bound_port = ntohs(ipv6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);

  batch_socket *s = calloc(1, sizeof *s);
  s->fd = fd;
  s->family = ipv6 ? AF_INET6 : AF_INET;
  s->batch = batch;
  s->slot = slot;
  s->env = env;
  s->in = malloc((size_t)batch * slot);
  s->out = malloc((size_t)batch * slot);
  s->in_len = calloc(batch, sizeof(int32_t));
  s->out_len = calloc(batch, sizeof(int32_t));
  s->sources = calloc(batch, SOURCE_BYTES);
  s->source_ports = calloc(batch, sizeof(int32_t));
  s->destinations = calloc(batch, SOURCE_BYTES);
  s->destination_ports = calloc(batch, sizeof(int32_t));
  s->send_len = calloc(batch, sizeof(int32_t));
  s->send_addrs = calloc(batch, sizeof(struct sockaddr_storage));
  s->rmsgs = calloc(batch, sizeof(struct mmsghdr));
  s->smsgs = calloc(batch, sizeof(struct mmsghdr));
  s->riov = calloc(batch, sizeof(struct iovec));
  s->siov = calloc(batch, sizeof(struct iovec));
  s->addrs = calloc(batch, sizeof(struct sockaddr_storage));
  napi_create_reference(env, argv[5], 1, &s->callback);
  napi_value resource_name;
  napi_create_string_utf8(env, "lexa:udp-batch", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &s->async);

  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init(loop, &s->poll, fd);
  if (rc == 0) {
    s->poll.data = s;
    rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  }
  if (rc != 0) {
    // Cannot happen for a fresh UDP socket on Linux; if it does, fail the start rather than serve nothing.
    napi_throw_error(env, NULL, uv_strerror(rc));
    return NULL;
  }

  napi_value result, v, handle;
  napi_create_object(env, &result);
  napi_create_uint32(env, bound_port, &v);
  napi_set_named_property(env, result, "port", v);
  int granted = 0;
  socklen_t grantedlen = sizeof granted;
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &grantedlen);
  napi_create_uint32(env, (uint32_t)granted, &v);
  napi_set_named_property(env, result, "receiveBuffer", v);
  napi_value in_ab = external_buffer(env, s->in, (size_t)batch * slot);
  napi_value out_ab = external_buffer(env, s->out, (size_t)batch * slot);
  napi_value in_len_ab = external_buffer(env, s->in_len, batch * sizeof(int32_t));
  napi_value out_len_ab = external_buffer(env, s->out_len, batch * sizeof(int32_t));
  napi_value sources_ab = external_buffer(env, s->sources, (size_t)batch * SOURCE_BYTES);
  napi_value source_ports_ab = external_buffer(env, s->source_ports, batch * sizeof(int32_t));
  napi_value destinations_ab = external_buffer(env, s->destinations, (size_t)batch * SOURCE_BYTES);
  napi_value destination_ports_ab = external_buffer(env, s->destination_ports, batch * sizeof(int32_t));
  napi_value send_len_ab = external_buffer(env, s->send_len, batch * sizeof(int32_t));
  napi_value abs[NBUFFERS] = {in_ab, out_ab, in_len_ab, out_len_ab, sources_ab, source_ports_ab, destinations_ab, destination_ports_ab, send_len_ab};
  for (int i = 0; i < NBUFFERS; i++) napi_create_reference(env, abs[i], 1, &s->buffers[i]);
  napi_value in_view, out_view, in_len_view, out_len_view, sources_view;
  napi_create_typedarray(env, napi_uint8_array, (size_t)batch * slot, in_ab, 0, &in_view);
  napi_create_typedarray(env, napi_uint8_array, (size_t)batch * slot, out_ab, 0, &out_view);
  napi_create_typedarray(env, napi_int32_array, batch, in_len_ab, 0, &in_len_view);
  napi_create_typedarray(env, napi_int32_array, batch, out_len_ab, 0, &out_len_view);
  napi_create_typedarray(env, napi_uint8_array, (size_t)batch * SOURCE_BYTES, sources_ab, 0, &sources_view);
  napi_set_named_property(env, result, "input", in_view);
  napi_set_named_property(env, result, "inputLengths", in_len_view);
  napi_set_named_property(env, result, "output", out_view);
  napi_set_named_property(env, result, "outputLengths", out_len_view);
  napi_set_named_property(env, result, "sources", sources_view);
  napi_value view;
  napi_create_typedarray(env, napi_int32_array, batch, source_ports_ab, 0, &view);
  napi_set_named_property(env, result, "sourcePorts", view);
  napi_create_typedarray(env, napi_uint8_array, (size_t)batch * SOURCE_BYTES, destinations_ab, 0, &view);
  napi_set_named_property(env, result, "destinations", view);
  napi_create_typedarray(env, napi_int32_array, batch, destination_ports_ab, 0, &view);
  napi_set_named_property(env, result, "destinationPorts", view);
  napi_create_typedarray(env, napi_int32_array, batch, send_len_ab, 0, &view);
  napi_set_named_property(env, result, "sendLengths", view);
  napi_create_object(env, &handle);
  napi_wrap(env, handle, s, finalize_socket, NULL, NULL);
  napi_set_named_property(env, result, "handle", handle);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  if (argc < 1 || napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL) return NULL;
  stop_socket((batch_socket *)data);
  return NULL;
}

static const unsigned char V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/**
 * Writes destination i into send_addrs[i] for this socket's family; 0 when it cannot be sent from this socket (an
 * IPv6 address on an IPv4 socket, port 0), so the caller skips that datagram.
 */
static socklen_t destination(batch_socket *s, unsigned i) {
  const unsigned char *a = s->destinations + (size_t)i * SOURCE_BYTES;
  int32_t port = s->destination_ports[i];
  if (port < 1 || port > 65535) return 0;
  struct sockaddr_storage *to = &s->send_addrs[i];
  memset(to, 0, sizeof *to);
  if (s->family == AF_INET6) {
    struct sockaddr_in6 *d = (struct sockaddr_in6 *)to;
    d->sin6_family = AF_INET6;
    d->sin6_port = htons((uint16_t)port);
    memcpy(&d->sin6_addr, a, SOURCE_BYTES);
    return sizeof *d;
  }
  if (memcmp(a, V4_MAPPED, sizeof V4_MAPPED) != 0) return 0;
  struct sockaddr_in *d = (struct sockaddr_in *)to;
  d->sin_family = AF_INET;
  d->sin_port = htons((uint16_t)port);
  memcpy(&d->sin_addr, a + sizeof V4_MAPPED, 4);
  return sizeof *d;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data = NULL;
  uint32_t count = 0;
  if (argc < 2 || napi_unwrap(env, argv[0], &data) != napi_ok || data == NULL || napi_get_value_uint32(env, argv[1], &count) != napi_ok) {
    napi_throw_type_error(env, NULL, "send(handle, count)");
    return NULL;
  }
  batch_socket *s = (batch_socket *)data;
  if (count > s->batch) {
    napi_throw_range_error(env, NULL, "udp_batch: send count exceeds the batch");
    return NULL;
  }
  unsigned taken = 0;
  if (!s->closed) {
    unsigned out = 0;
    for (unsigned i = 0; i < count; i++) {
      int32_t len = s->send_len[i];
      if (len <= 0 || (uint32_t)len > s->slot) continue;
      socklen_t tolen = destination(s, i);
      if (tolen == 0) continue;
      s->siov[out].iov_base = s->out + (size_t)i * s->slot;
      s->siov[out].iov_len = (size_t)len;
      memset(&s->smsgs[out].msg_hdr, 0, sizeof(struct msghdr));
      s->smsgs[out].msg_hdr.msg_iov = &s->siov[out];
      s->smsgs[out].msg_hdr.msg_iovlen = 1;
      s->smsgs[out].msg_hdr.msg_name = &s->send_addrs[i];
      s->smsgs[out].msg_hdr.msg_namelen = tolen;
      out++;
    }
    taken = send_prepared(s, out);
  }
  napi_create_uint32(env, taken, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, js_open, NULL, &fn);
  napi_set_named_property(env, exports, "open", fn);
  napi_create_function(env, "close", NAPI_AUTO_LENGTH, js_close, NULL, &fn);
  napi_set_named_property(env, exports, "close", fn);
  napi_create_function(env, "send", NAPI_AUTO_LENGTH, js_send, NULL, &fn);
  napi_set_named_property(env, exports, "send", fn);
  return exports;
}
