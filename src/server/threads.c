/* Loops on threads: the single, reuseport, shared and handoff models.
 *
 * With several loops, every loop runs on a thread of its own, created here
 * with every signal blocked (the process's signal handling is unchanged); the
 * calling thread only starts, and then joins, them. One loop runs on the
 * calling thread itself (run_inline). Loops are created, set up and freed on
 * the thread that runs them (io_uring rings are single-issuer).
 *
 *   single     one loop, listening on s->listen_fd
 *   reuseport  loop 0 listens on s->listen_fd, loop i on its own SO_REUSEPORT
 *              socket bound to the same port: the kernel spreads connections
 *   shared     every loop listens on s->listen_fd, with EPOLLEXCLUSIVE
 *   handoff    an acceptor loop (a thread more, not counted) accepts on
 *              s->listen_fd and hands each fd to a sub-loop (round-robin or
 *              least-loaded) through a single-producer/single-consumer ring,
 *              with one vx_loop_post wakeup per batch
 *
 * Start is two-phase: every thread sets its loop up, then all run or (one
 * failed) all free. Stop: s->stop_fd turns readable, every loop closes its
 * listener, then runs until it has no connection left or o.drain_ms passed.
 * s->listen_fd stays open (vx_server_free closes it): in a worker process
 * other processes still accept on it. So connections that arrive while
 * single, shared or handoff drain wait in the backlog until the server is
 * freed; reuseport shuts its first socket down, refusing them at once.
 *
 * Counters: each loop copies its vx_stats under its own mutex every TICK_MS,
 * and vx__threads_stats asks the loop for a fresh copy (vx_loop_post, waits
 * up to REFRESH_MS). The state lives while vx__threads_run runs. */
#include "server/server.h"
#include "net/sock.h"
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100      /* counters snapshot, least-loaded publishing */
#define DRAIN_TICK_MS 10 /* while draining: are we done? */
#define REFRESH_MS 200   /* vx__threads_stats waits this long for a loop */
#define RING_SIZE 4096   /* fds waiting for a sub-loop (power of two) */
#define ACCEPT_BATCH 64  /* accepts per readiness event (handoff) */
#define RETRY_MS 100     /* fd exhaustion: accepting pauses this long */
#define FULL_RETRY_MS 1  /* every ring full: retry this soon */

/* fds from the acceptor (producer: tail) to one sub-loop (consumer: head).
 * Padded so the two indices do not share a cache line. */
typedef struct fd_ring {
    atomic_size_t head;
    char pad1[64 - sizeof(atomic_size_t)];
    atomic_size_t tail;
    char pad2[64 - sizeof(atomic_size_t)];
    int fds[RING_SIZE];
} fd_ring;

struct threads;

/* One loop and its thread; owned by struct threads. */
typedef struct tloop {
    struct threads *t;
    int index; /* 0..n-1; n is the handoff acceptor */
    int cpu;   /* pinned to, or -1 */
    pthread_t tid;
    vx_loop *loop;
    vx_listener *listener;
    vx_io *stop_io;
    vx_timer *tick;
    bool draining;
    uint64_t deadline;
    int rc;

    /* Counters for other threads; mu guards snap, alive and the generations. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    vx_stats snap;
    bool alive; /* loop exists: posting to it is allowed */
    uint64_t gen_want, gen_done;

    /* handoff sub-loop */
    fd_ring *ring;
    atomic_bool posted;                         /* a drain is posted and has not started yet */
    uint64_t handed;                            /* fds pushed (acceptor only) */
    atomic_uint_fast64_t adopted;               /* fds taken out (written by the sub-loop) */
    atomic_uint_fast64_t pub_live, pub_adopted; /* conns_live and adopted, as published */
} tloop;

/* A running threads model; s->impl while vx__threads_run runs. */
typedef struct threads {
    vx_server *s;
    int n;        /* serving loops (vx_server_count) */
    int nthreads; /* n, plus the acceptor for handoff */
    bool handoff;
    tloop *loops;

    pthread_mutex_t mu; /* start barrier, accept_done */
    pthread_cond_t cv;
    int ready, failed;
    bool go, abort;

    /* handoff acceptor (its loop is loops[n]) */
    vx_io *accept_io;
    vx_timer *retry;
    bool exhausted;
    int pending_fd; /* accepted, every ring full */
    unsigned rr;
    bool *touched;           /* sub-loops given fds in this batch */
    atomic_bool accept_done; /* the acceptor hands out nothing more */
} threads;

/* s->impl is read by vx__threads_stats from any thread: set, cleared and read
 * under this lock (taken only there and at the start and end of a run). */
static pthread_mutex_t impl_lock = PTHREAD_MUTEX_INITIALIZER;
/* The server whose loop runs on this thread (no waiting on a sibling). */
static _Thread_local threads *tl_owner;

static void snapshot(tloop *l) {
    pthread_mutex_lock(&l->mu);
    vx_loop_stats(l->loop, &l->snap);
    pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------ handoff ring */

static bool ring_push(fd_ring *r, int fd) {
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - atomic_load_explicit(&r->head, memory_order_acquire) == RING_SIZE)
        return false;
    r->fds[tail & (RING_SIZE - 1)] = fd;
    atomic_store_explicit(&r->tail, tail + 1, memory_order_seq_cst);
    return true;
}

static bool ring_pop(fd_ring *r, int *fd) {
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (head == atomic_load_explicit(&r->tail, memory_order_seq_cst))
        return false;
    *fd = r->fds[head & (RING_SIZE - 1)];
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return true;
}

static bool ring_empty(fd_ring *r) { return atomic_load(&r->head) == atomic_load(&r->tail); }

static void publish_load(tloop *l) {
    atomic_store_explicit(&l->pub_adopted, atomic_load(&l->adopted), memory_order_relaxed);
    atomic_store_explicit(&l->pub_live, l->loop->stats.conns_live, memory_order_relaxed);
}

/* Sub-loop: take every fd out of the ring and give it to the user. */
static void drain_ring(void *arg) {
    tloop *l = arg;
    const vx_server *s = l->t->s;
    /* Cleared before the ring is read: a push we miss posts again (the
     * acceptor stores tail, then exchanges posted; both seq_cst). */
    atomic_store(&l->posted, false);
    int fd;
    while (ring_pop(l->ring, &fd)) {
        vx_conn *c;
        atomic_fetch_add_explicit(&l->adopted, 1, memory_order_relaxed);
        /* false: TCP_NODELAY came with the socket (vx__server_bind) */
        if (vx_conn_adopt(l->loop, fd, false, &c) == 0)
            s->o.on_accept(NULL, c, s->o.data);
        else
            VX__LOG_WARN("handoff: loop %d cannot take a connection: out of memory", l->index);
    }
    publish_load(l);
}

/* Acceptor: the sub-loop for the next connection. Least-loaded counts the
 * connections a loop published plus those handed to it since. */
static int pick(threads *t) {
    int start = (int)(t->rr++ % (unsigned)t->n), best = start;
    if (!t->s->o.least_loaded)
        return start;
    uint64_t best_load = UINT64_MAX;
    for (int k = 0; k < t->n; k++) {
        tloop *l = &t->loops[(start + k) % t->n];
        uint64_t load = atomic_load_explicit(&l->pub_live, memory_order_relaxed) + l->handed -
                        atomic_load_explicit(&l->pub_adopted, memory_order_relaxed);
        if (load < best_load) {
            best_load = load;
            best = l->index;
        }
    }
    return best;
}

/* Hand fd to a sub-loop; false when every ring is full. */
static bool hand(threads *t, int fd) {
    int first = pick(t);
    for (int k = 0; k < t->n; k++) {
        tloop *l = &t->loops[(first + k) % t->n];
        if (ring_push(l->ring, fd)) {
            l->handed++;
            t->touched[l->index] = true;
            return true;
        }
    }
    return false;
}

/* One wakeup per sub-loop per batch, and none while a drain is pending. */
static void wake_subs(threads *t) {
    for (int i = 0; i < t->n; i++) {
        if (!t->touched[i])
            continue;
        t->touched[i] = false;
        tloop *l = &t->loops[i];
        if (!atomic_exchange(&l->posted, true) && vx_loop_post(l->loop, drain_ring, l) < 0) {
            atomic_store(&l->posted, false); /* the next batch tries again */
            VX__LOG_WARN("handoff: cannot wake loop %d: out of memory", i);
        }
    }
}

static void pause_accepting(threads *t, uint64_t ms) {
    vx_io_update(t->accept_io, 0);
    vx_timer_start(t->retry, ms, 0);
}

static void accept_failed(threads *t, vx_loop *loop, int err) {
    bool exhaustion = err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
    if (!exhaustion) {
        VX__COUNT_ERR(loop, ACCEPT_OTHER);
        VX__LOG_WARN("handoff: accept failed: %s (%s)", vx_err_name(-err), vx_strerror(-err));
        return;
    }
    if (err == EMFILE || err == ENFILE)
        VX__COUNT_ERR(loop, ACCEPT_EMFILE);
    else
        VX__COUNT_ERR(loop, NOMEM);
    if (!t->exhausted)
        VX__LOG_WARN("handoff: accept failed: %s (%s); pausing accepts, retrying every %d ms",
                     vx_err_name(-err), vx_strerror(-err), RETRY_MS);
    t->exhausted = true;
    pause_accepting(t, RETRY_MS); /* a listener that stays readable must not spin */
}

static void on_acceptable(vx_io *io, int fd, unsigned events, void *data) {
    VX__UNUSED(io);
    VX__UNUSED(events);
    threads *t = data;
    vx_loop *loop = t->loops[t->n].loop;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        VX__COUNT_SYS(loop, ACCEPT);
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                accept_failed(t, loop, errno);
            break;
        }
        if (t->exhausted) {
            t->exhausted = false;
            VX__LOG_INFO("handoff: accepting again");
        }
        loop->stats.accepts++;
        if (!hand(t, cfd)) {
            t->pending_fd = cfd;
            pause_accepting(t, FULL_RETRY_MS);
            break;
        }
    }
    wake_subs(t);
}

static void on_retry(vx_timer *timer, void *data) {
    VX__UNUSED(timer);
    threads *t = data;
    if (t->pending_fd >= 0) {
        if (!hand(t, t->pending_fd)) {
            vx_timer_start(t->retry, FULL_RETRY_MS, 0);
            return;
        }
        t->pending_fd = -1;
        wake_subs(t);
    }
    vx_io_update(t->accept_io, VX_READABLE);
}

static void acceptor_done(threads *t) {
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->accept_done, true);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------- stopping */

static void check_drained(tloop *l) {
    threads *t = l->t;
    /* A closing listener may still deliver connections the kernel accepted
     * ahead (io_uring): drained means those are served too. */
    bool done = l->loop->stats.conns_live == 0 && l->loop->listeners_closing == 0;
    if (done && t->handoff)
        done = atomic_load(&t->accept_done) && ring_empty(l->ring);
    if (done || vx_loop_now(l->loop) >= l->deadline)
        vx_loop_stop(l->loop);
}

static void on_tick(vx_timer *timer, void *data) {
    VX__UNUSED(timer);
    tloop *l = data;
    snapshot(l);
    if (l->ring)
        publish_load(l);
    if (l->draining)
        check_drained(l);
}

static void on_stop(vx_io *io, int fd, unsigned events, void *data) {
    VX__UNUSED(fd);
    VX__UNUSED(events);
    tloop *l = data;
    threads *t = l->t;
    vx_io_free(io);
    l->stop_io = NULL;
    if (t->handoff && l->index == t->n) { /* the acceptor: nothing to drain */
        vx_io_free(t->accept_io);
        t->accept_io = NULL;
        vx_timer_stop(t->retry);
        if (t->pending_fd >= 0)
            close(t->pending_fd);
        t->pending_fd = -1;
        acceptor_done(t);
        vx_loop_stop(l->loop);
        return;
    }
    if (l->listener) {
        vx_listener_close(l->listener);
        l->listener = NULL;
    }
    /* Our own socket: leaving the reuseport group refuses new connections. */
    if (t->s->o.model.kind == VX_MODEL_REUSEPORT && l->index == 0)
        shutdown(t->s->listen_fd, SHUT_RD);
    l->draining = true;
    l->deadline = vx_loop_now(l->loop) + t->s->o.drain_ms;
    vx_timer_start(l->tick, DRAIN_TICK_MS, DRAIN_TICK_MS);
    check_drained(l);
}

/* ------------------------------------------------------------- a thread */

/* Pin the calling thread; the CPU, or -1. */
static int pin(int index) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -1;
    int count = CPU_COUNT(&set), want = index % (count ? count : 1);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set) || want--)
            continue;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (rc) {
            VX__LOG_WARN("loop %d: cannot pin to CPU %d: %s", index, cpu, vx_strerror(-rc));
            return -1;
        }
        return cpu;
    }
    return -1;
}

static int listen_on(tloop *l) {
    vx_server *s = l->t->s;
    vx_listen_opts o = s->o.listen;
    o.exclusive = s->o.model.kind == VX_MODEL_SHARED;
    int fd = s->listen_fd, rc;
    if (s->o.model.kind == VX_MODEL_REUSEPORT && l->index > 0 &&
        (fd = vx__server_bind(s, true)) < 0)
        return fd;
    /* Pinned reuseport loops: the kernel prefers the socket whose loop runs
     * on the CPU that processed the packet (SO_INCOMING_CPU), so a
     * connection stays on one CPU from softirq to handler. */
    if (s->o.model.kind == VX_MODEL_REUSEPORT && l->cpu >= 0 &&
        setsockopt(fd, SOL_SOCKET, SO_INCOMING_CPU, &l->cpu, sizeof l->cpu) < 0)
        VX__LOG_WARN("loop %d: SO_INCOMING_CPU: %s", l->index, vx_strerror(-errno));
    rc = vx_listen_fd(l->loop, fd, &o, s->o.on_accept, s->o.data, &l->listener);
    if (fd != s->listen_fd)
        close(fd); /* the listener holds its own dup */
    return rc;
}

static int setup(tloop *l) {
    threads *t = l->t;
    vx_server *s = t->s;
    bool acceptor = t->handoff && l->index == t->n;
    int rc = vx_loop_new(&l->loop, &(vx_loop_opts){.backend = s->o.backend});
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&l->mu);
    l->alive = true;
    pthread_mutex_unlock(&l->mu);
    if ((rc = vx_timer_new(l->loop, on_tick, l, &l->tick)) < 0)
        return rc;
    vx_timer_start(l->tick, TICK_MS, TICK_MS);
    if ((rc = vx_io_start(l->loop, s->stop_fd, VX_READABLE, on_stop, l, &l->stop_io)) < 0)
        return rc;
    if (acceptor) {
        if ((rc = vx_timer_new(l->loop, on_retry, t, &t->retry)) < 0)
            return rc;
        return vx_io_start(l->loop, s->listen_fd, VX_READABLE, on_acceptable, t, &t->accept_io);
    }
    if (s->o.on_loop && (rc = s->o.on_loop(l->loop, l->index, s->o.data)) < 0)
        return rc;
    return t->handoff ? 0 : listen_on(l);
}

/* Phase one done (rc): wait until every thread is; true when all may run. */
static bool barrier(threads *t, int rc) {
    pthread_mutex_lock(&t->mu);
    if (rc < 0 && !t->failed)
        t->failed = rc;
    t->ready++;
    if (t->nthreads == 1) /* run_inline: nobody else to decide */
        t->go = !(t->abort = t->failed != 0);
    pthread_cond_broadcast(&t->cv);
    while (!t->go && !t->abort)
        pthread_cond_wait(&t->cv, &t->mu);
    bool go = t->go;
    pthread_mutex_unlock(&t->mu);
    return go;
}

static void *loop_thread(void *arg) {
    tloop *l = arg;
    threads *t = l->t;
    bool acceptor = t->handoff && l->index == t->n;
    tl_owner = t;
    l->cpu = t->s->o.pin_cpus ? pin(l->index) : -1;
    int rc = setup(l);
    if (rc < 0)
        VX__LOG_ERROR("server: loop %d: %s (%s)", l->index, vx_err_name(rc), vx_strerror(rc));
    if (barrier(t, rc))
        rc = vx_loop_run(l->loop);
    if (acceptor)
        acceptor_done(t);
    else if (t->handoff) { /* the acceptor may post to us until it is done */
        pthread_mutex_lock(&t->mu);
        while (!atomic_load(&t->accept_done))
            pthread_cond_wait(&t->cv, &t->mu);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_lock(&l->mu);
    if (l->loop)
        vx_loop_stats(l->loop, &l->snap);
    l->alive = false;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (l->tick)
        vx_timer_free(l->tick);
    if (acceptor && t->retry)
        vx_timer_free(t->retry);
    vx_loop_free(l->loop);
    l->rc = rc;
    return NULL;
}

/* ------------------------------------------------------------- the model */

static void threads_free(threads *t) {
    for (int i = 0; t->loops && i < t->nthreads; i++) {
        tloop *l = &t->loops[i];
        int fd;
        while (l->ring && ring_pop(l->ring, &fd)) /* handed after the sub-loop gave up */
            close(fd);
        vx__free(l->ring);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    vx__free(t->touched);
    vx__free(t->loops);
    vx__free(t);
}

static int threads_new(vx_server *s, threads **out) {
    threads *t = vx__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->s = s;
    t->n = s->o.model.kind == VX_MODEL_SINGLE ? 1 : s->o.model.n;
    t->handoff = s->o.model.kind == VX_MODEL_HANDOFF;
    t->nthreads = t->n + t->handoff;
    t->pending_fd = -1;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->loops = vx__calloc((size_t)t->nthreads, sizeof *t->loops);
    if (!t->loops || (t->handoff && !(t->touched = vx__calloc((size_t)t->n, sizeof(bool))))) {
        threads_free(t);
        return -ENOMEM;
    }
    for (int i = 0; i < t->nthreads; i++) {
        tloop *l = &t->loops[i];
        l->t = t;
        l->index = i;
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (t->handoff && i < t->n && !(l->ring = vx__calloc(1, sizeof *l->ring))) {
            threads_free(t);
            return -ENOMEM;
        }
    }
    *out = t;
    return 0;
}

/* Start every thread with all signals blocked; the number started. */
static int start_threads(threads *t) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = 0;
    for (; started < t->nthreads; started++) {
        tloop *l = &t->loops[started];
        int rc = pthread_create(&l->tid, NULL, loop_thread, l);
        if (rc) {
            VX__LOG_ERROR("server: cannot start a thread: %s", vx_strerror(-rc));
            pthread_mutex_lock(&t->mu);
            if (!t->failed)
                t->failed = -rc;
            pthread_mutex_unlock(&t->mu);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

static int check_model(const vx_server *s) {
    switch (s->o.model.kind) {
    case VX_MODEL_SINGLE:
    case VX_MODEL_SHARED:
    case VX_MODEL_HANDOFF:
        break;
    case VX_MODEL_REUSEPORT:
        if (s->o.listen.unix_path) {
            VX__LOG_ERROR("server: reuseport needs TCP (a Unix path binds once); use shared");
            return -EINVAL;
        }
        break;
    default:
        return -EINVAL;
    }
    if (s->listen_fd < 0 || !s->o.on_accept || s->o.model.n < 1)
        return -EINVAL;
    if (s->o.model.kind == VX_MODEL_HANDOFF) { /* accepted with accept4 after readiness */
        int fl = fcntl(s->listen_fd, F_GETFL);
        if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0))
            return -errno;
    }
    return 0;
}

/* One loop (single, or reuseport/shared with N = 1) runs on the calling
 * thread: no thread to start, and the process stays single-threaded, which
 * the kernel rewards on every syscall (fdget takes no reference when the fd
 * table is not shared: +5% per recv/send pair, measured in docs/models.md).
 * The caller's signal mask stays as it is, so its handlers (vx_server_stop)
 * may run here and interrupt a wait, which the loop retries; pinning is undone
 * when the run ends. */
static void run_inline(threads *t) {
    tloop *l = &t->loops[0];
    cpu_set_t cpus;
    bool restore = t->s->o.pin_cpus && sched_getaffinity(0, sizeof cpus, &cpus) == 0;
    l->tid = pthread_self();
    threads *outer = tl_owner; /* a loop callback may run a server of its own */
    loop_thread(l);
    tl_owner = outer;
    if (restore)
        sched_setaffinity(0, sizeof cpus, &cpus);
}

/* The run is over: the first error, and the state freed. */
static int finish(vx_server *s, threads *t) {
    pthread_mutex_lock(&impl_lock);
    s->impl = NULL;
    pthread_mutex_unlock(&impl_lock);
    int rc = t->failed;
    for (int i = 0; !rc && i < t->nthreads; i++)
        rc = t->loops[i].rc;
    threads_free(t);
    return rc;
}

int vx__threads_run(vx_server *s) {
    threads *t;
    int rc = check_model(s);
    if (rc < 0 || (rc = threads_new(s, &t)) < 0)
        return rc;
    pthread_mutex_lock(&impl_lock);
    s->impl = t;
    pthread_mutex_unlock(&impl_lock);

    if (t->nthreads == 1) { /* one loop: on this thread, the process gains none */
        run_inline(t);
        return finish(s, t);
    }
    int started = start_threads(t);
    pthread_mutex_lock(&t->mu);
    while (t->ready < started)
        pthread_cond_wait(&t->cv, &t->mu);
    if (t->failed || started < t->nthreads)
        t->abort = true;
    else
        t->go = true;
    pthread_cond_broadcast(&t->cv);
    if (t->abort && t->handoff && started <= t->n) /* no acceptor thread to say so */
        atomic_store(&t->accept_done, true);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < started; i++)
        pthread_join(t->loops[i].tid, NULL);
    return finish(s, t);
}

int vx__threads_count(const vx_server *s) {
    switch (s->o.model.kind) {
    case VX_MODEL_SINGLE:
        return 1;
    case VX_MODEL_REUSEPORT:
    case VX_MODEL_SHARED:
    case VX_MODEL_HANDOFF:
        return s->o.model.n;
    default:
        return -EINVAL;
    }
}

static void refresh(void *arg) {
    tloop *l = arg;
    pthread_mutex_lock(&l->mu);
    vx_loop_stats(l->loop, &l->snap);
    l->gen_done = l->gen_want;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* A fresh copy from the loop itself, or (it did not answer in time, or the
 * caller is one of the loops, which must not wait for each other) the last. */
static void read_stats(tloop *l, vx_stats *out) {
    pthread_mutex_lock(&l->mu);
    if (l->alive && pthread_equal(pthread_self(), l->tid)) {
        vx_loop_stats(l->loop, &l->snap);
    } else if (l->alive && tl_owner != l->t && vx_loop_post(l->loop, refresh, l) == 0) {
        uint64_t want = ++l->gen_want;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REFRESH_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        while (l->alive && l->gen_done < want)
            if (pthread_cond_timedwait(&l->cv, &l->mu, &until))
                break;
    }
    *out = l->snap;
    pthread_mutex_unlock(&l->mu);
}

int vx__threads_stats(const vx_server *s, int i, vx_stats *out) {
    if (!out || i < 0 || i >= vx__threads_count(s))
        return -EINVAL;
    pthread_mutex_lock(&impl_lock);
    threads *t = s->impl;
    if (t)
        read_stats(&t->loops[i], out);
    pthread_mutex_unlock(&impl_lock);
    return t ? 0 : -EAGAIN;
}
