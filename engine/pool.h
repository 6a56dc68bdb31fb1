/* pool.h - the session's thread pool: threads - 1 workers plus the caller.
 * A job is n_tasks calls of fn(ctx, task, thread); each thread runs its own
 * contiguous range of the tasks, then takes what is left of the others' (see
 * pool.c). A task may use per-thread scratch
 * indexed by `thread`; no task's arithmetic may depend on which thread runs
 * it, so results are the same for any thread count. */
#ifndef EFFCAM_POOL_H
#define EFFCAM_POOL_H

#include "../effcam.h"

typedef void (*ec_task_fn)(void *ctx, int task, int thread);
typedef struct ec_pool ec_pool;

/* n >= 2 threads in all (n - 1 workers start now). */
ec_status ec_pool_new(int n, ec_pool **out);
void ec_pool_free(ec_pool *p);
/* Runs the job and returns when every task is done; p NULL or n_tasks <= 1:
 * the caller runs them all. */
void ec_pool_run(ec_pool *p, int n_tasks, ec_task_fn fn, void *ctx);

/* Items per task when `total` items (rows, panels, ...) go to `threads`
 * threads: several tasks per thread, each a multiple of `align` (see pool.c). */
int ec_pool_per_task(int threads, int total, int align);

#endif
