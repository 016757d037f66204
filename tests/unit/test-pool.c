/* Worker pool edge cases, with a look inside the loop where it helps:
 * arguments, signals blocked in pool threads, one wakeup per batch of
 * completions, vx_pool_free running what is queued, allocation failure, and
 * vx_work refused during vx_loop_free. (test-workers.c covers the ordinary
 * use on every backend.) */
#include "harness.h"

#include "core/loop.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static vx_loop *loop_new(void) {
    vx_loop *loop = NULL;
    REQUIRE_OK(vx_loop_new(&loop, NULL));
    return loop;
}

static vx_pool *pool_new(int threads, size_t queue_max) {
    vx_pool *p = NULL;
    REQUIRE_OK(vx_pool_new(&p, threads, queue_max));
    return p;
}

typedef struct job {
    atomic_int ran;
    int status; /* 1 until done runs */
    int done_calls;
    int work_rc;              /* what vx_work returned inside done */
    atomic_int sig_unblocked; /* signals found unblocked in the pool thread */
    vx_loop *loop;
} job;

static void job_fn(void *arg) { atomic_fetch_add(&((job *)arg)->ran, 1); }

static void job_done(void *arg, int status) {
    job *j = arg;
    j->status = status;
    j->done_calls++;
}

static void never_done(void *arg, int status) {
    (void)arg;
    (void)status;
    harness_fail(__FILE__, __LINE__, "done ran for a job that was refused");
}

TEST(arguments) {
    vx_pool *p = NULL;
    CHECK_EQ_INT(vx_pool_new(&p, 0, 4), -EINVAL);
    CHECK_EQ_INT(vx_pool_new(&p, 2, 0), -EINVAL);
    CHECK_EQ_INT(vx_pool_new(NULL, 2, 4), -EINVAL);
    CHECK(p == NULL);
    vx_pool_free(NULL);
    vx_loop *loop = loop_new();
    job j = {0};
    CHECK_EQ_INT(vx_work(loop, job_fn, never_done, &j), -EINVAL); /* no pool */
    p = pool_new(1, 1);
    vx_loop_set_pool(loop, p);
    vx_loop_set_pool(loop, NULL); /* detach: no job, allowed */
    CHECK_EQ_INT(vx_work(loop, job_fn, never_done, &j), -EINVAL);
    vx_loop_free(loop);
    vx_pool_free(p);
}

static void sig_fn(void *arg) {
    job *j = arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (!sigismember(&cur, sigs[i]))
            atomic_fetch_add(&j->sig_unblocked, 1);
    atomic_fetch_add(&j->ran, 1);
}

TEST(signals_blocked_in_pool_threads) {
    sigset_t none, before, after;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, &before);
    vx_loop *loop = loop_new();
    vx_pool *p = pool_new(2, 8);
    pthread_sigmask(SIG_SETMASK, NULL, &after);
    CHECK(!sigismember(&after, SIGINT)); /* the creator's mask is restored */
    vx_loop_set_pool(loop, p);
    job j[2] = {0};
    for (int i = 0; i < 2; i++)
        REQUIRE_OK(vx_work(loop, sig_fn, job_done, &j[i]));
    vx_pool_free(p); /* runs both */
    vx_loop_free(loop);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_INT(atomic_load(&j[i].ran), 1);
        CHECK_EQ_INT(atomic_load(&j[i].sig_unblocked), 0);
        CHECK_EQ_INT(j[i].status, 0);
    }
    pthread_sigmask(SIG_SETMASK, &before, NULL);
}

static size_t done_n(vx_loop *loop) {
    pthread_mutex_lock(&loop->work_lock);
    size_t n = loop->work_done_n;
    pthread_mutex_unlock(&loop->work_lock);
    return n;
}

static void stop_loop(vx_timer *t, void *data) {
    (void)t;
    vx_loop_stop(data);
}

TEST(one_wakeup_per_batch) {
    enum { N = 100 };
    static job j[N];
    vx_loop *loop = loop_new();
    vx_pool *p = pool_new(2, N);
    vx_loop_set_pool(loop, p);
    for (int i = 0; i < N; i++) {
        j[i] = (job){.status = 1};
        REQUIRE_OK(vx_work(loop, job_fn, job_done, &j[i]));
    }
    uint64_t t0 = now_ms();
    while (done_n(loop) < N && now_ms() - t0 < 10000)
        sleep_ms(1);
    REQUIRE_EQ_INT(done_n(loop), N);
    /* 100 completions while the loop slept: the eventfd was written once. */
    uint64_t v = 0;
    CHECK_EQ_INT(read(loop->wake_fd, &v, sizeof v), (ssize_t)sizeof v);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(write(loop->wake_fd, &v, sizeof v), (ssize_t)sizeof v); /* put it back */
    vx_timer *t = NULL;
    REQUIRE_OK(vx_timer_new(loop, stop_loop, loop, &t));
    /* The loop's clock is from vx_loop_new: on a slow machine (valgrind) the
     * wait above outlasts 50 ms and the timer would fire before the turn
     * that runs the completions. */
    vx_loop_update_time(loop);
    vx_timer_start(t, 50, 0);
    CHECK_OK(vx_loop_run(loop));
    for (int i = 0; i < N; i++)
        CHECK_EQ_INT(j[i].status, 0);
    CHECK_EQ_INT(loop->work_outstanding, 0);
    vx_timer_free(t);
    vx_loop_free(loop);
    vx_pool_free(p);
}

/* A gate the first job waits at; opened from another thread after a delay. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static bool g_open;

static void gated_fn(void *arg) {
    pthread_mutex_lock(&g_mu);
    while (!g_open)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    job_fn(arg);
}

static void *opener(void *arg) {
    (void)arg;
    sleep_ms(50);
    pthread_mutex_lock(&g_mu);
    g_open = true;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    return NULL;
}

TEST(pool_free_runs_queued_jobs) {
    enum { N = 10 };
    static job j[N];
    vx_loop *loop = loop_new();
    vx_pool *p = pool_new(1, N);
    vx_loop_set_pool(loop, p);
    for (int i = 0; i < N; i++) {
        j[i] = (job){.status = 1};
        REQUIRE_OK(vx_work(loop, i == 0 ? gated_fn : job_fn, job_done, &j[i]));
    }
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, opener, NULL) == 0);
    vx_pool_free(p); /* waits for the gate, then runs the other nine */
    pthread_join(t, NULL);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(atomic_load(&j[i].ran), 1);
        CHECK_EQ_INT(j[i].done_calls, 0); /* not yet: on the loop */
    }
    vx_loop_set_pool(loop, NULL); /* allowed: nothing is left in the pool */
    vx_loop_free(loop);           /* delivers them, status 0 */
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(j[i].done_calls, 1);
        CHECK_EQ_INT(j[i].status, 0);
    }
}

/* Fails every allocation while `failing` is set. */
static atomic_bool failing;

static void *fail_realloc(void *ptr, size_t size, void *ud) {
    (void)ud;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    if (atomic_load(&failing))
        return NULL;
    return realloc(ptr, size);
}

TEST(allocation_failure_is_enomem) {
    vx_allocator_set(fail_realloc, NULL);
    vx_loop *loop = loop_new();
    vx_pool *p = pool_new(1, 4);
    vx_loop_set_pool(loop, p);
    job j = {0};
    atomic_store(&failing, true);
    CHECK_EQ_INT(vx_work(loop, job_fn, never_done, &j), -ENOMEM);
    atomic_store(&failing, false);
    CHECK_EQ_INT(loop->work_outstanding, 0);
    vx_loop_free(loop);
    vx_pool_free(p);
    vx_allocator_set(NULL, NULL);
    CHECK_EQ_INT(atomic_load(&j.ran), 0);
}

/* A done called from vx_loop_free that tries to queue more work. */
static void requeue_done(void *arg, int status) {
    job *j = arg;
    j->status = status;
    j->done_calls++;
    j->work_rc = vx_work(j->loop, job_fn, never_done, j);
}

TEST(work_refused_during_loop_free) {
    static job j[3];
    vx_loop *loop = loop_new();
    vx_pool *p = pool_new(1, 4);
    vx_loop_set_pool(loop, p);
    g_open = false;
    pthread_t t;
    for (int i = 0; i < 3; i++) {
        j[i] = (job){.status = 1, .loop = loop};
        REQUIRE_OK(vx_work(loop, i == 0 ? gated_fn : job_fn, requeue_done, &j[i]));
    }
    REQUIRE(pthread_create(&t, NULL, opener, NULL) == 0);
    vx_loop_free(loop);
    pthread_join(t, NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(j[i].done_calls, 1);
        CHECK_EQ_INT(j[i].work_rc, -ECANCELED);
    }
    /* Job 0 waited at the gate (or had not started: then it was cancelled). */
    CHECK(j[0].status == 0 || j[0].status == -ECANCELED);
    CHECK_EQ_INT(atomic_load(&j[0].ran), j[0].status == 0);
    CHECK_EQ_INT(j[1].status, -ECANCELED);
    CHECK_EQ_INT(j[2].status, -ECANCELED);
    vx_pool_free(p);
}
