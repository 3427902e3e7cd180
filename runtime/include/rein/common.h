/* rein/common.h — the runtime's common layer (library reincommon, runtime/common/): what every
 * other runtime library needs and none of them owns.
 *
 *   files       whole-file reads with a size cap; atomic writes (temporary name, fsync, rename,
 *               fsync of the directory); mkdir -p; an exclusive lock on a run directory
 *   memory      checked allocation: the one out-of-memory policy
 *   checksums   XXH3-64 of a file (xxHash), for checkpoints
 *   time        a monotonic clock
 *
 * Error convention (the whole runtime's): a function that can fail returns -1 or NULL and writes
 * one line into the caller's buffer (ERR, ERRLEN) that names the file and what is wrong; nothing
 * here prints, except the out-of-memory policy below.
 *
 * Out-of-memory policy: allocations whose size is a small, fixed function of the program go
 * through rc_malloc / rc_calloc / rc_realloc / rc_strdup, which print "rein: out of memory
 * (N bytes)" and exit with status 3 when the allocator fails — there is nothing useful a caller
 * could do instead.  Sizes that come from input (a batch, a model, options) are checked against
 * limits before allocating, and reported through the caller's error buffer.
 */
#ifndef REIN_COMMON_H
#define REIN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "random.h"

/* --- memory */
void *rc_malloc(size_t n);
void *rc_calloc(size_t n, size_t size);
/* rc_calloc, 64-byte aligned (a cache line); free() releases it */
void *rc_calloc_lines(size_t n, size_t size);
void *rc_realloc(void *p, size_t n);
char *rc_strdup(const char *s);
/* Exit statuses every command shares: 0 done, 1 an error in the input or the run, 2 a bad command
 * line, RC_EXIT_OOM out of memory, RC_EXIT_NONFINITE a computation finished but its printed result
 * holds NaN or an infinity (`rein eval`, `rein model logprobs|generate`: printed as "nan", "inf",
 * "-inf", and said on stderr). */
#define RC_EXIT_OOM 3
#define RC_EXIT_NONFINITE 4

/* --- files */
/* The whole file at PATH as a NUL-terminated string (its length in *LEN when LEN is not NULL);
 * NULL with ERR when it cannot be read or is larger than MAX bytes. */
char *rc_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);
/* Finish a file written to TMP: flush, fsync and close F, then rename TMP to PATH; or remove TMP
 * and report the error when anything failed (BAD: an earlier write failed).  0 or -1 with ERR. */
int rc_commit_file(FILE *f, int bad, const char *tmp, const char *path, char *err, size_t errlen);
/* Open PATH.tmp.PID for writing (its name in TMP, TMPLEN bytes); NULL with ERR. */
FILE *rc_open_tmp(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);
/* Write N bytes of DATA to PATH atomically (rc_open_tmp, rc_commit_file).  0 or -1 with ERR. */
int rc_write_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);
/* The same for the NUL-terminated TEXT. */
int rc_write_text(const char *path, const char *text, char *err, size_t errlen);
/* Reads one line of F into *BUF (grown as needed; *CAP its size), with its newline, NUL-terminated,
 * like getline; its length, -1 at the end of the file, or -2 when the line is longer than MAX bytes
 * (nothing more of it is read: an endless line such as /dev/zero's stops there). */
long rc_read_line(FILE *f, char **buf, size_t *cap, size_t max);
/* fsync the directory DIR, so a rename or removal inside it is on disk.  0 or -1 with ERR. */
int rc_fsync_dir(const char *dir, char *err, size_t errlen);
/* Takes an exclusive lock (flock) on DIR/lock for the life of the process, writing the pid into
 * it; returns the open descriptor (keep it open; closing it releases the lock).  -1 with ERR naming
 * the holder's pid when another process holds it.  The lock dies with its process (even kill -9). */
int rc_lock_dir(const char *dir, char *err, size_t errlen);
/* mkdir -p PATH; 0 when the directory exists afterwards, -1 with ERR. */
int rc_mkdir_p(const char *path, char *err, size_t errlen);

/* --- checksums */
/* The XXH3-64 hash of N bytes at DATA. */
uint64_t rc_hash_bytes(const void *data, size_t n);
/* The XXH3-64 hash and the size of the file at PATH.  0, or -1 with ERR. */
int rc_hash_file(const char *path, uint64_t *hash, uint64_t *size, char *err, size_t errlen);

/* --- time */
/* Seconds on a monotonic clock. */
double rc_now(void);

#endif
