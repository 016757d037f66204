/* Master/worker processes, nginx's model. The thread that calls
 * vx_server_run is the master: it forks o.model.n workers, each serving the
 * listening socket it inherited with its own loop (vx__threads_run), and
 * then only supervises them:
 *   - a worker that dies is logged and replaced, with a backoff that grows
 *     from 100 ms to 5 s while workers keep dying young (no fork storm);
 *   - SIGHUP replaces the workers one by one: the new one first, and the old
 *     one gets SIGTERM only once the new one accepts;
 *   - SIGTERM, SIGINT or vx_server_stop: every worker gets SIGTERM (stop
 *     accepting, finish in-flight connections within drain_ms), the master
 *     waits drain_ms + 1 s, SIGKILLs what is left and returns.
 * The listening socket stays open in the master the whole time, so the
 * kernel's accept queue outlives every worker: no queued connection is lost
 * when a worker stops, whoever accepts it next.
 *
 * The master runs no vx_loop: it forks again on every restart, and an epoll
 * set or an io_uring ring must not be shared with a child. It waits in
 * poll() on a signalfd (SIGCHLD SIGHUP SIGTERM SIGINT, blocked in the calling
 * thread), the stop eventfd and the readiness pipes of starting workers. */
#include "server/server.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 10000        /* a worker that lived this long resets the backoff */
#define READY_TIMEOUT_MS 10000 /* a new worker must accept within this */
#define KILL_GRACE_MS 1000     /* past drain_ms, before SIGKILL */

enum { W_STARTING, W_RUNNING, W_RETIRING };

/* One worker process as the master sees it; pid 0 marks a free entry. */
typedef struct wk {
    pid_t pid;
    int slot;     /* 0..n-1: the place it fills */
    int state;    /* W_* */
    int ready_fd; /* starting: read end of its readiness pipe; else -1 */
    unsigned gen; /* generation it was forked in (SIGHUP starts a new one) */
    uint64_t started_ms;
    uint64_t deadline_ms; /* starting: ready by then; retiring: exited by then */
} wk;

/* The master's state, owned by vx__procs_run for the length of the call. */
typedef struct procs {
    vx_server *s;
    pid_t master;
    wk *w;
    int cap; /* entries in w: n serving, plus replacements and retiring ones */
    int sig_fd;
    unsigned gen;
    uint64_t backoff_ms;   /* next restart delay after a worker died young */
    uint64_t next_fork_ms; /* no fork before this (backoff) */
    bool stopping;
} procs;

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- worker side */

/* Per worker process (each is a fresh process with one of these). */
static vx_server *worker_self;
static vx_loop_init_fn worker_user_on_loop;
static int worker_ready_w = -1;

static void worker_on_signal(int signum) {
    VX__UNUSED(signum);
    int saved = errno;
    vx_server_stop(worker_self); /* async-signal-safe: one eventfd write */
    errno = saved;
}

/* Posted from on_loop, so it runs in the loop's first turn: the listener is
 * registered by then, and the master may retire the worker this replaces. */
static void worker_say_ready(void *arg) {
    VX__UNUSED(arg);
    if (worker_ready_w < 0)
        return;
    char one = 1;
    ssize_t n = write(worker_ready_w, &one, 1);
    VX__UNUSED(n);
    close(worker_ready_w);
    worker_ready_w = -1;
}

static int worker_on_loop(vx_loop *loop, int index, void *data) {
    if (worker_user_on_loop) {
        int rc = worker_user_on_loop(loop, index, data);
        if (rc < 0)
            return rc;
    }
    return index == 0 ? vx_loop_post(loop, worker_say_ready, NULL) : 0;
}

static void worker_signals(void) {
    struct sigaction sa = {.sa_handler = worker_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN; /* reloading is the master's business */
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);
    /* The master's mask blocks the signals of its signalfd; a worker starts
     * clean. A SIGTERM that came early was kept pending and arrives now. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The child after fork: serve the inherited socket until SIGTERM, exit. */
static _Noreturn void worker_main(procs *m, int ready_w) {
    vx_server *s = m->s;
    close(m->sig_fd); /* the master's, like the other workers' pipes */
    for (int i = 0; i < m->cap; i++)
        if (m->w[i].pid && m->w[i].ready_fd >= 0)
            close(m->w[i].ready_fd);
    static vx_server worker;
    worker = *s;
    atomic_store(&worker.stopping, false);
    worker.impl = NULL;
    /* One loop on the shared socket; EPOLLEXCLUSIVE keeps the workers'
     * epoll sets from all waking for one connection. */
    worker.o.model = (vx_model){.kind = VX_MODEL_SHARED, .n = 1};
    worker.o.listen.exclusive = true;
    worker.o.on_loop = worker_on_loop;
    worker_user_on_loop = s->o.on_loop;
    worker_ready_w = ready_w;
    /* Its own stop eventfd, under the master's fd number: a stray
     * vx_server_stop(master's object) in this process stops this worker,
     * never the master. */
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0 || dup3(efd, s->stop_fd, O_CLOEXEC) < 0)
        _exit(1);
    close(efd);
    worker.stop_fd = s->stop_fd;
    worker_self = &worker;
    /* An orphan would serve on unsupervised: a master that dies (even by
     * SIGKILL) takes its workers along, gracefully. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != m->master)
        worker_on_signal(SIGTERM);
    worker_signals();
    int rc = vx__threads_run(&worker);
    if (rc < 0)
        VX__LOG_ERROR("procs: worker %d: %s", (int)getpid(), vx_strerror(rc));
    _exit(rc < 0 ? 1 : 0);
}

/* ------------------------------------------------------------- master side */

static wk *entry_new(procs *m) {
    for (int i = 0; i < m->cap; i++)
        if (!m->w[i].pid)
            return &m->w[i];
    int cap = m->cap * 2;
    wk *w = vx__realloc(m->w, (size_t)cap * sizeof *w);
    if (!w)
        return NULL;
    for (int i = m->cap; i < cap; i++)
        w[i] = (wk){.ready_fd = -1};
    m->w = w;
    m->cap = cap;
    return &m->w[cap / 2];
}

static int spawn(procs *m, int slot) {
    wk *w = entry_new(m);
    if (!w)
        return -ENOMEM;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(p[0]);
        close(p[1]);
        return err;
    }
    if (pid == 0) {
        close(p[0]);
        worker_main(m, p[1]);
    }
    close(p[1]);
    uint64_t now = mono_ms();
    *w = (wk){.pid = pid,
              .slot = slot,
              .state = W_STARTING,
              .ready_fd = p[0],
              .gen = m->gen,
              .started_ms = now,
              .deadline_ms = now + READY_TIMEOUT_MS};
    if (!m->s->o.quiet)
        VX__LOG_INFO("procs: worker %d started (slot %d)", (int)pid, slot);
    return 0;
}

static bool slot_served(const procs *m, int slot) {
    for (int i = 0; i < m->cap; i++)
        if (m->w[i].pid && m->w[i].slot == slot && m->w[i].state != W_RETIRING)
            return true;
    return false;
}

static bool any_starting(const procs *m) {
    for (int i = 0; i < m->cap; i++)
        if (m->w[i].pid && m->w[i].state == W_STARTING)
            return true;
    return false;
}

static void fork_failed(procs *m, int err) {
    VX__LOG_ERROR("procs: cannot start a worker: %s; retrying in %llu ms", vx_strerror(err),
                  (unsigned long long)m->backoff_ms);
    m->next_fork_ms = mono_ms() + m->backoff_ms;
    m->backoff_ms = VX__MIN(m->backoff_ms * 2, BACKOFF_MAX_MS);
}

/* Fill empty slots (start, restarts), then go on with a reload: one new
 * worker at a time, for the first slot still served by an older generation. */
static void spawn_due(procs *m) {
    if (m->stopping || mono_ms() < m->next_fork_ms)
        return;
    for (int slot = 0; slot < m->s->o.model.n; slot++) {
        if (slot_served(m, slot))
            continue;
        int rc = spawn(m, slot);
        if (rc < 0)
            return fork_failed(m, rc);
    }
    if (any_starting(m))
        return; /* a replacement is on its way: wait until it accepts */
    for (int i = 0; i < m->cap; i++) {
        if (m->w[i].pid && m->w[i].state == W_RUNNING && m->w[i].gen != m->gen) {
            int rc = spawn(m, m->w[i].slot);
            if (rc < 0)
                fork_failed(m, rc);
            return;
        }
    }
}

/* A new worker accepts: if it replaces an older one, retire that one now. */
static void on_ready(procs *m, wk *w) {
    char c;
    ssize_t n = read(w->ready_fd, &c, 1);
    close(w->ready_fd);
    w->ready_fd = -1;
    if (n != 1)
        return; /* died before accepting: reap() reports it */
    w->state = W_RUNNING;
    for (int i = 0; i < m->cap; i++) {
        wk *old = &m->w[i];
        if (old == w || !old->pid || old->slot != w->slot || old->state != W_RUNNING)
            continue;
        kill(old->pid, SIGTERM);
        old->state = W_RETIRING;
        old->deadline_ms = mono_ms() + m->s->o.drain_ms + KILL_GRACE_MS;
        if (!m->s->o.quiet)
            VX__LOG_INFO("procs: worker %d replaced by %d (slot %d); the old one drains",
                         (int)old->pid, (int)w->pid, w->slot);
    }
}

static void describe(int status, char *buf, size_t len) {
    if (status < 0)
        snprintf(buf, len, "exited (status unknown)");
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (SIG%s)", WTERMSIG(status),
                 sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void on_exit_of(procs *m, wk *w, int status) {
    uint64_t now = mono_ms(), lived = now - w->started_ms;
    bool expected = m->stopping || w->state == W_RETIRING;
    if (!m->s->o.quiet) {
        char why[64];
        describe(status, why, sizeof why);
        vx__log(expected ? VX_LOG_INFO : VX_LOG_WARN,
                "procs: worker %d (slot %d) %s after %llu ms%s", (int)w->pid, w->slot, why,
                (unsigned long long)lived, expected ? "" : "; replacing it");
    }
    if (!expected) {
        /* Young deaths in a row back off; a worker that lived resets it. */
        if (lived >= STABLE_MS)
            m->backoff_ms = BACKOFF_MIN_MS;
        m->next_fork_ms = lived >= STABLE_MS ? now : now + m->backoff_ms;
        if (lived < STABLE_MS)
            m->backoff_ms = VX__MIN(m->backoff_ms * 2, BACKOFF_MAX_MS);
    }
    if (w->ready_fd >= 0)
        close(w->ready_fd);
    *w = (wk){.ready_fd = -1};
}

/* Collect exited workers (by pid: the program may have other children). */
static void reap(procs *m) {
    for (int i = 0; i < m->cap; i++) {
        if (!m->w[i].pid)
            continue;
        int status;
        pid_t r = waitpid(m->w[i].pid, &status, WNOHANG);
        if (r == m->w[i].pid)
            on_exit_of(m, &m->w[i], status);
        else if (r < 0 && errno == ECHILD)
            on_exit_of(m, &m->w[i], -1);
    }
}

/* SIGKILL workers past their deadline: a new one that never accepted, an
 * old one that does not finish draining. */
static void enforce_deadlines(procs *m) {
    uint64_t now = mono_ms();
    for (int i = 0; i < m->cap; i++) {
        wk *w = &m->w[i];
        if (!w->pid || w->state == W_RUNNING || now < w->deadline_ms)
            continue;
        VX__LOG_WARN("procs: worker %d %s in time: SIGKILL", (int)w->pid,
                     w->state == W_STARTING ? "did not start accepting" : "did not drain");
        kill(w->pid, SIGKILL);
        w->deadline_ms = UINT64_MAX; /* once */
    }
}

static int next_timeout(const procs *m) {
    uint64_t now = mono_ms(), t = now + 1000; /* the tick is only a safety net */
    bool pending = false;
    for (int i = 0; i < m->cap; i++) {
        const wk *w = &m->w[i];
        if (w->pid && w->state != W_RUNNING)
            t = VX__MIN(t, w->deadline_ms);
        if (w->pid && w->state == W_RUNNING && w->gen != m->gen)
            pending = true;
    }
    for (int slot = 0; slot < m->s->o.model.n; slot++)
        pending = pending || !slot_served(m, slot);
    if (pending)
        t = VX__MIN(t, VX__MAX(m->next_fork_ms, now));
    return t > now ? (int)(t - now) : 0;
}

/* Drain the signalfd; SIGCHLD needs nothing: reap() runs every turn. */
static void read_signals(procs *m) {
    struct signalfd_siginfo si;
    while (read(m->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP && !m->stopping) {
            m->gen++;
            if (!m->s->o.quiet)
                VX__LOG_INFO("procs: SIGHUP: replacing the workers one by one");
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            atomic_store(&m->s->stopping, true);
        }
    }
}

/* One wait of the master: signals, stop requests, readiness of new workers. */
static void master_turn(procs *m) {
    enum { FIXED = 2 };
    struct pollfd p[FIXED + 64];
    wk *who[64];
    int np = FIXED;
    p[0] = (struct pollfd){.fd = m->sig_fd, .events = POLLIN};
    /* Once stopping, the eventfd stays readable: do not watch it. */
    p[1] = (struct pollfd){.fd = m->stopping ? -1 : m->s->stop_fd, .events = POLLIN};
    for (int i = 0; i < m->cap && np < FIXED + 64; i++) {
        if (m->w[i].pid && m->w[i].ready_fd >= 0) {
            who[np - FIXED] = &m->w[i];
            p[np++] = (struct pollfd){.fd = m->w[i].ready_fd, .events = POLLIN};
        }
    }
    int n = poll(p, (nfds_t)np, m->stopping ? 50 : next_timeout(m));
    if (n > 0) {
        if (p[0].revents)
            read_signals(m);
        for (int i = FIXED; i < np; i++)
            if (p[i].revents)
                on_ready(m, who[i - FIXED]);
    }
    reap(m);
    enforce_deadlines(m);
}

static int live_workers(const procs *m) {
    int n = 0;
    for (int i = 0; i < m->cap; i++)
        n += m->w[i].pid != 0;
    return n;
}

static void stop_all(procs *m) {
    m->stopping = true;
    for (int i = 0; i < m->cap; i++)
        if (m->w[i].pid)
            kill(m->w[i].pid, SIGTERM);
    uint64_t deadline = mono_ms() + m->s->o.drain_ms + KILL_GRACE_MS;
    while (live_workers(m) && mono_ms() < deadline)
        master_turn(m);
    if (!live_workers(m))
        return;
    VX__LOG_WARN("procs: %d workers still running after %llu ms: SIGKILL", live_workers(m),
                 (unsigned long long)(m->s->o.drain_ms + KILL_GRACE_MS));
    for (int i = 0; i < m->cap; i++) {
        if (!m->w[i].pid)
            continue;
        kill(m->w[i].pid, SIGKILL);
        int status;
        pid_t r = waitpid(m->w[i].pid, &status, 0);
        on_exit_of(m, &m->w[i], r == m->w[i].pid ? status : -1);
    }
}

int vx__procs_run(vx_server *s) {
    if (s->listen_fd < 0 || s->o.model.n < 1)
        return -EINVAL;
    procs *m = vx__calloc(1, sizeof *m);
    wk *w = vx__calloc((size_t)s->o.model.n * 2, sizeof *w);
    if (!m || !w) {
        vx__free(m);
        vx__free(w);
        return -ENOMEM;
    }
    *m = (procs){
        .s = s, .master = getpid(), .w = w, .cap = s->o.model.n * 2, .backoff_ms = BACKOFF_MIN_MS};
    for (int i = 0; i < m->cap; i++)
        m->w[i].ready_fd = -1;
    /* Ignored SIGCHLD would reap workers behind our back: no exit status. */
    struct sigaction chld, dfl = {.sa_handler = SIG_DFL};
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, NULL, &chld);
    bool chld_ignored = chld.sa_handler == SIG_IGN || (chld.sa_flags & SA_NOCLDWAIT);
    if (chld_ignored)
        sigaction(SIGCHLD, &dfl, NULL);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    m->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int rc = m->sig_fd < 0 ? -errno : 0;
    s->impl = m;
    while (!rc && !atomic_load(&s->stopping)) {
        spawn_due(m);
        master_turn(m);
    }
    stop_all(m);
    if (m->sig_fd >= 0) {
        read_signals(m); /* consumed here, not delivered once unblocked */
        close(m->sig_fd);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (chld_ignored)
        sigaction(SIGCHLD, &chld, NULL);
    s->impl = NULL;
    vx__free(m->w);
    vx__free(m);
    return rc;
}

int vx__procs_count(const vx_server *s) { return s->o.model.n; }
