/* sched.h — the off-policy schedule of explorer and trainer (docs/algorithms.md, the off-policy schedule, Trinity's
 * `sync_style: fixed`).
 *
 * Explore step e (1-based) generates batch e; train step t consumes batch t (FIFO) and starts
 * from the weights θ_{t-1}.  The trainer pushes its weights after every train step that is a
 * multiple of sync_interval n; the explorer skips its first sync_offset k steps, then pulls
 * after every explore step e with (e - k) % n == 0.  Its i-th pull meets the trainer's i-th
 * push (a rendezvous), so it receives θ_{i·n} whatever the timing: batch e comes from
 *     version(e) = n · max(0, floor((e - 1 - k) / n))
 * and is trained on with lag(e) = (e - 1) - version(e) steps of staleness.
 */
#ifndef REIN_SCHED_H
#define REIN_SCHED_H

#include <stdint.h>

/* The trainer step whose weights generated batch e (0: the initial policy); n >= 1, k >= 0. */
int64_t rt_sched_version(int64_t e, int64_t n, int64_t k);
/* How many optimizer steps older than the trainer's current weights batch e's policy is. */
int64_t rt_sched_lag(int64_t e, int64_t n, int64_t k);

#endif
