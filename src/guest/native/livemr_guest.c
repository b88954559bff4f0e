// The two things the guest helper needs that Node has no API for: the FS_IOC_FIEMAP ioctl and
// extended attributes. Synchronous on purpose: each call is one short syscall (FIEMAP_FLAG_SYNC
// writes back the file's dirty pages first, which the helper only asks for when it sends a batch).
// Errors are thrown as JS errors with `code` set to the errno name, like Node's own fs errors.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>

#define CHUNK 256          /* extents per ioctl call */
#define MAX_EXTENTS 65536  /* refuse to build larger answers: the caller asks range by range */
#define MAX_NAME 255
#define MAX_PATH 4096
#define MAX_VALUE 65536

/* The errno's name, as Node's fs errors have it. Our own table, not glibc's strerrorname_np: that
 * exists only from glibc 2.32, and the addon must load on guests back to glibc 2.28 (RHEL 8, Debian
 * 10, Ubuntu 20.04). The errnos these syscalls can return; anything else is "E<number>". */
static const char *errno_name(int err, char *buf, size_t cap) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT)
    E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY)
    E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ELOOP) E(ENODATA)
    E(EOVERFLOW) E(EOPNOTSUPP) E(EDQUOT) E(ESTALE) E(EUCLEAN)
#undef E
    default: snprintf(buf, cap, "E%d", err); return buf;
  }
}

static napi_value throw_errno(napi_env env, int err, const char *what) {
  char msg[256], name[16];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, m, e;
  napi_create_string_utf8(env, errno_name(err, name, sizeof name), NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, code, m, &e);
  napi_value errnoVal;
  napi_create_int32(env, -err, &errnoVal);
  napi_set_named_property(env, e, "errno", errnoVal);
  napi_throw(env, e);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  return argc < want ? -1 : 0;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len + 1 > cap) return -1;
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  return strlen(buf) == len ? 0 : -1; /* no embedded NUL */
}

static int get_u64(napi_env env, napi_value v, uint64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= 0) || d > 9007199254740991.0) return -1;
  *out = (uint64_t)d;
  return 0;
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  napi_create_double(env, v, &n);
  napi_set_named_property(env, obj, name, n);
}

/* fiemap(fd, flags, start, length) → [{logical, physical, length, flags}] (bytes, fs-relative) */
static napi_value fiemap(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return throw_type(env, "fiemap(fd, flags, start, length)");
  int32_t fd;
  uint32_t flags;
  uint64_t start, length;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "fd must be a descriptor");
  if (napi_get_value_uint32(env, argv[1], &flags) != napi_ok) return throw_type(env, "flags must be a number");
  if (get_u64(env, argv[2], &start) || get_u64(env, argv[3], &length)) return throw_type(env, "start/length must be safe integers");

  size_t sz = sizeof(struct fiemap) + CHUNK * sizeof(struct fiemap_extent);
  struct fiemap *fm = calloc(1, sz);
  if (!fm) return throw_errno(env, ENOMEM, "fiemap");
  napi_value result;
  napi_create_array(env, &result);
  uint32_t n = 0;
  uint64_t pos = start, end = length > UINT64_MAX - start ? UINT64_MAX : start + length;
  for (;;) {
    memset(fm, 0, sz);
    fm->fm_start = pos;
    fm->fm_length = end - pos;
    fm->fm_flags = flags;
    fm->fm_extent_count = CHUNK;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
      int err = errno;
      free(fm);
      return throw_errno(env, err, "FS_IOC_FIEMAP");
    }
    if (fm->fm_mapped_extents == 0) break;
    int last = 0;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
      struct fiemap_extent *fe = &fm->fm_extents[i];
      napi_value x;
      napi_create_object(env, &x);
      set_num(env, x, "logical", (double)fe->fe_logical);
      set_num(env, x, "physical", (double)fe->fe_physical);
      set_num(env, x, "length", (double)fe->fe_length);
      set_num(env, x, "flags", (double)fe->fe_flags);
      napi_set_element(env, result, n++, x);
      if (fe->fe_flags & FIEMAP_EXTENT_LAST) last = 1;
      pos = fe->fe_logical + fe->fe_length;
    }
    /* later calls must not sync again: the first one already wrote the range back */
    flags &= ~FIEMAP_FLAG_SYNC;
    if (last || pos >= end || n >= MAX_EXTENTS) break;
  }
  free(fm);
  return result;
}

/* generation(fd) → the inode's i_generation (FS_IOC_GETVERSION), to tell reused inode numbers apart */
static napi_value generation(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (get_args(env, info, 1, argv) || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
    return throw_type(env, "generation(fd)");
  int gen = 0;
  if (ioctl(fd, FS_IOC_GETVERSION, &gen) < 0) return throw_errno(env, errno, "FS_IOC_GETVERSION");
  napi_value v;
  napi_create_uint32(env, (uint32_t)gen, &v);
  return v;
}

static napi_value getxattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[MAX_PATH], name[MAX_NAME + 1];
  if (get_args(env, info, 2, argv) || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name))
    return throw_type(env, "getxattr(path, name)");
  char *buf = malloc(MAX_VALUE);
  if (!buf) return throw_errno(env, ENOMEM, "getxattr");
  ssize_t r = getxattr(path, name, buf, MAX_VALUE);
  if (r < 0) {
    int err = errno;
    free(buf);
    if (err == ENODATA) {
      napi_value u;
      napi_get_null(env, &u);
      return u;
    }
    return throw_errno(env, err, "getxattr");
  }
  napi_value out;
  napi_create_buffer_copy(env, (size_t)r, buf, NULL, &out);
  free(buf);
  return out;
}

static napi_value setxattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[MAX_PATH], name[MAX_NAME + 1];
  void *data;
  size_t len;
  bool isbuf;
  if (get_args(env, info, 3, argv) || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name) ||
      napi_is_buffer(env, argv[2], &isbuf) != napi_ok || !isbuf || napi_get_buffer_info(env, argv[2], &data, &len) != napi_ok ||
      len > MAX_VALUE)
    return throw_type(env, "setxattr(path, name, buffer)");
  if (setxattr(path, name, data, len, 0) < 0) return throw_errno(env, errno, "setxattr");
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value removexattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[MAX_PATH], name[MAX_NAME + 1];
  if (get_args(env, info, 2, argv) || get_string(env, argv[0], path, sizeof path) || get_string(env, argv[1], name, sizeof name))
    return throw_type(env, "removexattr(path, name)");
  if (removexattr(path, name) < 0 && errno != ENODATA) return throw_errno(env, errno, "removexattr");
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value listxattr_js(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[MAX_PATH];
  if (get_args(env, info, 1, argv) || get_string(env, argv[0], path, sizeof path)) return throw_type(env, "listxattr(path)");
  char *buf = malloc(MAX_VALUE);
  if (!buf) return throw_errno(env, ENOMEM, "listxattr");
  ssize_t r = listxattr(path, buf, MAX_VALUE);
  if (r < 0) {
    int err = errno;
    free(buf);
    return throw_errno(env, err, "listxattr");
  }
  napi_value arr;
  napi_create_array(env, &arr);
  uint32_t n = 0;
  for (ssize_t off = 0; off < r;) {
    size_t l = strnlen(buf + off, (size_t)(r - off));
    napi_value s;
    napi_create_string_utf8(env, buf + off, l, &s);
    napi_set_element(env, arr, n++, s);
    off += (ssize_t)l + 1;
  }
  free(buf);
  return arr;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"fiemap", NULL, fiemap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"generation", NULL, generation, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getxattr", NULL, getxattr_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setxattr", NULL, setxattr_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removexattr", NULL, removexattr_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listxattr", NULL, listxattr_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value v;
  napi_create_uint32(env, FIEMAP_FLAG_SYNC, &v);
  napi_set_named_property(env, exports, "FIEMAP_FLAG_SYNC", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
