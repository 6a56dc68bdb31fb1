/* pool.c - the thread pool (pool.h).
 *
 * threads - 1 workers plus the calling thread. A job is n_tasks calls of
 * fn(ctx, task, thread). Thread i owns the i-th of `threads` contiguous ranges
 * of the tasks and runs them in order from the front; when its range is empty
 * it takes tasks from the back of the others' ranges until none is left, so a
 * thread that a busy host slows down takes fewer (the splits below give each
 * thread several). The ranges keep each thread on the same part of the data
 * from one job to the next: the jobs split an image by rows (or a tensor by
 * channels) in order, so thread 0 works on the top rows the previous step left
 * in its cache, thread 1 on the bottom ones (with one shared counter the two
 * threads took alternate tasks, and every step read much of its input from
 * the other core's cache). A task may use per-thread scratch indexed by
 * `thread`; no task's arithmetic depends on which thread runs it.
 *
 * A forward pass is ~250 jobs, many of them well under a millisecond, so a
 * futex wake per job (tens of microseconds until the worker runs) would cost
 * more than the work it hands over. Workers and the caller therefore spin on
 * the job counter for a while (EC_POOL_SPIN pause loops, ~0.1-0.5 ms) before
 * sleeping on a condition variable; between inferences they sleep. */

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "error.h"
#include "pool.h"

typedef struct { ec_pool *pool; int index; } ec_worker;

/* A thread's unclaimed tasks [lo, hi) as lo | hi << 32: the owner claims lo,
 * the others hi - 1; one cache line each. */
typedef struct { _Alignas(64) atomic_ullong r; } ec_range;

#define EC_POOL_SPIN 4096

struct ec_pool {
    int n;                        /* threads including the caller */
    pthread_t *tid;               /* [n - 1] */
    ec_worker *workers;           /* [n - 1] */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen;             /* bumped per job (release: the job fields are set) */
    atomic_int busy;              /* workers still on the current job */
    ec_range *range;              /* [n] the current job's unclaimed tasks per thread */
    atomic_int quit;
    ec_task_fn fn;
    void *ctx;
};

static inline void ec_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims a task of q: its first (the owner) or its last (another thread); -1
 * when none is left. */
static int ec_range_take(ec_range *q, int back)
{
    unsigned long long v = atomic_load_explicit(&q->r, memory_order_relaxed);
    for (;;) {
        unsigned lo = (unsigned)v, hi = (unsigned)(v >> 32);
        if (lo >= hi) return -1;
        if (atomic_compare_exchange_weak_explicit(&q->r, &v, back ? v - (1ull << 32) : v + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return back ? (int)hi - 1 : (int)lo;
    }
}

/* Thread `self`'s part of the current job: its own range, then the others'. */
static void ec_pool_work(ec_pool *p, int self, ec_task_fn fn, void *ctx)
{
    for (int t; (t = ec_range_take(&p->range[self], 0)) >= 0;) fn(ctx, t, self);
    for (int k = 1; k < p->n; k++) {
        ec_range *q = &p->range[(self + k) % p->n];
        for (int t; (t = ec_range_take(q, 1)) >= 0;) fn(ctx, t, self);
    }
}

static void *ec_pool_main(void *arg)
{
    ec_worker *wk = arg;
    ec_pool *p = wk->pool;
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < EC_POOL_SPIN; i++) {
            ec_cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen && !atomic_load(&p->quit))
                pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) break;
        seen = g;
        ec_pool_work(p, wk->index, p->fn, p->ctx);
        if (atomic_fetch_sub_explicit(&p->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);   /* the caller may be asleep on done */
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

void ec_pool_free(ec_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n - 1; i++)
        if (p->workers[i].pool) pthread_join(p->tid[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->tid);
    free(p->workers);
    free(p->range);
    free(p);
}

ec_status ec_pool_new(int n, ec_pool **out)
{
    ec_pool *p = calloc(1, sizeof *p);
    if (!p) return ec_fail(EC_ERR_NOMEM, "out of memory (thread pool)");
    p->n = n;
    atomic_init(&p->gen, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->quit, 0);
    p->tid = calloc((size_t)n, sizeof *p->tid);
    p->workers = calloc((size_t)n, sizeof *p->workers);
    p->range = aligned_alloc(_Alignof(ec_range), (size_t)n * sizeof *p->range);
    if (p->range)
        for (int i = 0; i < n; i++) atomic_init(&p->range[i].r, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    if (!p->tid || !p->workers || !p->range) {
        p->n = 1;
        ec_pool_free(p);
        return ec_fail(EC_ERR_NOMEM, "out of memory (thread pool)");
    }
    for (int i = 0; i < n - 1; i++) {
        p->workers[i].index = i + 1;
        p->workers[i].pool = p;
        if (pthread_create(&p->tid[i], NULL, ec_pool_main, &p->workers[i]) != 0) {
            p->workers[i].pool = NULL;   /* not started: not joined */
            ec_pool_free(p);
            return ec_fail(EC_ERR_NOMEM, "cannot start worker thread %d of %d", i + 1, n - 1);
        }
    }
    *out = p;
    return EC_OK;
}

void ec_pool_run(ec_pool *p, int n_tasks, ec_task_fn fn, void *ctx)
{
    if (!p || n_tasks <= 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    p->fn = fn, p->ctx = ctx;
    atomic_store_explicit(&p->busy, p->n - 1, memory_order_relaxed);
    for (int i = 0; i < p->n; i++) {   /* published by the gen bump */
        unsigned long long lo = (unsigned long long)n_tasks * i / p->n, hi = (unsigned long long)n_tasks * (i + 1) / p->n;
        atomic_store_explicit(&p->range[i].r, lo | hi << 32, memory_order_relaxed);
    }
    /* the bump under the mutex: a worker checks gen and sleeps under it too, so
     * it either sees the new job or gets this broadcast */
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    ec_pool_work(p, 0, fn, ctx);
    for (int i = 0; atomic_load_explicit(&p->busy, memory_order_acquire) > 0 && i < EC_POOL_SPIN; i++)
        ec_cpu_relax();
    if (atomic_load_explicit(&p->busy, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->busy, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

/* ---- splitting work --------------------------------------------------------------- */

/* Items per task when `total` items (rows, panels, ...) go to `threads`
 * threads: about EC_TASKS_PER_THREAD tasks per thread, each a multiple of
 * `align`. The threads claim tasks as they come free (ec_pool_run), so a
 * thread the host delays leaves more of them to the others; one task per
 * thread would make every split wait for the slower thread. Splits never
 * change results: every element's arithmetic is independent of them. */
#define EC_TASKS_PER_THREAD 4

int ec_pool_per_task(int threads, int total, int align)
{
    if (total <= 0) return 1;
    if (threads <= 1 || total < 2 * align) return total;
    /* k align-units per task, from 2 * EC_TASKS_PER_THREAD tasks per thread down:
     * the smallest longest-thread share, ceil(tasks / threads) * k, wins, ties
     * going to more tasks (10 panels on 2 threads: 10 tasks of 1, 5 each, not
     * 5 tasks of 2, 3 against 2) */
    const int T = threads, units = (total + align - 1) / align;
    int k0 = (units + 2 * T * EC_TASKS_PER_THREAD - 1) / (2 * T * EC_TASKS_PER_THREAD), best = units, span = INT_MAX;
    for (int k = k0; k <= units && k < k0 + 64; k++) {
        int n = (units + k - 1) / k, sp = (n + T - 1) / T * k;
        if (sp < span) span = sp, best = k;
    }
    return best * align;
}
