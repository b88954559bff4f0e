// Zero-copy send of file bytes to a socket for the WebHDFS gateway's OPEN (docs/hdfs.md, "The read
// path"): sendfile(2) from a disk image straight to the client's TCP socket, as an HDFS DataNode
// does with transferTo, instead of pread into a JavaScript buffer and write from it.
//
// sendFile(outFd, inFd, offset, count, waitMs, token?) -> Promise<{sent, eof, stalled, cancelled}>
//   runs on the libuv thread pool (a cold page cache blocks on disk there, not on the event loop).
//   Node's sockets are non-blocking: on EAGAIN the worker poll()s the socket for up to waitMs; if
//   the client has not made room by then it returns {stalled: true} with what it sent, so a slow
//   client never holds a pool thread for long (the caller sends the rest through JS streams).
//   eof: the input file ended before `count` bytes (a source shorter than its segment).
//   Both fds are dup()ed on the calling thread: if JavaScript closes the socket meanwhile, the
//   number cannot be reused by another connection while the worker writes to it.
//   token (from sendToken()): sendCancel(token) stops the call before its next sendfile(2) and
//   returns only once a sendfile(2) already running has returned, so after it no further byte of
//   this call reaches the socket (a removal or shrink of the file being sent: docs/security.md);
//   it returns the bytes the call had sent.
//   Each sendfile(2) is at most SLICE bytes, so the wait is short.
// zeroFd(size) -> fd of a memfd holding `size` zero bytes (sparse), a sendfile source for holes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

napi_value livemr_sendfile_init(napi_env env, napi_value exports);

#define SLICE (256 << 10)

// A cancel token: `mu` is held across every sendfile(2) of the calls using it, `efd` wakes a worker
// waiting in poll() for socket room.
typedef struct {
  int cancelled;  // atomic
  int64_t sent;   // guarded by mu: bytes the calls using this token have sent
  int efd;
  pthread_mutex_t mu;
} token_t;

typedef struct {
  napi_async_work work;
  token_t *token;
  napi_ref token_ref;  // keeps the token alive while the call runs
  napi_deferred deferred;
  int out_fd, in_fd;
  int64_t offset, count, sent;
  int wait_ms;
  int err;
  int eof, stalled, cancelled;
} job_t;

static void sf_execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  off_t off = (off_t)j->offset;
  token_t *t = j->token;
  while (j->sent < j->count) {
    int64_t want = j->count - j->sent;
    ssize_t n;
    if (t) {
      pthread_mutex_lock(&t->mu);
      if (__atomic_load_n(&t->cancelled, __ATOMIC_ACQUIRE)) {
        pthread_mutex_unlock(&t->mu);
        j->cancelled = 1;
        return;
      }
      n = sendfile(j->out_fd, j->in_fd, &off, (size_t)(want > SLICE ? SLICE : want));
      int e = errno;
      if (n > 0) t->sent += n;
      pthread_mutex_unlock(&t->mu);
      errno = e;
    } else {
      n = sendfile(j->out_fd, j->in_fd, &off, (size_t)(want > SLICE ? SLICE : want));
    }
    if (n > 0) {
      j->sent += n;
      continue;
    }
    if (n == 0) {
      j->eof = 1;
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      struct pollfd p[2] = {{.fd = j->out_fd, .events = POLLOUT}, {.fd = t ? t->efd : -1, .events = POLLIN}};
      int r = poll(p, 2, j->wait_ms);
      if (r == 0) {
        j->stalled = 1;
        return;
      }
      if (r < 0 && errno != EINTR) {
        j->err = errno;
        return;
      }
      continue; // writable, cancelled (checked above), or POLLERR/POLLHUP: the next sendfile reports it
    }
    j->err = errno;
    return;
  }
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

static void set_bool(napi_env env, napi_value obj, const char *name, int v) {
  napi_value x;
  napi_get_boolean(env, v != 0, &x);
  napi_set_named_property(env, obj, name, x);
}

static napi_value errno_error(napi_env env, int err, const char *what) {
  const char *name = strerrorname_np(err);
  napi_value code, msg, e;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s", what, strerror(err));
  napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &e);
  return e;
}

static void sf_complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  close(j->out_fd);
  close(j->in_fd);
  if (j->token_ref) napi_delete_reference(env, j->token_ref);
  if (status != napi_ok) j->err = ECANCELED;
  if (j->err && j->sent == 0) {
    napi_reject_deferred(env, j->deferred, errno_error(env, j->err, "sendfile"));
  } else {
    // bytes went out before an error: report them; the caller's next call sees the error
    napi_value out;
    napi_create_object(env, &out);
    set_num(env, out, "sent", (double)j->sent);
    set_bool(env, out, "eof", j->eof);
    set_bool(env, out, "stalled", j->stalled);
    set_bool(env, out, "cancelled", j->cancelled);
    napi_resolve_deferred(env, j->deferred, out);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

static void token_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  token_t *t = data;
  close(t->efd);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

static token_t *get_token(napi_env env, napi_value v) {
  napi_valuetype type;
  void *data = NULL;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external) return NULL;
  if (napi_get_value_external(env, v, &data) != napi_ok) return NULL;
  return data;
}

static napi_value js_send_token(napi_env env, napi_callback_info info) {
  (void)info;
  token_t *t = calloc(1, sizeof *t);
  if (!t) return throw_type(env, "sendToken: out of memory");
  t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->efd < 0) {
    int e = errno;
    free(t);
    napi_throw(env, errno_error(env, e, "sendToken: eventfd"));
    return NULL;
  }
  pthread_mutex_init(&t->mu, NULL);
  napi_value v;
  if (napi_create_external(env, t, token_finalize, NULL, &v) != napi_ok) {
    token_finalize(env, t, NULL);
    return throw_type(env, "sendToken: cannot create");
  }
  return v;
}

static napi_value js_send_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  token_t *t = argc >= 1 ? get_token(env, argv[0]) : NULL;
  if (!t) return throw_type(env, "sendCancel(token)");
  __atomic_store_n(&t->cancelled, 1, __ATOMIC_RELEASE);
  uint64_t one = 1;
  if (write(t->efd, &one, sizeof one) < 0) { /* already signalled (counter full): fine */ }
  // wait for a sendfile(2) in progress: after this, nothing more of the call reaches the socket
  pthread_mutex_lock(&t->mu);
  int64_t sent = t->sent;
  pthread_mutex_unlock(&t->mu);
  napi_value v;
  napi_create_double(env, (double)sent, &v);
  return v;
}

static napi_value js_send_file(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_type(env, "sendFile(outFd, inFd, offset, count, waitMs)");
  int32_t out_fd, in_fd, wait_ms;
  int64_t offset, count;
  if (napi_get_value_int32(env, argv[0], &out_fd) != napi_ok || napi_get_value_int32(env, argv[1], &in_fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &count) != napi_ok ||
      napi_get_value_int32(env, argv[4], &wait_ms) != napi_ok)
    return throw_type(env, "sendFile: arguments must be numbers");
  if (out_fd < 0 || in_fd < 0 || offset < 0 || count < 0 || wait_ms < 0) return throw_type(env, "sendFile: negative argument");
  token_t *token = NULL;
  if (argc >= 6) {
    napi_valuetype type;
    napi_typeof(env, argv[5], &type);
    if (type != napi_undefined && !(token = get_token(env, argv[5]))) return throw_type(env, "sendFile: token must come from sendToken()");
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) return throw_type(env, "sendFile: out of memory");
  j->out_fd = fcntl(out_fd, F_DUPFD_CLOEXEC, 0);
  j->in_fd = j->out_fd < 0 ? -1 : fcntl(in_fd, F_DUPFD_CLOEXEC, 0);
  if (j->in_fd < 0) {
    int e = errno;
    if (j->out_fd >= 0) close(j->out_fd);
    free(j);
    napi_throw(env, errno_error(env, e, "sendFile: dup"));
    return NULL;
  }
  if (token && napi_create_reference(env, argv[5], 1, &j->token_ref) != napi_ok) {
    close(j->out_fd);
    close(j->in_fd);
    free(j);
    return throw_type(env, "sendFile: cannot hold the token");
  }
  j->token = token;
  j->offset = offset;
  j->count = count;
  j->wait_ms = wait_ms;
  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "livemr.sendfile", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, sf_execute, sf_complete, j, &j->work);
  napi_queue_async_work(env, j->work);
  return promise;
}

static napi_value js_zero_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t size;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &size) != napi_ok || size <= 0) return throw_type(env, "zeroFd(size > 0)");
  int fd = memfd_create("livemr-zeros", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, (off_t)size) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    napi_throw(env, errno_error(env, e, "zeroFd"));
    return NULL;
  }
  napi_value v;
  napi_create_int32(env, fd, &v);
  return v;
}

napi_value livemr_sendfile_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sendFile", NULL, js_send_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroFd", NULL, js_zero_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendToken", NULL, js_send_token, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendCancel", NULL, js_send_cancel, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
