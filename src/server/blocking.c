/* The blocking baselines, FOR COMPARISON ONLY: thread-per-connection and
 * process-per-connection (fork), the models of the textbooks that predate
 * event loops. They exist so that a user can measure what the reactors save
 * (a thread or process, a stack and a context switch per connection); they
 * are not a way to serve production traffic.
 *
 * One acceptor (the thread that called vx_server_run) waits in poll() on the
 * listening socket and the stop eventfd, accepts, and hands each connection
 * to a new detached thread or a new child process running o.on_blocking on a
 * blocking socket. The listening socket stays non-blocking: poll() is the
 * blocking wait, so accept4() never sleeps past a stop request.
 *
 * Graceful stop: stop accepting, wait up to drain_ms for the live
 * connections, then unblock what is left (shutdown() under threads,
 * SIGTERM then SIGKILL for children). */
#include "server/server.h"
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MS 100 /* pause after EMFILE/ENFILE or a failed spawn */
#define REAP_MS 100    /* fork model: reap children at least this often */
#define GRACE_MS 1000  /* after drain_ms: time given to unblocked connections */

/* A live connection of the thread model; owned by its thread, which frees it. */
typedef struct tconn {
    vx__list link; /* blk.conns, under blk.mu */
    struct blk *b;
    int fd;
} tconn;

/* The state of one run. Shared by the acceptor and the connection threads:
 * freed by whoever drops the last reference (threads still blocked past the
 * deadline may outlive vx__blocking_run). */
typedef struct blk {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when a connection ends */
    int refs;          /* 1 for the acceptor + one per connection thread */
    int live;          /* connections being served */
    vx__list conns;    /* tconn: thread model only */
    vx_blocking_fn fn; /* copies: threads must not touch the server */
    void *data;
    pid_t *pids; /* fork model: children alive */
    size_t npids, cappids;
    int spare_fd;         /* reserve fd, given up to shed a connection at EMFILE */
    uint64_t last_log_ms; /* rate limit of accept/spawn error lines */
    unsigned suppressed;
} blk;

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One line per second at most: an fd shortage produces an error per accept. */
static void log_limited(blk *b, const char *what, int err) {
    uint64_t now = mono_ms();
    if (b->last_log_ms && now - b->last_log_ms < 1000) {
        b->suppressed++;
        return;
    }
    VX__LOG_WARN("%s: %s (%u similar lines suppressed); backing off %d ms", what, vx_strerror(err),
                 b->suppressed, BACKOFF_MS);
    b->last_log_ms = now;
    b->suppressed = 0;
}

static void blk_unref(blk *b) {
    pthread_mutex_lock(&b->mu);
    bool last = --b->refs == 0;
    pthread_mutex_unlock(&b->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    vx__free(b->pids);
    vx__free(b);
}

/* Sleep ms unless stop_fd becomes readable first; true when stopping. */
static bool pause_ms(vx_server *s, int ms) {
    struct pollfd p = {.fd = s->stop_fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0 || atomic_load(&s->stopping);
}

/* ------------------------------------------------------------ threads */

static void *conn_thread(void *arg) {
    tconn *t = arg;
    blk *b = t->b;
    b->fn(t->fd, b->data);
    /* Closed under the lock: the acceptor may be shutdown()ing this fd. */
    pthread_mutex_lock(&b->mu);
    vx__list_remove(&t->link);
    close(t->fd);
    b->live--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    vx__free(t);
    blk_unref(b);
    return NULL;
}

static int spawn_thread(blk *b, int fd) {
    tconn *t = vx__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->b = b;
    t->fd = fd;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
#ifndef __SANITIZE_ADDRESS__
    /* The textbook cost of this model is a stack per connection; keep it
     * modest so a thousand connections fit (ASan needs the default). */
    pthread_attr_setstacksize(&attr, 256 * 1024);
#endif
    pthread_mutex_lock(&b->mu);
    vx__list_push(&b->conns, &t->link);
    b->live++;
    b->refs++;
    pthread_t tid;
    int rc = pthread_create(&tid, &attr, conn_thread, t);
    if (rc) {
        vx__list_remove(&t->link);
        b->live--;
        b->refs--;
    }
    pthread_mutex_unlock(&b->mu);
    pthread_attr_destroy(&attr);
    if (rc)
        vx__free(t);
    return -rc;
}

/* Wait for live == 0 until deadline (ms, monotonic); true when none is left. */
static bool wait_threads(blk *b, uint64_t deadline) {
    pthread_mutex_lock(&b->mu);
    while (b->live > 0) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (deadline - now) * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
    }
    bool done = b->live == 0;
    pthread_mutex_unlock(&b->mu);
    return done;
}

static void drain_threads(blk *b, uint64_t drain_ms) {
    if (wait_threads(b, mono_ms() + drain_ms))
        return;
    /* Past the deadline: make every blocked read/write of the handlers fail. */
    pthread_mutex_lock(&b->mu);
    VX__LOG_WARN("thread-per-conn: %d connections still open after %llu ms: shutting them down",
                 b->live, (unsigned long long)drain_ms);
    for (vx__list *it = b->conns.next; it != &b->conns; it = it->next)
        shutdown(VX__CONTAINER_OF(it, tconn, link)->fd, SHUT_RDWR);
    pthread_mutex_unlock(&b->mu);
    if (!wait_threads(b, mono_ms() + GRACE_MS))
        VX__LOG_WARN("thread-per-conn: handlers still running; leaving them detached");
}

/* --------------------------------------------------------------- fork */

/* The child of one connection: it owns fd and nothing else of the server. */
static _Noreturn void conn_child(vx_server *s, blk *b, int fd) {
    /* A handler the user installed for the server (say, one that calls
     * vx_server_stop) must not run here: it would stop the parent. */
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    close(s->listen_fd);
    close(s->stop_fd);
    if (b->spare_fd >= 0)
        close(b->spare_fd);
    b->fn(fd, b->data);
    close(fd);
    _exit(0);
}

static int spawn_child(vx_server *s, blk *b, int fd) {
    if (b->npids == b->cappids) {
        size_t cap = b->cappids ? b->cappids * 2 : 64;
        pid_t *p = vx__realloc(b->pids, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        b->pids = p;
        b->cappids = cap;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        conn_child(s, b, fd);
    b->pids[b->npids++] = pid;
    b->live++;
    return 0;
}

/* Collect the children that ended. waitpid per pid, never waitpid(-1): the
 * user's program may have children of its own. To avoid a syscall per child
 * per turn, peek first (WNOWAIT) at whichever child is a zombie. */
static void reap(blk *b, bool scan) {
    for (;;) {
        siginfo_t si = {0};
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            break;
        size_t i = 0;
        while (i < b->npids && b->pids[i] != si.si_pid)
            i++;
        if (i == b->npids) { /* someone else's zombie: look for ours by pid */
            scan = true;
            break;
        }
        waitpid(si.si_pid, NULL, 0);
        b->pids[i] = b->pids[--b->npids];
        b->live--;
    }
    for (size_t i = 0; scan && i < b->npids;) {
        pid_t r = waitpid(b->pids[i], NULL, WNOHANG);
        if (r == b->pids[i] || (r < 0 && errno == ECHILD)) { /* ECHILD: SIGCHLD ignored */
            b->pids[i] = b->pids[--b->npids];
            b->live--;
        } else {
            i++;
        }
    }
}

static bool wait_children(blk *b, uint64_t deadline) {
    for (;;) {
        reap(b, true);
        if (!b->npids || mono_ms() >= deadline)
            return !b->npids;
        poll(NULL, 0, 20);
    }
}

static void kill_children(blk *b, int sig) {
    for (size_t i = 0; i < b->npids; i++)
        kill(b->pids[i], sig);
}

static void drain_children(blk *b, uint64_t drain_ms) {
    if (wait_children(b, mono_ms() + drain_ms))
        return;
    VX__LOG_WARN("fork-per-conn: %zu connections still open after %llu ms: SIGTERM", b->npids,
                 (unsigned long long)drain_ms);
    kill_children(b, SIGTERM);
    if (wait_children(b, mono_ms() + GRACE_MS))
        return;
    kill_children(b, SIGKILL);
    while (!wait_children(b, mono_ms() + GRACE_MS))
        ;
}

/* ------------------------------------------------------------ acceptor */

/* EMFILE/ENFILE: free the reserve fd, accept the connection and close it at
 * once (the client learns now instead of timing out in the queue), re-arm. */
static void shed_one(vx_server *s, blk *b) {
    if (b->spare_fd < 0)
        return;
    close(b->spare_fd);
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Accept one connection and start its thread or child. Never spins: every
 * error that can repeat pauses BACKOFF_MS. false when stopping. TCP_NODELAY
 * comes with the socket: vx__server_bind set it on the listener. */
static bool accept_one(vx_server *s, blk *b, bool fork_model) {
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        int err = -errno;
        if (err == -EAGAIN || err == -EINTR || err == -ECONNABORTED)
            return true;
        if (err == -EMFILE || err == -ENFILE)
            shed_one(s, b);
        log_limited(b, "accept", err);
        return !pause_ms(s, BACKOFF_MS);
    }
    int rc = fork_model ? spawn_child(s, b, fd) : spawn_thread(b, fd);
    if (fork_model || rc < 0)
        close(fd); /* the child has its copy; or nobody will serve it */
    if (rc < 0) {
        log_limited(b, fork_model ? "fork-per-conn: fork" : "thread-per-conn: pthread_create", rc);
        return !pause_ms(s, BACKOFF_MS);
    }
    return true;
}

static void accept_loop(vx_server *s, blk *b, bool fork_model) {
    struct pollfd p[2] = {{.fd = s->listen_fd, .events = POLLIN},
                          {.fd = s->stop_fd, .events = POLLIN}};
    while (!atomic_load(&s->stopping)) {
        if (fork_model)
            reap(b, false);
        int n = poll(p, 2, fork_model ? REAP_MS : -1);
        if (n < 0 && errno != EINTR) {
            log_limited(b, "poll", -errno);
            pause_ms(s, BACKOFF_MS);
            continue;
        }
        if (n <= 0)
            continue;
        if (p[1].revents)
            break;
        if (p[0].revents && !accept_one(s, b, fork_model))
            break;
    }
}

int vx__blocking_run(vx_server *s) {
    bool fork_model = s->o.model.kind == VX_MODEL_FORK_PER_CONN;
    if (s->listen_fd < 0 || !s->o.on_blocking)
        return -EINVAL;
    blk *b = vx__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    vx__list_init(&b->conns);
    b->refs = 1;
    b->fn = s->o.on_blocking;
    b->data = s->o.data;
    b->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    s->impl = b;

    accept_loop(s, b, fork_model);

    if (fork_model)
        drain_children(b, s->o.drain_ms);
    else
        drain_threads(b, s->o.drain_ms);
    if (b->spare_fd >= 0)
        close(b->spare_fd);
    s->impl = NULL;
    blk_unref(b);
    return 0;
}
