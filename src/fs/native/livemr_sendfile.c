// Zero-copy send of file bytes to a socket for the WebHDFS gateway's OPEN (docs/hdfs.md, "The read
// path"): sendfile(2) from a disk image straight to the client's TCP socket, as an HDFS DataNode
// does with transferTo, instead of pread into a JavaScript buffer and write from it.
//
// sendFile(outFd, inFd, offset, count, waitMs) -> Promise<{sent, eof, stalled}>
//   runs on the libuv thread pool (a cold page cache blocks on disk there, not on the event loop).
//   Node's sockets are non-blocking: on EAGAIN the worker poll()s the socket for up to waitMs; if
//   the client has not made room by then it returns {stalled: true} with what it sent, so a slow
//   client never holds a pool thread for long (the caller sends the rest through JS streams).
//   eof: the input file ended before `count` bytes (a source shorter than its segment).
//   Both fds are dup()ed on the calling thread: if JavaScript closes the socket meanwhile, the
//   number cannot be reused by another connection while the worker writes to it.
// zeroFd(size) -> fd of a memfd holding `size` zero bytes (sparse), a sendfile source for holes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <unistd.h>

napi_value livemr_sendfile_init(napi_env env, napi_value exports);

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int out_fd, in_fd;
  int64_t offset, count, sent;
  int wait_ms;
  int err;
  int eof, stalled;
} job_t;

static void sf_execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  off_t off = (off_t)j->offset;
  while (j->sent < j->count) {
    int64_t want = j->count - j->sent;
    ssize_t n = sendfile(j->out_fd, j->in_fd, &off, (size_t)(want > 0x40000000 ? 0x40000000 : want));
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
      struct pollfd p = {.fd = j->out_fd, .events = POLLOUT};
      int r = poll(&p, 1, j->wait_ms);
      if (r == 0) {
        j->stalled = 1;
        return;
      }
      if (r < 0 && errno != EINTR) {
        j->err = errno;
        return;
      }
      continue; // writable, or POLLERR/POLLHUP: the next sendfile reports the error
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
    napi_resolve_deferred(env, j->deferred, out);
  }
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

static napi_value js_send_file(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_type(env, "sendFile(outFd, inFd, offset, count, waitMs)");
  int32_t out_fd, in_fd, wait_ms;
  int64_t offset, count;
  if (napi_get_value_int32(env, argv[0], &out_fd) != napi_ok || napi_get_value_int32(env, argv[1], &in_fd) != napi_ok ||
      napi_get_value_int64(env, argv[2], &offset) != napi_ok || napi_get_value_int64(env, argv[3], &count) != napi_ok ||
      napi_get_value_int32(env, argv[4], &wait_ms) != napi_ok)
    return throw_type(env, "sendFile: arguments must be numbers");
  if (out_fd < 0 || in_fd < 0 || offset < 0 || count < 0 || wait_ms < 0) return throw_type(env, "sendFile: negative argument");
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
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
