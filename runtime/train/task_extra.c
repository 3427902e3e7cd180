/* task_extra.c — the extras of items and scored responses (rein/task.h): named numbers a task
 * attaches to an item or a reward command to a response, which the trainer logs and hands to the
 * objective's inputs.  Its own file so that the reward command (task_rcmd.c) and the items
 * (task.c) both use it without depending on each other.
 */
#include "rein/task.h"
#include "rein/common.h"

#include <stdlib.h>
#include <string.h>

void task_extras_free(int *n, char ***names, double **vals) {
  for (int i = 0; i < *n; i++) free((*names)[i]);
  free(*names);
  free(*vals);
  *n = 0, *names = NULL, *vals = NULL;
}

void task_reward_free(TaskReward *r) { task_extras_free(&r->nextra, &r->extra_names, &r->extra_vals); }

int task_extra_get(int n, char *const *names, const double *vals, const char *name, double *out) {
  for (int i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) {
      *out = vals[i];
      return 0;
    }
  return -1;
}

int task_extra_add(int *n, char ***names, double **vals, const char *name, double value) {
  double v;
  if (task_extra_get(*n, *names, *vals, name, &v) == 0) return -1;
  *names = rc_realloc(*names, sizeof **names * (size_t)(*n + 1));
  *vals = rc_realloc(*vals, sizeof **vals * (size_t)(*n + 1));
  (*names)[*n] = rc_strdup(name);
  (*vals)[*n] = value;
  (*n)++;
  return 0;
}

