/* task_rcmd.c — rewards from outside the binary: an external command that stays running and
 * answers one JSON line per response (TaskScorer, rein/task.h).
 *
 * The command is run once by /bin/sh -c with pipes on its stdin and stdout (posix_spawn; its
 * stderr is the trainer's, every other descriptor closed, signals at their defaults, in a
 * process group of its own, which is what a timeout kills).  For each response the trainer
 * writes {"prompt", "response", "answer"} and one line, and reads one line back:
 * {"reward": number, "accuracy": number in [0, 1]} plus, optionally, other numeric fields kept as
 * extra metrics (non-numeric fields are ignored: a "why" string for the user's eyes).  Each
 * exchange has a deadline of timeout seconds, enforced with poll on both pipes, so a command that
 * stops reading or stops answering cannot hang the run.  Text that is not valid UTF-8 (a response
 * cut inside a character) is sent with U+FFFD in place of each bad byte, as JSON needs
 * (task_utf8_clean lives here, with its first user; the samples log uses it too).  Every failure
 * — the command exits or is killed, does not answer in time, writes something that is not such a
 * line — is one error naming the command; the trainer then stops with status 1 without writing a
 * checkpoint, so the last one on disk is untouched.  The trainer ignores SIGPIPE from the first
 * start on (a write to a dead command is an error, not the trainer's end).
 */
#define _GNU_SOURCE
#include "rein/task.h"
#include "rein/common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define RCMD_MAX_LINE (1 << 20)

struct TaskScorer {
  char *cmd;
  double timeout;
  pid_t pid;        /* -1 once reaped */
  int to_fd;        /* the command's stdin (non-blocking) */
  int from_fd;      /* its stdout */
  char *buf;        /* bytes read, not yet consumed */
  size_t len, cap;
  long answers;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TaskScorer *task_scorer_start(const char *cmd, double timeout_s, char *err, size_t errlen) {
  if (!*cmd) return snprintf(err, errlen, "--reward-cmd: empty command"), NULL;
  signal(SIGPIPE, SIG_IGN);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC)) return snprintf(err, errlen, "reward command: pipe: %s", strerror(errno)), NULL;
  if (pipe2(out, O_CLOEXEC)) {
    close(in[0]), close(in[1]);
    return snprintf(err, errlen, "reward command: pipe: %s", strerror(errno)), NULL;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_init(&at);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  posix_spawnattr_setsigdefault(&at, &def);
  posix_spawnattr_setpgroup(&at, 0);   /* its own group: a timeout kills the shell and its children */
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  char *argv[] = {"sh", "-c", (char *)cmd, NULL};
  pid_t pid;
  int e = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(in[0]);
  close(out[1]);
  if (e) {
    close(in[1]), close(out[0]);
    return snprintf(err, errlen, "reward command '%s': cannot start /bin/sh: %s", cmd, strerror(e)), NULL;
  }
  fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
  TaskScorer *s = rc_calloc(1, sizeof *s);
  s->cmd = rc_strdup(cmd);
  s->timeout = timeout_s;
  s->pid = pid;
  s->to_fd = in[1];
  s->from_fd = out[0];
  return s;
}

/* Why the command is gone: reaps it and says how it ended. */
static void gone(TaskScorer *s, const char *when, char *err, size_t errlen) {
  int st = 0;
  pid_t r = s->pid > 0 ? waitpid(s->pid, &st, 0) : -1;
  if (s->pid > 0) kill(-s->pid, SIGKILL);   /* what the shell left running in its group */
  s->pid = -1;
  if (r > 0 && WIFEXITED(st))
    snprintf(err, errlen, "reward command '%s' exited with status %d %s", s->cmd, WEXITSTATUS(st), when);
  else if (r > 0 && WIFSIGNALED(st))
    snprintf(err, errlen, "reward command '%s' was killed by signal %d (%s) %s", s->cmd, WTERMSIG(st),
             strsignal(WTERMSIG(st)), when);
  else
    snprintf(err, errlen, "reward command '%s' closed its output %s", s->cmd, when);
}

static void kill_it(TaskScorer *s) {
  if (s->pid > 0) {
    kill(-s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
  }
}

static int timed_out(TaskScorer *s, const char *when, char *err, size_t errlen) {
  kill_it(s);
  snprintf(err, errlen, "reward command '%s': no answer within %g s %s (--reward-timeout); it was killed", s->cmd,
           s->timeout, when);
  return -1;
}

/* Writes all of P[0..n) before DEADLINE. */
static int send_all(TaskScorer *s, const char *p, size_t n, double deadline, const char *when, char *err,
                    size_t errlen) {
  while (n) {
    ssize_t k = write(s->to_fd, p, n);
    if (k > 0) {
      p += k, n -= (size_t)k;
      continue;
    }
    if (k < 0 && errno == EPIPE) return gone(s, when, err, errlen), -1;
    if (k < 0 && errno != EAGAIN && errno != EINTR)
      return snprintf(err, errlen, "reward command '%s': write: %s", s->cmd, strerror(errno)), -1;
    double left = deadline - now_s();
    if (left <= 0) return timed_out(s, when, err, errlen);
    struct pollfd pf = {s->to_fd, POLLOUT, 0};
    poll(&pf, 1, (int)(left * 1000) + 1);
  }
  return 0;
}

/* Reads one line (without its newline, NUL-terminated, in s->buf) before DEADLINE; its length. */
static long read_line(TaskScorer *s, double deadline, const char *when, char *err, size_t errlen) {
  size_t scanned = 0;
  for (;;) {
    char *nl = s->len > scanned ? memchr(s->buf + scanned, '\n', s->len - scanned) : NULL;
    if (nl) return (long)(nl - s->buf);
    scanned = s->len;
    if (s->len > RCMD_MAX_LINE) {
      kill_it(s);
      return snprintf(err, errlen, "reward command '%s': an answer line longer than %d bytes %s", s->cmd,
                      RCMD_MAX_LINE, when), -1;
    }
    double left = deadline - now_s();
    if (left <= 0) return timed_out(s, when, err, errlen);
    struct pollfd pf = {s->from_fd, POLLIN, 0};
    int pr = poll(&pf, 1, (int)(left * 1000) + 1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;   /* the deadline is checked above */
    if (s->cap - s->len < 4096) s->buf = rc_realloc(s->buf, s->cap = 2 * s->cap + 8192);
    ssize_t k = read(s->from_fd, s->buf + s->len, s->cap - s->len - 1);
    if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (k <= 0) {
      if (s->len) {   /* a last line without its newline: the command ended mid-answer */
        gone(s, when, err, errlen);
        size_t n = strlen(err);
        snprintf(err + n, errlen > n ? errlen - n : 0, " (in the middle of an answer line)");
        return -1;
      }
      return gone(s, when, err, errlen), -1;
    }
    s->len += (size_t)k;
  }
}

char *task_utf8_clean(const char *s) {
  size_t n = strlen(s), k = 0;
  char *o = rc_malloc(3 * n + 1);
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    unsigned c = p[i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    int ok = len > 0 && i + (size_t)len <= n;
    for (int j = 1; ok && j < len; j++) ok = (p[i + j] & 0xC0) == 0x80;
    if (ok && len > 1) {   /* no overlong forms, surrogates or values past U+10FFFF */
      unsigned v = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
      for (int j = 1; j < len; j++) v = v << 6 | (p[i + j] & 0x3F);
      ok = !(len == 2 && v < 0x80) && !(len == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) &&
           !(len == 4 && (v < 0x10000 || v > 0x10FFFF));
    }
    if (ok) {
      memcpy(o + k, p + i, (size_t)len);
      k += (size_t)len, i += (size_t)len;
    } else {
      memcpy(o + k, "\xEF\xBF\xBD", 3);
      k += 3, i++;
    }
  }
  o[k] = 0;
  return o;
}

static int name_ok(const char *k) {
  if (!*k || strlen(k) >= TASK_EXTRA_NAME) return 0;
  for (const char *p = k; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_') return 0;
  return strcmp(k, "mean") && strcmp(k, "std");   /* reward_mean and reward_std are the trainer's */
}

int task_scorer_score(TaskScorer *s, const char *prompt, const char *response, const char *answer, TaskReward *out,
                      char *err, size_t errlen) {
  char when[64];
  snprintf(when, sizeof when, "(answer %ld)", s->answers + 1);
  if (s->pid < 0) return snprintf(err, errlen, "reward command '%s' is no longer running", s->cmd), -1;
  char *cp = task_utf8_clean(prompt), *cr = task_utf8_clean(response), *ca = task_utf8_clean(answer);
  json_t *req = json_pack("{s:s,s:s,s:s}", "prompt", cp, "response", cr, "answer", ca);
  free(cp), free(cr), free(ca);
  char *line = json_dumps(req, JSON_COMPACT | JSON_ENSURE_ASCII);
  json_decref(req);
  size_t n = strlen(line);
  line = rc_realloc(line, n + 2);
  line[n++] = '\n';
  double deadline = now_s() + s->timeout;
  int rc = send_all(s, line, n, deadline, when, err, errlen);
  free(line);
  if (rc) return -1;
  long len = read_line(s, deadline, when, err, errlen);
  if (len < 0) return -1;
  s->answers++;
  json_error_t je;
  json_t *a = json_loadb(s->buf, (size_t)len, 0, &je);
  char shown[96];
  snprintf(shown, sizeof shown, "%.*s%s", len > 80 ? 80 : (int)len, s->buf, len > 80 ? "..." : "");
  memmove(s->buf, s->buf + len + 1, s->len - (size_t)len - 1);
  s->len -= (size_t)len + 1;
  rc = -1;
  json_t *r = json_object_get(a, "reward"), *c = json_object_get(a, "accuracy");
  if (!json_is_object(a))
    snprintf(err, errlen, "reward command '%s': answer %ld is not a JSON object (%s): '%s'", s->cmd, s->answers,
             a ? "another JSON value" : je.text, shown);
  else if (!json_is_number(r) || !isfinite(json_number_value(r)))
    snprintf(err, errlen, "reward command '%s': answer %ld: field 'reward': missing or not a finite number: '%s'",
             s->cmd, s->answers, shown);
  else if (!json_is_number(c) || !(json_number_value(c) >= 0 && json_number_value(c) <= 1))
    snprintf(err, errlen, "reward command '%s': answer %ld: field 'accuracy': missing or not a number in [0, 1]: '%s'",
             s->cmd, s->answers, shown);
  else
    rc = 0;
  if (!rc) {
    *out = (TaskReward){.reward = json_number_value(r), .accuracy = json_number_value(c)};
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) {
      if (!json_is_number(v) || !strcmp(k, "reward") || !strcmp(k, "accuracy")) continue;
      if (!name_ok(k)) {
        snprintf(err, errlen, "reward command '%s': answer %ld: field '%s': an extra field's name must be letters, "
                              "digits and '_' (at most %zu, not \"mean\" or \"std\")", s->cmd, s->answers, k,
                 (size_t)TASK_EXTRA_NAME - 1);
        rc = -1;
        break;
      }
      if (!isfinite(json_number_value(v))) {
        snprintf(err, errlen, "reward command '%s': answer %ld: field '%s': not finite", s->cmd, s->answers, k);
        rc = -1;
        break;
      }
      if (out->nextra == TASK_MAX_EXTRA) {
        snprintf(err, errlen, "reward command '%s': answer %ld: more than %d extra numeric fields", s->cmd,
                 s->answers, TASK_MAX_EXTRA);
        rc = -1;
        break;
      }
      task_extra_add(&out->nextra, &out->extra_names, &out->extra_vals, k, json_number_value(v));
    }
    if (rc) task_reward_free(out);
  }
  json_decref(a);
  if (rc) kill_it(s);
  return rc;
}

void task_scorer_stop(TaskScorer *s) {
  if (!s) return;
  close(s->to_fd);   /* end of input: a well-behaved command exits */
  if (s->pid > 0) {
    double until = now_s() + (s->timeout < 5 ? s->timeout : 5);
    while (s->pid > 0) {
      pid_t r = waitpid(s->pid, NULL, WNOHANG);
      if (r == s->pid || (r < 0 && errno != EINTR)) s->pid = -1;
      else if (now_s() >= until) kill_it(s);
      else usleep(10000);
    }
  }
  close(s->from_fd);
  free(s->buf);
  free(s->cmd);
  free(s);
}
