/* The worker pool: threads for blocking work, with results handed back to
 * the loop that asked.
 *
 * vx_work() runs on the loop thread: it allocates a job and appends it to the
 * pool's FIFO queue (one mutex, one condvar); when queue_max jobs are already
 * waiting it refuses with -EAGAIN, so a flood of requests turns into
 * back-pressure instead of memory. A pool thread takes the oldest job, runs
 * fn(arg) without any lock held, then appends the job to its loop's list of
 * finished jobs (loop->work_done, under loop->work_lock) and wakes the loop
 * only if that list was empty: however many jobs finish while the loop is
 * busy, it pays one wakeup for the whole batch. The wakeup is the loop's own
 * eventfd (the one vx_loop_post uses), so completing a job allocates nothing
 * and cannot fail. The loop's wakeup handler then runs done(arg, 0) for every
 * finished job, oldest first, and frees the jobs.
 *
 * vx_loop_free() with jobs outstanding (vx__work_fini), in this order:
 *  1. jobs of this loop still waiting in the queue are taken out; their done
 *     runs with -ECANCELED (fn never runs);
 *  2. jobs of this loop running on a pool thread are waited for (condvar, no
 *     polling): fn has its arguments and must be allowed to finish;
 *  3. every finished job's done runs with status 0 (fn did run).
 * All of it on the freeing thread, before any handle of the loop is closed,
 * so done callbacks may still use the loop's connections; vx_work() from a
 * done callback (or anything else) during vx_loop_free returns -ECANCELED.
 *
 * vx_pool_free() lets the threads run every job still queued, then joins
 * them. The done callbacks of those jobs run when their loop next runs, or in
 * its vx_loop_free (status 0). A loop whose pool was freed must not call
 * vx_work() again before vx_loop_set_pool() gave it another pool.
 *
 * Pool threads start with every signal blocked: signals belong to the
 * application's threads (and to the loops' signalfds). */
#include "core/loop.h"
#include <assert.h>
#include <signal.h>

/* One vx_work() call. Allocated by vx_work on the loop thread; owned by the
 * pool's queue, then by the pool thread running it, then by its loop's
 * finished list; freed on the loop thread right before its done runs. */
typedef struct vx__job {
    struct vx__job *next;
    vx_loop *loop;
    vx_work_fn fn;
    vx_done_fn done;
    void *arg;
} vx__job;

/* A pool thread; `running` is the loop whose job it runs now (NULL: none),
 * read by vx_loop_free under the pool's mutex. */
typedef struct pool_thread {
    vx_pool *pool;
    pthread_t tid;
    vx_loop *running;
} pool_thread;

/* Created by vx_pool_new, freed by vx_pool_free; the loops using it hold a
 * plain pointer (vx_loop_set_pool) and must not outlive it with jobs queued. */
struct vx_pool {
    pthread_mutex_t mu;     /* guards everything below */
    pthread_cond_t work_cv; /* a job was queued, or stopping */
    pthread_cond_t idle_cv; /* a thread finished a job (for vx_loop_free) */
    vx__job *head, **tail;  /* waiting jobs, oldest first */
    size_t queued, queue_max;
    int idle;      /* threads waiting on work_cv */
    int waiters;   /* vx_loop_free calls waiting on idle_cv */
    bool stopping; /* vx_pool_free: run what is queued, then exit */
    int nthreads;
    pool_thread *threads;
};

/* ------------------------------------------------------------ pool threads */

/* fn ran: hand the job to its loop. The wakeup is sent under work_lock: once
 * vx_loop_free has seen the job in the list (under the same lock), this thread
 * no longer touches the loop, so the loop may go. */
static void job_finished(vx__job *job) {
    vx_loop *loop = job->loop;
    pthread_mutex_lock(&loop->work_lock);
    bool was_empty = loop->work_done == NULL;
    job->next = NULL;
    *loop->work_tail = job;
    loop->work_tail = &job->next;
    loop->work_done_n++;
    if (was_empty) /* a non-empty list already has its wakeup on the way */
        vx__loop_wake(loop);
    pthread_mutex_unlock(&loop->work_lock);
}

static vx__job *queue_pop(vx_pool *p) {
    vx__job *job = p->head;
    if (job) {
        p->head = job->next;
        if (!p->head)
            p->tail = &p->head;
        p->queued--;
    }
    return job;
}

static void *pool_main(void *arg) {
    pool_thread *me = arg;
    vx_pool *p = me->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping) {
            p->idle++;
            pthread_cond_wait(&p->work_cv, &p->mu);
            p->idle--;
        }
        vx__job *job = queue_pop(p);
        if (!job) /* stopping and nothing left */
            break;
        me->running = job->loop;
        pthread_mutex_unlock(&p->mu);

        job->fn(job->arg);
        job_finished(job); /* job and loop belong to the loop's thread now */

        pthread_mutex_lock(&p->mu);
        me->running = NULL;
        if (p->waiters)
            pthread_cond_broadcast(&p->idle_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---------------------------------------------------------------- the pool */

static void pool_stop(vx_pool *p, int started) {
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++)
        pthread_join(p->threads[i].tid, NULL);
    pthread_cond_destroy(&p->idle_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    vx__free(p->threads);
    vx__free(p);
}

int vx_pool_new(vx_pool **out, int threads, size_t queue_max) {
    if (!out || threads < 1 || queue_max < 1)
        return -EINVAL;
    vx_pool *p = vx__calloc(1, sizeof *p);
    pool_thread *t = vx__calloc((size_t)threads, sizeof *t);
    if (!p || !t) {
        vx__free(p);
        vx__free(t);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->idle_cv, NULL);
    p->tail = &p->head;
    p->queue_max = queue_max;
    p->threads = t;
    /* Threads inherit the creator's mask: block everything around the
     * creation, so no signal can reach a pool thread even for an instant. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0, started = 0;
    for (; started < threads; started++) {
        t[started].pool = p;
        if ((rc = pthread_create(&t[started].tid, NULL, pool_main, &t[started])) != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        VX__LOG_ERROR("worker pool: cannot start thread %d of %d: %s", started + 1, threads,
                      vx_strerror(-rc));
        pool_stop(p, started);
        return -rc;
    }
    p->nthreads = threads;
    *out = p;
    return 0;
}

void vx_pool_free(vx_pool *pool) {
    if (pool)
        pool_stop(pool, pool->nthreads);
}

/* Jobs of loop in its pool (queued or running): submitted, minus those whose
 * done ran or is about to run, minus those finished and waiting for the loop. */
static size_t jobs_in_pool(vx_loop *loop) {
    pthread_mutex_lock(&loop->work_lock);
    size_t n = loop->work_outstanding - loop->work_done_n;
    pthread_mutex_unlock(&loop->work_lock);
    return n;
}

void vx_loop_set_pool(vx_loop *loop, vx_pool *pool) {
    /* The cancel path of vx_loop_free looks for this loop's jobs only in
     * loop->pool: switching pools with jobs still in the old one is a bug. */
    assert(pool == loop->pool || jobs_in_pool(loop) == 0);
    loop->pool = pool;
}

int vx_work(vx_loop *loop, vx_work_fn fn, vx_done_fn done, void *arg) {
    assert(fn);
    vx_pool *p = loop->pool;
    if (!p)
        return -EINVAL;
    if (loop->freeing)
        return -ECANCELED;
    vx__job *job = vx__malloc(sizeof *job);
    if (!job)
        return -ENOMEM;
    *job = (vx__job){.loop = loop, .fn = fn, .done = done, .arg = arg};
    pthread_mutex_lock(&p->mu);
    if (p->queued >= p->queue_max || p->stopping) {
        pthread_mutex_unlock(&p->mu);
        vx__free(job);
        return -EAGAIN;
    }
    *p->tail = job;
    p->tail = &job->next;
    p->queued++;
    if (p->idle) /* busy threads look at the queue before they sleep */
        pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    loop->work_outstanding++;
    return 0;
}

/* ------------------------------------------------------------ on the loop */

/* Take the finished list; its jobs stop counting as outstanding. */
static vx__job *take_done(vx_loop *loop) {
    pthread_mutex_lock(&loop->work_lock);
    vx__job *batch = loop->work_done;
    loop->work_done = NULL;
    loop->work_tail = &loop->work_done;
    loop->work_outstanding -= loop->work_done_n;
    loop->work_done_n = 0;
    pthread_mutex_unlock(&loop->work_lock);
    return batch;
}

/* Free each job, then call its done (which may queue new work). */
static void run_list(vx__job *job, int status) {
    while (job) {
        vx__job j = *job;
        vx__free(job);
        if (j.done)
            j.done(j.arg, status);
        job = j.next;
    }
}

void vx__work_run_done(vx_loop *loop) { run_list(take_done(loop), 0); }

/* Under p->mu: move loop's waiting jobs out of the queue (order kept). */
static vx__job *unqueue(vx_pool *p, vx_loop *loop, size_t *n) {
    vx__job *mine = NULL, **mine_tail = &mine, **it = &p->head;
    p->tail = &p->head;
    while (*it) {
        vx__job *job = *it;
        if (job->loop == loop) {
            *it = job->next;
            *mine_tail = job;
            mine_tail = &job->next;
            p->queued--;
            (*n)++;
        } else {
            it = &job->next;
            p->tail = &job->next;
        }
    }
    *mine_tail = NULL;
    return mine;
}

static bool running_here(const vx_pool *p, const vx_loop *loop) {
    for (int i = 0; i < p->nthreads; i++)
        if (p->threads[i].running == loop)
            return true;
    return false;
}

void vx__work_fini(vx_loop *loop) {
    if (!loop->work_outstanding)
        return;
    vx_pool *p = loop->pool;
    /* No job in the pool: each one is in work_done, past its wakeup (maybe p
     * was freed: its threads ran everything). Else p is alive and has ours. */
    if (p && jobs_in_pool(loop)) {
        size_t n = 0;
        pthread_mutex_lock(&p->mu);
        vx__job *cancelled = unqueue(p, loop, &n);
        pthread_mutex_unlock(&p->mu);
        loop->work_outstanding -= n;
        run_list(cancelled, -ECANCELED);

        pthread_mutex_lock(&p->mu);
        p->waiters++;
        while (running_here(p, loop))
            pthread_cond_wait(&p->idle_cv, &p->mu);
        p->waiters--;
        pthread_mutex_unlock(&p->mu);
    }
    run_list(take_done(loop), 0);
    assert(loop->work_outstanding == 0);
}
