// LiveMR composed-files FUSE addon (N-API, libfuse3 low-level API).
//
// JS owns the model (names, segment lists, persistence) and hands this addon immutable tables; the
// addon serves every FUSE request on its own threads, so a busy or blocked event loop never stalls a
// reader. A table swap is a pointer swap under a per-file mutex; in-flight reads keep the version they
// started with (reference counted), except across a shrink or a removal: those wait for the reads in
// flight, so that once applied no read returns bytes of the removed range (the guest may already
// have reused its blocks). Protocol and layout: docs/fs.md.

#define FUSE_USE_VERSION 312
#define _GNU_SOURCE
#include <fuse_lowlevel.h>
#include <node_api.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ZERO_SRC UINT32_MAX      // source index of a zero-fill segment
#define XATTR_PAGE_SEGMENTS 512  // segments per user.livemr.segments.N page (< 64 KiB of text)
#define MAX_NAME 255
#define TOP_STRIDE 64            // segments per entry of the lookup's top-level index

// ---------------------------------------------------------------------------------------------
// Sources (backing files), shared between versions of a file by reference count.

typedef struct source {
  int refs;           // atomic
  int fd;             // atomic; -1 until opened (retried on read while missing)
  char *path;
} source_t;

static source_t *source_new(const char *path) {
  source_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->path = strdup(path);
  if (!s->path) { free(s); return NULL; }
  s->refs = 1;
  s->fd = open(path, O_RDONLY | O_CLOEXEC);
  return s;
}

static void source_unref(source_t *s) {
  if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  if (s->fd >= 0) close(s->fd);
  free(s->path);
  free(s);
}

// The fd of a source, opening it now if it was missing when the table was installed.
static int source_fd(source_t *s) {
  int fd = __atomic_load_n(&s->fd, __ATOMIC_ACQUIRE);
  if (fd >= 0) return fd;
  int nfd = open(s->path, O_RDONLY | O_CLOEXEC);
  if (nfd < 0) return -1;
  int expected = -1;
  if (!__atomic_compare_exchange_n(&s->fd, &expected, nfd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    close(nfd);
    return expected;
  }
  return nfd;
}

// ---------------------------------------------------------------------------------------------
// A version: one immutable segment table of a composed file.
// coff[i] is where segment i starts in the composed file, coff[n] == size (sentinel);
// segment i has length coff[i+1]-coff[i] and reads source src[i] from foff[i].

typedef struct version {
  int refs;  // atomic
  uint64_t n, size;
  uint64_t *coff;  // n + 1
  uint64_t *foff;  // n
  uint32_t *src;   // n
  uint64_t *top;   // coff[k * TOP_STRIDE] for every k: a small index that stays in cache
  uint64_t ntop;
  uint32_t nsrc;
  source_t **srcs;
  char *sources_json;  // value of user.livemr.sources
  struct timespec mtime;
  int direct_io;
  int gone;      // the file was removed: reads through handles still open fail with EIO
  size_t bytes;  // memory held by this table (for the benchmark's per-segment figure)
} version_t;

static void version_unref(version_t *v) {
  if (!v || __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (uint32_t i = 0; i < v->nsrc; i++) source_unref(v->srcs[i]);
  free(v->srcs);
  free(v->coff);
  free(v->foff);
  free(v->src);
  free(v->top);
  free(v->sources_json);
  free(v);
}

// Last index i in a[0..n) with a[i] <= pos (a[0] <= pos), branch-free halving.
static inline uint64_t last_le(const uint64_t *a, uint64_t n, uint64_t pos) {
  uint64_t lo = 0;
  while (n > 1) {
    uint64_t half = n / 2;
    lo = a[lo + half] <= pos ? lo + half : lo;
    n -= half;
  }
  return lo;
}

// Index of the segment holding composed offset pos (< size): the last i with coff[i] <= pos.
// Two levels: the top index (1/64 of the table, cache-resident for 10^6 segments) picks a block of
// 64 segments, a search inside the block (8 cache lines) finishes.
static inline uint64_t version_find(const version_t *v, uint64_t pos) {
  uint64_t k = last_le(v->top, v->ntop, pos), base = k * TOP_STRIDE;
  uint64_t len = v->n - base < TOP_STRIDE ? v->n - base : TOP_STRIDE;
  return base + last_le(v->coff + base, len, pos);
}

// ---------------------------------------------------------------------------------------------
// A slot: one name in the directory, with a stable inode number and its current version.
// Open file handles hold the slot, so a file that grows while open is read at its new size.

typedef struct slot {
  int refs;  // atomic: the directory + every open handle
  uint64_t ino;
  char name[MAX_NAME + 1];
  pthread_mutex_t mu;
  version_t *cur;  // guarded by mu
  // held shared by every read from its lookup to its reply, exclusively by a swap that shrinks or
  // removes the file (writer-preferring: a stream of reads cannot starve a removal)
  pthread_rwlock_t rw;
} slot_t;

static void slot_init_locks(slot_t *s) {
  pthread_mutex_init(&s->mu, NULL);
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&s->rw, &a);
  pthread_rwlockattr_destroy(&a);
}

static void slot_unref(slot_t *s) {
  if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  version_unref(s->cur);
  pthread_mutex_destroy(&s->mu);
  pthread_rwlock_destroy(&s->rw);
  free(s);
}

// Installs v as the slot's version and drops the old one. A shrink or removal (`exclusive`) first
// waits for the reads in flight, so none of them replies with the old table's bytes afterwards.
static void slot_swap(slot_t *s, version_t *v, int exclusive) {
  if (exclusive) pthread_rwlock_wrlock(&s->rw);
  pthread_mutex_lock(&s->mu);
  version_t *old = s->cur;
  s->cur = v;
  pthread_mutex_unlock(&s->mu);
  if (exclusive) pthread_rwlock_unlock(&s->rw);
  version_unref(old);
}

static version_t *slot_version(slot_t *s) {
  pthread_mutex_lock(&s->mu);
  version_t *v = s->cur;
  __atomic_add_fetch(&v->refs, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&s->mu);
  return v;
}

// ---------------------------------------------------------------------------------------------
// The mount.

typedef struct fsmount {
  struct fuse_session *se;
  pthread_t thread;
  char *mountpoint;
  pthread_rwlock_t dir_lock;  // guards slots / nslots / next_ino
  slot_t **slots;
  size_t nslots, cap;
  uint64_t next_ino;
  struct timespec dir_mtime;
  uid_t uid;
  gid_t gid;
  mode_t file_mode, dir_mode;
  int splice;
  double timeout;
  pthread_mutex_t life;  // guards alive (notifications must not race session teardown)
  int alive;
  napi_threadsafe_function on_exit;
  // counters (atomic)
  uint64_t reads, read_bytes, read_errors;
} fsmount_t;

static fsmount_t *fs_of(fuse_req_t req) { return fuse_req_userdata(req); }

static slot_t *dir_find_ino(fsmount_t *fs, uint64_t ino) {  // caller holds dir_lock
  for (size_t i = 0; i < fs->nslots; i++)
    if (fs->slots[i]->ino == ino) return fs->slots[i];
  return NULL;
}

static slot_t *dir_find_name(fsmount_t *fs, const char *name) {  // caller holds dir_lock
  for (size_t i = 0; i < fs->nslots; i++)
    if (strcmp(fs->slots[i]->name, name) == 0) return fs->slots[i];
  return NULL;
}

static slot_t *dir_get_ino(fsmount_t *fs, uint64_t ino) {
  pthread_rwlock_rdlock(&fs->dir_lock);
  slot_t *s = dir_find_ino(fs, ino);
  if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  pthread_rwlock_unlock(&fs->dir_lock);
  return s;
}

static void fill_dir_attr(fsmount_t *fs, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = FUSE_ROOT_ID;
  st->st_mode = S_IFDIR | fs->dir_mode;
  st->st_nlink = 2;
  st->st_uid = fs->uid;
  st->st_gid = fs->gid;
  st->st_mtim = st->st_ctim = st->st_atim = fs->dir_mtime;
  st->st_blksize = 4096;
}

static void fill_file_attr(fsmount_t *fs, uint64_t ino, const version_t *v, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  st->st_mode = S_IFREG | fs->file_mode;
  st->st_nlink = 1;
  st->st_uid = fs->uid;
  st->st_gid = fs->gid;
  st->st_size = (off_t)v->size;
  st->st_blocks = (blkcnt_t)((v->size + 511) / 512);
  st->st_blksize = 1 << 20;
  st->st_mtim = st->st_ctim = st->st_atim = v->mtime;
}

// ---------------------------------------------------------------------------------------------
// FUSE operations. Everything is answered here, on libfuse's worker threads.

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  fsmount_t *fs = userdata;
  // Content below the current size never changes: keep the page cache across size changes and
  // invalidate exactly the ranges we change (see notify_changed).
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA) conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
  if (fs->splice) conn->max_read = 524288;  // must repeat the max_read mount option
  if (fs->splice && (conn->capable & FUSE_CAP_SPLICE_WRITE)) conn->want |= FUSE_CAP_SPLICE_WRITE;
  else conn->want &= ~(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  fsmount_t *fs = fs_of(req);
  if (parent != FUSE_ROOT_ID) { fuse_reply_err(req, ENOENT); return; }
  pthread_rwlock_rdlock(&fs->dir_lock);
  slot_t *s = dir_find_name(fs, name);
  if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  pthread_rwlock_unlock(&fs->dir_lock);
  if (!s) { fuse_reply_err(req, ENOENT); return; }
  version_t *v = slot_version(s);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = s->ino;
  e.generation = 1;
  e.attr_timeout = e.entry_timeout = fs->timeout;
  fill_file_attr(fs, s->ino, v, &e.attr);
  version_unref(v);
  slot_unref(s);
  fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fsmount_t *fs = fs_of(req);
  struct stat st;
  if (ino == FUSE_ROOT_ID) {
    pthread_rwlock_rdlock(&fs->dir_lock);
    fill_dir_attr(fs, &st);
    pthread_rwlock_unlock(&fs->dir_lock);
    fuse_reply_attr(req, &st, fs->timeout);
    return;
  }
  slot_t *s;
  if (fi && fi->fh) {  // fstat on an open file, possibly already decomposed
    s = (slot_t *)(uintptr_t)fi->fh;
    __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  } else {
    s = dir_get_ino(fs, ino);
  }
  if (!s) { fuse_reply_err(req, ENOENT); return; }
  version_t *v = slot_version(s);
  fill_file_attr(fs, s->ino, v, &st);
  version_unref(v);
  slot_unref(s);
  fuse_reply_attr(req, &st, fs->timeout);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fsmount_t *fs = fs_of(req);
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) { fuse_reply_err(req, EROFS); return; }
  slot_t *s = dir_get_ino(fs, ino);
  if (!s) { fuse_reply_err(req, ENOENT); return; }
  version_t *v = slot_version(s);
  fi->direct_io = v->direct_io ? 1 : 0;
  fi->keep_cache = v->direct_io ? 0 : 1;
  version_unref(v);
  fi->fh = (uint64_t)(uintptr_t)s;  // the open handle keeps the slot's reference
  if (fuse_reply_open(req, fi) != 0) slot_unref(s);  // interrupted: release is never sent
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  slot_unref((slot_t *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

// Per-thread read buffer, freed when libfuse retires the worker thread.
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
typedef struct { size_t cap; char data[]; } tbuf_t;
static void buf_key_make(void) { pthread_key_create(&buf_key, free); }
static char *thread_buf(size_t size) {
  pthread_once(&buf_once, buf_key_make);
  tbuf_t *b = pthread_getspecific(buf_key);
  if (b && b->cap >= size) return b->data;
  free(b);
  b = malloc(sizeof *b + size);
  if (!b) { pthread_setspecific(buf_key, NULL); return NULL; }
  b->cap = size;
  pthread_setspecific(buf_key, b);
  return b->data;
}

// Copy composed bytes [off, off+size) of v into dst. 0, or an errno for the whole request.
static int read_composed(const version_t *v, char *dst, size_t size, uint64_t off) {
  uint64_t i = version_find(v, off);
  size_t done = 0;
  while (done < size) {
    uint64_t pos = off + done;
    while (v->coff[i + 1] <= pos) i++;
    uint64_t in_seg = pos - v->coff[i];
    size_t n = (size_t)(v->coff[i + 1] - pos);
    if (n > size - done) n = size - done;
    if (v->src[i] == ZERO_SRC) {
      memset(dst + done, 0, n);
    } else {
      int fd = source_fd(v->srcs[v->src[i]]);
      if (fd < 0) return EIO;
      size_t got = 0;
      while (got < n) {
        ssize_t r = pread(fd, dst + done + got, n - got, (off_t)(v->foff[i] + in_seg + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return EIO;  // unreadable or shorter than its segments
        got += (size_t)r;
      }
    }
    done += n;
  }
  return 0;
}

static char zero_page[1 << 16];

// Splice path: a buffer vector of (fd, offset) pieces that libfuse splices into /dev/fuse.
// Replies itself; returns 0 or the errno the request failed with.
static int reply_spliced(fuse_req_t req, const version_t *v, size_t size, uint64_t off) {
  uint64_t first = version_find(v, off), last = version_find(v, off + size - 1);
  size_t count = 0;  // pieces: one per segment, zero segments in zero_page-sized chunks
  for (uint64_t i = first; i <= last; i++) {
    uint64_t a = v->coff[i] > off ? v->coff[i] : off;
    uint64_t b = v->coff[i + 1] < off + size ? v->coff[i + 1] : off + size;
    count += v->src[i] == ZERO_SRC ? (size_t)((b - a + sizeof zero_page - 1) / sizeof zero_page) : 1;
  }
  struct fuse_bufvec *bv = calloc(1, sizeof *bv + count * sizeof(struct fuse_buf));
  if (!bv) { fuse_reply_err(req, ENOMEM); return ENOMEM; }
  bv->count = count;
  size_t k = 0;
  for (uint64_t i = first; i <= last; i++) {
    uint64_t a = v->coff[i] > off ? v->coff[i] : off;
    uint64_t b = v->coff[i + 1] < off + size ? v->coff[i + 1] : off + size;
    if (v->src[i] == ZERO_SRC) {
      for (uint64_t p = a; p < b; p += sizeof zero_page) {
        uint64_t n = b - p < sizeof zero_page ? b - p : sizeof zero_page;
        bv->buf[k++] = (struct fuse_buf){.size = (size_t)n, .mem = zero_page};
      }
      continue;
    }
    int fd = source_fd(v->srcs[v->src[i]]);
    struct stat st;
    uint64_t start = v->foff[i] + (a - v->coff[i]);
    // splice would silently send a short reply for a short file: check the length first
    if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size < start + (b - a)) {
      free(bv);
      fuse_reply_err(req, EIO);
      return EIO;
    }
    bv->buf[k++] = (struct fuse_buf){
        .size = (size_t)(b - a), .flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK, .fd = fd, .pos = (off_t)start};
  }
  int r = fuse_reply_data(req, bv, (enum fuse_buf_copy_flags)0);  // answers the request in every case
  free(bv);
  return r < 0 ? -r : 0;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  fsmount_t *fs = fs_of(req);
  slot_t *s = (slot_t *)(uintptr_t)fi->fh;
  pthread_rwlock_rdlock(&s->rw);  // until the reply is written (see slot_swap)
  version_t *v = slot_version(s);
  __atomic_add_fetch(&fs->reads, 1, __ATOMIC_RELAXED);
  if (v->gone) {
    version_unref(v);
    pthread_rwlock_unlock(&s->rw);
    __atomic_add_fetch(&fs->read_errors, 1, __ATOMIC_RELAXED);
    fuse_reply_err(req, EIO);
    return;
  }
  if (off < 0 || (uint64_t)off >= v->size || size == 0) {
    version_unref(v);
    pthread_rwlock_unlock(&s->rw);
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  if ((uint64_t)off + size > v->size) size = (size_t)(v->size - (uint64_t)off);
  int err;
  if (fs->splice) {
    err = reply_spliced(req, v, size, (uint64_t)off);
  } else {
    char *buf = thread_buf(size);
    err = buf ? read_composed(v, buf, size, (uint64_t)off) : ENOMEM;
    if (err) fuse_reply_err(req, err);
    else fuse_reply_buf(req, buf, size);
  }
  version_unref(v);
  pthread_rwlock_unlock(&s->rw);
  if (err) __atomic_add_fetch(&fs->read_errors, 1, __ATOMIC_RELAXED);
  else __atomic_add_fetch(&fs->read_bytes, size, __ATOMIC_RELAXED);
}

typedef struct { size_t n; struct { uint64_t ino; char name[MAX_NAME + 1]; } e[]; } dirsnap_t;

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  fsmount_t *fs = fs_of(req);
  if (ino != FUSE_ROOT_ID) { fuse_reply_err(req, ENOTDIR); return; }
  pthread_rwlock_rdlock(&fs->dir_lock);
  dirsnap_t *d = malloc(sizeof *d + fs->nslots * sizeof d->e[0]);
  if (d) {
    d->n = fs->nslots;
    for (size_t i = 0; i < fs->nslots; i++) {
      d->e[i].ino = fs->slots[i]->ino;
      memcpy(d->e[i].name, fs->slots[i]->name, sizeof d->e[i].name);
    }
  }
  pthread_rwlock_unlock(&fs->dir_lock);
  if (!d) { fuse_reply_err(req, ENOMEM); return; }
  fi->fh = (uint64_t)(uintptr_t)d;  // a snapshot keeps offsets stable while files come and go
  fi->cache_readdir = 0;
  if (fuse_reply_open(req, fi) != 0) free(d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  dirsnap_t *d = (dirsnap_t *)(uintptr_t)fi->fh;
  char *buf = malloc(size);
  if (!buf) { fuse_reply_err(req, ENOMEM); return; }
  size_t used = 0;
  for (size_t i = (size_t)off; i < d->n + 2; i++) {
    struct stat st = {0};
    const char *name;
    if (i == 0) { name = "."; st.st_ino = FUSE_ROOT_ID; st.st_mode = S_IFDIR; }
    else if (i == 1) { name = ".."; st.st_ino = FUSE_ROOT_ID; st.st_mode = S_IFDIR; }
    else { name = d->e[i - 2].name; st.st_ino = d->e[i - 2].ino; st.st_mode = S_IFREG; }
    size_t need = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    if (need > size - used) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  free((void *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static int reply_xattr_value(fuse_req_t req, const char *val, size_t len, size_t size) {
  if (size == 0) return fuse_reply_xattr(req, len);
  if (size < len) return fuse_reply_err(req, ERANGE);
  return fuse_reply_buf(req, val, len);
}

// One page of the segment list: "COMPOSED_OFFSET SOURCE FILE_OFFSET LENGTH\n", SOURCE "-" for zeros.
static char *format_segment_page(const version_t *v, uint64_t page, size_t *len) {
  uint64_t a = page * XATTR_PAGE_SEGMENTS, b = a + XATTR_PAGE_SEGMENTS;
  if (b > v->n) b = v->n;
  size_t cap = (size_t)(b - a) * 80 + 1, used = 0;
  char *out = malloc(cap);
  if (!out) return NULL;
  for (uint64_t i = a; i < b; i++) {
    char src[16];
    if (v->src[i] == ZERO_SRC) strcpy(src, "-");
    else snprintf(src, sizeof src, "%u", v->src[i]);
    used += (size_t)snprintf(out + used, cap - used, "%llu %s %llu %llu\n", (unsigned long long)v->coff[i], src,
                             (unsigned long long)(v->src[i] == ZERO_SRC ? 0 : v->foff[i]),
                             (unsigned long long)(v->coff[i + 1] - v->coff[i]));
  }
  *len = used;
  return out;
}

static uint64_t segment_pages(const version_t *v) { return (v->n + XATTR_PAGE_SEGMENTS - 1) / XATTR_PAGE_SEGMENTS; }

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  fsmount_t *fs = fs_of(req);
  slot_t *s = ino == FUSE_ROOT_ID ? NULL : dir_get_ino(fs, ino);
  if (!s) { fuse_reply_err(req, ino == FUSE_ROOT_ID ? ENODATA : ENOENT); return; }
  version_t *v = slot_version(s);
  char num[32];
  const char *pfx = "user.livemr.segments.";
  if (strcmp(name, "user.livemr.sources") == 0) {
    reply_xattr_value(req, v->sources_json, strlen(v->sources_json), size);
  } else if (strcmp(name, "user.livemr.segment_count") == 0) {
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v->n);
    reply_xattr_value(req, num, (size_t)n, size);
  } else if (strcmp(name, "user.livemr.segment_pages") == 0) {
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)segment_pages(v));
    reply_xattr_value(req, num, (size_t)n, size);
  } else if (strncmp(name, pfx, strlen(pfx)) == 0) {
    const char *p = name + strlen(pfx);
    char *end;
    errno = 0;
    unsigned long long page = strtoull(p, &end, 10);
    if (*p < '0' || *p > '9' || *end || errno || page >= segment_pages(v)) {
      fuse_reply_err(req, ENODATA);
    } else {
      size_t len;
      char *text = format_segment_page(v, page, &len);
      if (!text) fuse_reply_err(req, ENOMEM);
      else reply_xattr_value(req, text, len, size);
      free(text);
    }
  } else {
    fuse_reply_err(req, ENODATA);
  }
  version_unref(v);
  slot_unref(s);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  // The pages beyond the first are not listed (there can be thousands); segment_pages says how many.
  static const char names[] = "user.livemr.sources\0user.livemr.segment_count\0user.livemr.segment_pages\0"
                              "user.livemr.segments.0";
  if (ino == FUSE_ROOT_ID) { reply_xattr_value(req, "", 0, size); return; }
  reply_xattr_value(req, names, sizeof names, size);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  fsmount_t *fs = fs_of(req);
  struct statvfs st = {0};
  st.f_bsize = st.f_frsize = 4096;
  st.f_namemax = MAX_NAME;
  pthread_rwlock_rdlock(&fs->dir_lock);
  st.f_files = fs->nslots + 1;
  pthread_rwlock_unlock(&fs->dir_lock);
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

// Every modifying operation: the mount is read-only (it is also mounted `ro`, so most never arrive).
static void op_rofs_setattr(fuse_req_t r, fuse_ino_t i, struct stat *a, int t, struct fuse_file_info *f) {
  (void)i; (void)a; (void)t; (void)f; fuse_reply_err(r, EROFS);
}
static void op_rofs_entry(fuse_req_t r, fuse_ino_t p, const char *n) { (void)p; (void)n; fuse_reply_err(r, EROFS); }
static void op_rofs_mkdir(fuse_req_t r, fuse_ino_t p, const char *n, mode_t m) { (void)p; (void)n; (void)m; fuse_reply_err(r, EROFS); }
static void op_rofs_mknod(fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, dev_t d) {
  (void)p; (void)n; (void)m; (void)d; fuse_reply_err(r, EROFS);
}
static void op_rofs_create(fuse_req_t r, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *f) {
  (void)p; (void)n; (void)m; (void)f; fuse_reply_err(r, EROFS);
}
static void op_rofs_rename(fuse_req_t r, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn, unsigned int fl) {
  (void)p; (void)n; (void)np; (void)nn; (void)fl; fuse_reply_err(r, EROFS);
}
static void op_rofs_write(fuse_req_t r, fuse_ino_t i, const char *b, size_t s, off_t o, struct fuse_file_info *f) {
  (void)i; (void)b; (void)s; (void)o; (void)f; fuse_reply_err(r, EROFS);
}
static void op_rofs_symlink(fuse_req_t r, const char *l, fuse_ino_t p, const char *n) { (void)l; (void)p; (void)n; fuse_reply_err(r, EROFS); }
static void op_rofs_link(fuse_req_t r, fuse_ino_t i, fuse_ino_t p, const char *n) { (void)i; (void)p; (void)n; fuse_reply_err(r, EROFS); }
static void op_rofs_setxattr(fuse_req_t r, fuse_ino_t i, const char *n, const char *v, size_t s, int f) {
  (void)i; (void)n; (void)v; (void)s; (void)f; fuse_reply_err(r, EROFS);
}
static void op_rofs_removexattr(fuse_req_t r, fuse_ino_t i, const char *n) { (void)i; (void)n; fuse_reply_err(r, EROFS); }

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .getattr = op_getattr,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .statfs = op_statfs,
    .setattr = op_rofs_setattr,
    .unlink = op_rofs_entry,
    .rmdir = op_rofs_entry,
    .mkdir = op_rofs_mkdir,
    .mknod = op_rofs_mknod,
    .create = op_rofs_create,
    .rename = op_rofs_rename,
    .write = op_rofs_write,
    .symlink = op_rofs_symlink,
    .link = op_rofs_link,
    .setxattr = op_rofs_setxattr,
    .removexattr = op_rofs_removexattr,
};

// ---------------------------------------------------------------------------------------------
// N-API glue.

#define CHECK(env, call)                                   \
  do {                                                     \
    if ((call) != napi_ok) {                               \
      napi_throw_error((env), "ELIVEMR_NAPI", #call);      \
      return NULL;                                         \
    }                                                      \
  } while (0)

static napi_value throw_err(napi_env env, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static napi_value throw_err(napi_env env, const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  napi_throw_error(env, code, msg);
  return NULL;
}

static int get_prop(napi_env env, napi_value obj, const char *key, napi_value *out) {
  bool has = false;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return 0;
  return napi_get_named_property(env, obj, key, out) == napi_ok;
}

static double get_num(napi_env env, napi_value obj, const char *key, double dflt) {
  napi_value v;
  double d;
  if (!get_prop(env, obj, key, &v) || napi_get_value_double(env, v, &d) != napi_ok) return dflt;
  return d;
}

static bool get_bool(napi_env env, napi_value obj, const char *key) {
  napi_value v;
  bool b = false;
  if (get_prop(env, obj, key, &v)) napi_get_value_bool(env, v, &b);
  return b;
}

static char *get_string(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s) napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

// Typed array of the given type and at least `n` elements, or NULL.
static void *get_typed(napi_env env, napi_value obj, const char *key, napi_typedarray_type want, size_t n) {
  napi_value v;
  bool is;
  napi_typedarray_type t;
  size_t len;
  void *data;
  if (!get_prop(env, obj, key, &v) || napi_is_typedarray(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_typedarray_info(env, v, &t, &len, &data, NULL, NULL) != napi_ok || t != want || len < n) return NULL;
  return data;
}

// Build a version from a JS table description:
// { n, size, mtimeMs, directIo, sources: string[], sourcesJson, coff: Float64Array(n),
//   foff: Float64Array(n), src: Uint32Array(n) }. Offsets are exact integers below 2^53.
// `prev` (may be NULL) lends its open sources to paths it shares.
static version_t *version_from_js(napi_env env, napi_value desc, const version_t *prev, const char **why) {
  double nd = get_num(env, desc, "n", -1), size = get_num(env, desc, "size", -1);
  if (nd < 0 || nd != (double)(uint64_t)nd || size < 0) { *why = "n and size must be non-negative integers"; return NULL; }
  uint64_t n = (uint64_t)nd;
  double *coff = get_typed(env, desc, "coff", napi_float64_array, n);
  double *foff = get_typed(env, desc, "foff", napi_float64_array, n);
  uint32_t *src = get_typed(env, desc, "src", napi_uint32_array, n);
  napi_value sources, json;
  bool is_arr = false;
  uint32_t nsrc = 0;
  if ((n && (!coff || !foff || !src)) || !get_prop(env, desc, "sources", &sources) ||
      napi_is_array(env, sources, &is_arr) != napi_ok || !is_arr || napi_get_array_length(env, sources, &nsrc) != napi_ok ||
      !get_prop(env, desc, "sourcesJson", &json)) {
    *why = "malformed table (coff/foff/src typed arrays, sources, sourcesJson)";
    return NULL;
  }
  // validate before allocating anything per segment
  uint64_t end = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (coff[i] != (double)end || !(foff[i] >= 0) || (src[i] != ZERO_SRC && src[i] >= nsrc)) {
      *why = "segments must be contiguous from 0, with valid sources and offsets";
      return NULL;
    }
    double next = (i + 1 < n) ? coff[i + 1] : size;
    if (!(next > coff[i])) { *why = "segments must have positive lengths and end at size"; return NULL; }
    end = (uint64_t)next;
  }
  if (n == 0 && size != 0) { *why = "an empty table has size 0"; return NULL; }
  version_t *v = calloc(1, sizeof *v);
  if (!v) { *why = "out of memory"; return NULL; }
  v->refs = 1;
  v->n = n;
  v->size = (uint64_t)size;
  v->coff = malloc((n + 1) * sizeof *v->coff);
  v->foff = malloc((n ? n : 1) * sizeof *v->foff);
  v->src = malloc((n ? n : 1) * sizeof *v->src);
  v->srcs = calloc(nsrc ? nsrc : 1, sizeof *v->srcs);
  v->sources_json = get_string(env, json);
  if (!v->coff || !v->foff || !v->src || !v->srcs || !v->sources_json) { version_unref(v); *why = "out of memory"; return NULL; }
  for (uint64_t i = 0; i < n; i++) {
    v->coff[i] = (uint64_t)coff[i];
    v->foff[i] = (uint64_t)foff[i];
    v->src[i] = src[i];
  }
  v->coff[n] = v->size;
  v->ntop = n ? (n + TOP_STRIDE - 1) / TOP_STRIDE : 1;
  v->top = malloc(v->ntop * sizeof *v->top);
  if (!v->top) { version_unref(v); *why = "out of memory"; return NULL; }
  for (uint64_t k = 0; k < v->ntop; k++) v->top[k] = n ? v->coff[k * TOP_STRIDE] : 0;
  v->bytes = sizeof *v + (n + 1) * 8 + n * 8 + n * 4 + v->ntop * 8;
  for (uint32_t k = 0; k < nsrc; k++) {
    napi_value e;
    char *path = NULL;
    if (napi_get_element(env, sources, k, &e) == napi_ok) path = get_string(env, e);
    if (!path) { version_unref(v); *why = "sources must be strings"; return NULL; }
    source_t *s = NULL;
    for (uint32_t j = 0; prev && j < prev->nsrc; j++)
      if (strcmp(prev->srcs[j]->path, path) == 0) {
        s = prev->srcs[j];
        __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
        break;
      }
    if (!s) s = source_new(path);
    free(path);
    if (!s) { version_unref(v); *why = "out of memory"; return NULL; }
    v->srcs[k] = s;
    v->nsrc = k + 1;
  }
  double ms = get_num(env, desc, "mtimeMs", 0);
  v->mtime.tv_sec = (time_t)(ms / 1000);
  v->mtime.tv_nsec = (long)((ms - (double)v->mtime.tv_sec * 1000) * 1e6);
  v->direct_io = get_bool(env, desc, "directIo");
  return v;
}

static fsmount_t *get_mount(napi_env env, napi_value v) {
  fsmount_t *fs = NULL;
  if (napi_get_value_external(env, v, (void **)&fs) != napi_ok) return NULL;
  return fs;
}

static void call_on_exit(napi_env env, napi_value js_cb, void *ctx, void *data) {
  (void)ctx;
  if (!env || !js_cb) return;
  napi_value arg, undef;
  napi_create_int32(env, (int32_t)(intptr_t)data, &arg);
  napi_get_undefined(env, &undef);
  napi_call_function(env, undef, js_cb, 1, &arg, NULL);
}

static void *loop_main(void *arg) {
  fsmount_t *fs = arg;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_clone_fd(cfg, 1);
  fuse_loop_cfg_set_idle_threads(cfg, 8);
  fuse_loop_cfg_set_max_threads(cfg, 16);
  int rc = fuse_session_loop_mt(fs->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  pthread_mutex_lock(&fs->life);
  fs->alive = 0;
  fuse_session_unmount(fs->se);  // no-op when already detached; closes the device fd
  fuse_session_destroy(fs->se);
  fs->se = NULL;
  pthread_mutex_unlock(&fs->life);
  napi_call_threadsafe_function(fs->on_exit, (void *)(intptr_t)rc, napi_tsfn_blocking);
  napi_release_threadsafe_function(fs->on_exit, napi_tsfn_release);
  return NULL;
}

// mount(mountpoint, {uid, gid, fileMode, dirMode, allowOther, splice, timeout, debug}, onExit(rc))
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_err(env, "ELIVEMR_ARGS", "mount(mountpoint, options, onExit)");
  char *mp = get_string(env, argv[0]);
  if (!mp) return throw_err(env, "ELIVEMR_ARGS", "mountpoint must be a string");
  fsmount_t *fs = calloc(1, sizeof *fs);
  if (!fs) { free(mp); return throw_err(env, "ENOMEM", "out of memory"); }
  fs->mountpoint = mp;
  fs->uid = (uid_t)get_num(env, argv[1], "uid", getuid());
  fs->gid = (gid_t)get_num(env, argv[1], "gid", getgid());
  fs->file_mode = (mode_t)get_num(env, argv[1], "fileMode", 0440);
  fs->dir_mode = (mode_t)get_num(env, argv[1], "dirMode", 0550);
  fs->timeout = get_num(env, argv[1], "timeout", 1.0);
  fs->splice = get_bool(env, argv[1], "splice");
  fs->next_ino = 2;
  clock_gettime(CLOCK_REALTIME, &fs->dir_mtime);
  pthread_rwlock_init(&fs->dir_lock, NULL);
  pthread_mutex_init(&fs->life, NULL);

  char opts[256];
  // splice replies must fit one pipe (pipe-max-size, 1 MiB by default, holds the header too) or
  // libfuse silently falls back to copying: keep spliced requests at 512 KiB
  snprintf(opts, sizeof opts, "ro,default_permissions,fsname=livemr,subtype=livemr%s%s",
           get_bool(env, argv[1], "allowOther") ? ",allow_other" : "", fs->splice ? ",max_read=524288" : "");
  char *args_v[] = {"livemr", "-o", opts, get_bool(env, argv[1], "debug") ? "-d" : NULL, NULL};
  struct fuse_args args = FUSE_ARGS_INIT(args_v[3] ? 4 : 3, args_v);
  fs->se = fuse_session_new(&args, &ops, sizeof ops, fs);
  if (!fs->se) goto fail_new;
  if (fuse_session_mount(fs->se, mp) != 0) {
    fuse_session_destroy(fs->se);
    goto fail_new;
  }
  napi_value name;
  napi_create_string_utf8(env, "livemr-fuse-exit", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, call_on_exit, &fs->on_exit) != napi_ok)
    goto fail_mounted;
  napi_unref_threadsafe_function(env, fs->on_exit);  // the mount alone does not keep node alive
  fs->alive = 1;
  if (pthread_create(&fs->thread, NULL, loop_main, fs) != 0) {
    fs->alive = 0;
    napi_release_threadsafe_function(fs->on_exit, napi_tsfn_abort);
    goto fail_mounted;
  }
  pthread_detach(fs->thread);  // never joined: a join would wait for open files to close
  napi_value ext;
  CHECK(env, napi_create_external(env, fs, NULL, NULL, &ext));  // lives as long as the process
  return ext;

fail_mounted:
  fuse_session_unmount(fs->se);
  fuse_session_destroy(fs->se);
fail_new:
  throw_err(env, "ELIVEMR_MOUNT", "cannot mount FUSE at %s (an existing directory, not mounted yet, /dev/fuse usable?)", mp);
  free(mp);
  free(fs);
  return NULL;
}

// Tell the kernel what changed. Called on the JS thread, never inside a FUSE request.
static void notify(fsmount_t *fs, uint64_t ino, int64_t inval_from, const char *removed_name) {
  pthread_mutex_lock(&fs->life);
  if (fs->alive) {
    if (removed_name) {
      fuse_lowlevel_notify_inval_entry(fs->se, FUSE_ROOT_ID, removed_name, strlen(removed_name));
    } else if (inval_from >= 0) {
      // from the page holding the first changed byte to the end; attributes are refreshed too
      fuse_lowlevel_notify_inval_inode(fs->se, ino, (off_t)(inval_from & ~(int64_t)4095), 0);
    }
    fuse_lowlevel_notify_inval_inode(fs->se, FUSE_ROOT_ID, -1, 0);
  }
  pthread_mutex_unlock(&fs->life);
}

// setFile(mount, name, table, invalFrom) -> inode number. invalFrom: first composed offset whose
// content changed (old size for growth, new size for truncation), or -1.
static napi_value js_set_file(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fsmount_t *fs = argc >= 4 ? get_mount(env, argv[0]) : NULL;
  if (!fs) return throw_err(env, "ELIVEMR_ARGS", "setFile(mount, name, table, invalFrom)");
  char name[MAX_NAME + 1];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok || len == 0 || len >= MAX_NAME ||
      strchr(name, '/'))
    return throw_err(env, "ELIVEMR_ARGS", "bad file name");
  double inval_from = -1;
  napi_get_value_double(env, argv[3], &inval_from);

  pthread_rwlock_rdlock(&fs->dir_lock);
  slot_t *s = dir_find_name(fs, name);
  if (s) __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
  pthread_rwlock_unlock(&fs->dir_lock);
  version_t *prev = s ? slot_version(s) : NULL;
  const char *why = NULL;
  version_t *v = version_from_js(env, argv[2], prev, &why);
  version_unref(prev);
  if (!v) {
    slot_unref(s);
    return throw_err(env, "ELIVEMR_TABLE", "%s: %s", name, why);
  }
  uint64_t ino;
  if (s) {
    pthread_mutex_lock(&s->mu);
    int shrinks = v->size < s->cur->size;
    pthread_mutex_unlock(&s->mu);  // only this (JS) thread swaps, so cur cannot change meanwhile
    slot_swap(s, v, shrinks);
    ino = s->ino;
    slot_unref(s);
    notify(fs, ino, (int64_t)inval_from, NULL);
  } else {
    s = calloc(1, sizeof *s);
    if (!s) { version_unref(v); return throw_err(env, "ENOMEM", "out of memory"); }
    memcpy(s->name, name, len + 1);
    s->refs = 1;
    s->cur = v;
    slot_init_locks(s);
    pthread_rwlock_wrlock(&fs->dir_lock);
    if (fs->nslots == fs->cap) {
      size_t cap = fs->cap ? fs->cap * 2 : 16;
      slot_t **grown = realloc(fs->slots, cap * sizeof *grown);
      if (!grown) {
        pthread_rwlock_unlock(&fs->dir_lock);
        slot_unref(s);
        return throw_err(env, "ENOMEM", "out of memory");
      }
      fs->slots = grown;
      fs->cap = cap;
    }
    s->ino = ino = fs->next_ino++;  // never reused, so a stale kernel inode cannot alias a new file
    fs->slots[fs->nslots++] = s;
    clock_gettime(CLOCK_REALTIME, &fs->dir_mtime);
    pthread_rwlock_unlock(&fs->dir_lock);
    notify(fs, ino, -1, NULL);
  }
  napi_value out;
  napi_create_double(env, (double)ino, &out);
  return out;
}

// removeFile(mount, name) -> boolean
static napi_value js_remove_file(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fsmount_t *fs = argc >= 2 ? get_mount(env, argv[0]) : NULL;
  char name[MAX_NAME + 1];
  size_t len;
  if (!fs || napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) != napi_ok)
    return throw_err(env, "ELIVEMR_ARGS", "removeFile(mount, name)");
  slot_t *s = NULL;
  pthread_rwlock_wrlock(&fs->dir_lock);
  for (size_t i = 0; i < fs->nslots; i++)
    if (strcmp(fs->slots[i]->name, name) == 0) {
      s = fs->slots[i];
      fs->slots[i] = fs->slots[--fs->nslots];
      break;
    }
  if (s) clock_gettime(CLOCK_REALTIME, &fs->dir_mtime);
  pthread_rwlock_unlock(&fs->dir_lock);
  if (s) {
    // handles still open read EIO from now on: their slot gets an empty version marked gone
    version_t *gone = calloc(1, sizeof *gone);
    if (gone) gone->coff = calloc(1, sizeof *gone->coff);
    if (gone) gone->sources_json = strdup("[]");
    if (gone && gone->coff && gone->sources_json) {
      gone->refs = 1;
      gone->gone = 1;
      slot_swap(s, gone, 1);
    } else {
      // out of memory: cut the old table to nothing in place instead, under the same exclusion
      version_unref(gone);
      pthread_rwlock_wrlock(&s->rw);
      pthread_mutex_lock(&s->mu);
      s->cur->size = 0;
      s->cur->gone = 1;
      pthread_mutex_unlock(&s->mu);
      pthread_rwlock_unlock(&s->rw);
    }
    notify(fs, s->ino, 0, NULL);  // drop the kernel's cached pages and size of the open inode
    notify(fs, s->ino, -1, name);
    slot_unref(s);
  }
  napi_value out;
  napi_get_boolean(env, s != NULL, &out);
  return out;
}

// unmount(mount) -> 0 or errno. Lazy: the mount leaves the namespace now; the session ends (and
// onExit fires) once no file is open any more. Non-root callers fall back to `fusermount3 -uz`.
static napi_value js_unmount(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fsmount_t *fs = argc >= 1 ? get_mount(env, argv[0]) : NULL;
  if (!fs) return throw_err(env, "ELIVEMR_ARGS", "unmount(mount)");
  int rc = umount2(fs->mountpoint, MNT_DETACH) == 0 ? 0 : errno;
  napi_value out;
  napi_create_int32(env, rc, &out);
  return out;
}

// stats(mount) -> { reads, readBytes, readErrors, files }
static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  fsmount_t *fs = argc >= 1 ? get_mount(env, argv[0]) : NULL;
  if (!fs) return throw_err(env, "ELIVEMR_ARGS", "stats(mount)");
  napi_create_object(env, &out);
  napi_create_double(env, (double)__atomic_load_n(&fs->reads, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, out, "reads", v);
  napi_create_double(env, (double)__atomic_load_n(&fs->read_bytes, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, out, "readBytes", v);
  napi_create_double(env, (double)__atomic_load_n(&fs->read_errors, __ATOMIC_RELAXED), &v);
  napi_set_named_property(env, out, "readErrors", v);
  return out;
}

static inline uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

// benchLookup(table, positions: Float64Array, batch) -> { medianNs, meanNs, tableBytes, checksum }
// Times the read path's own lookup (version_find) in batches of `batch` random positions.
static napi_value js_bench_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *why = NULL;
  if (argc < 3) return throw_err(env, "ELIVEMR_ARGS", "benchLookup(table, positions, batch)");
  version_t *v = version_from_js(env, argv[0], NULL, &why);
  if (!v) return throw_err(env, "ELIVEMR_TABLE", "%s", why);
  napi_typedarray_type t;
  size_t np = 0;
  void *data = NULL;
  uint32_t batch = 1;
  napi_get_value_uint32(env, argv[2], &batch);
  if (napi_get_typedarray_info(env, argv[1], &t, &np, &data, NULL, NULL) != napi_ok || t != napi_float64_array ||
      batch == 0 || np < batch || v->size == 0) {
    version_unref(v);
    return throw_err(env, "ELIVEMR_ARGS", "positions must be a Float64Array of at least `batch` offsets");
  }
  const double *pos = data;
  size_t nb = np / batch;
  double *per = malloc(nb * sizeof *per);
  if (!per) { version_unref(v); return throw_err(env, "ENOMEM", "out of memory"); }
  uint64_t sum = 0, total = 0;
  for (size_t b = 0; b < nb; b++) {
    uint64_t t0 = now_ns();
    for (uint32_t k = 0; k < batch; k++) sum += version_find(v, (uint64_t)pos[b * batch + k] % v->size);
    uint64_t dt = now_ns() - t0;
    total += dt;
    per[b] = (double)dt / batch;
  }
  qsort(per, nb, sizeof *per, cmp_double);
  napi_value out, x;
  napi_create_object(env, &out);
  napi_create_double(env, per[nb / 2], &x);
  napi_set_named_property(env, out, "medianNs", x);
  napi_create_double(env, (double)total / (double)(nb * batch), &x);
  napi_set_named_property(env, out, "meanNs", x);
  napi_create_double(env, (double)v->bytes, &x);
  napi_set_named_property(env, out, "tableBytes", x);
  napi_create_double(env, (double)sum, &x);
  napi_set_named_property(env, out, "checksum", x);
  free(per);
  version_unref(v);
  return out;
}

napi_value livemr_sendfile_init(napi_env env, napi_value exports); // livemr_sendfile.c

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setFile", NULL, js_set_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"removeFile", NULL, js_remove_file, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unmount", NULL, js_unmount, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"benchLookup", NULL, js_bench_lookup, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  livemr_sendfile_init(env, exports);
  return exports;
}

NAPI_MODULE(livemr_fuse, init)
