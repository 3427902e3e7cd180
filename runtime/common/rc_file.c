/* rc_file.c — files as the runtime writes and reads them (rein/common.h): bounded whole-file
 * reads, atomic writes (nothing already on disk is lost: temporary name, fsync, rename), mkdir -p,
 * and the monotonic clock. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rein/common.h"

char *rc_read_file(const char *path, size_t max, size_t *lenp, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    snprintf(err, errlen, "%s: is a directory", path);
    return NULL;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? 2 * cap : 8192;
      char *t = cap > max + 8192 ? NULL : realloc(text, cap);
      if (!t) {
        free(text);
        fclose(f);
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        return NULL;
      }
      text = t;
    }
    size_t k = fread(text + len, 1, cap - len - 1, f);
    len += k;
    if (k == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad || len > max) {
    free(text);
    snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "too large");
    return NULL;
  }
  text[len] = 0;
  if (lenp) *lenp = len;
  return text;
}

FILE *rc_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen) {
  if ((size_t)snprintf(tmp, tmplen, "%s.tmp.%ld", path, (long)getpid()) >= tmplen) {
    snprintf(err, errlen, "%s: path too long", path);
    return NULL;
  }
  FILE *f = fopen(tmp, "wb");
  if (!f) snprintf(err, errlen, "%s: cannot write (%s)", tmp, strerror(errno));
  return f;
}

int rc_commit_file(FILE *f, int bad, const char *tmp, const char *path, char *err, size_t errlen) {
  bad |= fflush(f) != 0;
  bad |= fsync(fileno(f)) != 0;   /* the data is on disk before the name points at it */
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path)) {
    snprintf(err, errlen, "%s: write failed (%s)", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  /* and the name is on disk: the directory entry survives a power loss */
  char dir[4200];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir) dir[1] = 0;
  else if (slash) *slash = 0;
  else snprintf(dir, sizeof dir, ".");
  return rc_fsync_dir(dir, err, errlen);
}

long rc_read_line(FILE *f, char **buf, size_t *cap, size_t max) {
  size_t n = 0;
  int ch;
  while ((ch = getc(f)) != EOF) {
    if (n + 2 > *cap) *buf = rc_realloc(*buf, *cap = *cap ? 2 * *cap : 256);
    (*buf)[n++] = (char)ch;
    if (ch == '\n') break;
    if (n > max) return -2;
  }
  if (!n) return -1;
  (*buf)[n] = 0;
  return (long)n;
}

int rc_fsync_dir(const char *dir, char *err, size_t errlen) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0 || fsync(fd) != 0) {
    snprintf(err, errlen, "%s: cannot sync the directory (%s)", dir, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

int rc_lock_dir(const char *dir, char *err, size_t errlen) {
  char path[4200];
  snprintf(path, sizeof path, "%s/lock", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    close(fd);
    if (e == EWOULDBLOCK)
      snprintf(err, errlen, "%s is in use by another run (pid %s, holding %s): wait for it to end or stop it",
               dir, pid[0] ? pid : "?", path);
    else snprintf(err, errlen, "%s: cannot lock (%s)", path, strerror(e));
    return -1;
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    snprintf(err, errlen, "%s: cannot write (%s)", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

int rc_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen) {
  char tmp[4200];
  FILE *f = rc_open_tmp(path, tmp, sizeof tmp, err, errlen);
  if (!f) return -1;
  return rc_commit_file(f, fwrite(data, 1, n, f) != n, tmp, path, err, errlen);
}

int rc_write_text(const char *path, const char *text, char *err, size_t errlen) {
  return rc_write_atomic(path, text, strlen(text), err, errlen);
}

int rc_mkdir_p(const char *path, char *err, size_t errlen) {
  /* the parents first; a failure there shows up below, on PATH itself */
  char *p = rc_strdup(path);
  for (char *q = p + 1; *q; q++)
    if (*q == '/') {
      *q = 0;
      mkdir(p, 0777);
      *q = '/';
    }
  free(p);
  if (mkdir(path, 0777) == 0 || errno == EEXIST) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    snprintf(err, errlen, "%s: exists and is not a directory", path);
    return -1;
  }
  snprintf(err, errlen, "%s: cannot create the directory: %s", path, strerror(errno));
  return -1;
}

double rc_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
