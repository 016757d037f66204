/* Master/worker processes (procs:2). Each case forks a child that becomes
 * the master (vx_server_run); the test talks to it over loopback and signals
 * it. Every worker writes its pid into a pipe from on_loop, so the test sees
 * each start; /proc/<master>/task/<master>/children gives the live set.
 *   echo      20 concurrent clients, byte-exact with half-close
 *   kill      SIGKILL one worker under load: replaced, still answering
 *   reload    SIGHUP under load: no failed connection or request, all new pids
 *   drain     SIGTERM: a client mid-exchange gets its whole echo, exit 0 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS 2
#define MAXPIDS 16

/* ------------------------------------------------- in the worker processes */

static int pid_pipe_w = -1;
static echo_server counters; /* echo_cbs counts into it; one copy per process */

static int on_loop(vx_loop *loop, int index, void *data) {
    (void)loop;
    (void)index;
    (void)data;
    pid_t me = getpid();
    ssize_t n = write(pid_pipe_w, &me, sizeof me); /* atomic: < PIPE_BUF */
    return n == (ssize_t)sizeof me ? 0 : -EIO;
}

static void on_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    if (vx_conn_start(c, &echo_cbs, data) < 0)
        vx_conn_close(c);
}

/* ---------------------------------------------------------- the master */

typedef struct master {
    pid_t pid;
    uint16_t port;
    int pids_r; /* worker pids, as they start */
    pid_t pids[MAXPIDS];
    int npids;
} master;

static void master_start(master *m, uint64_t drain_ms) {
    int pp[2], portp[2];
    REQUIRE(pipe(pp) == 0 && pipe(portp) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pp[0]);
        close(portp[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        pid_pipe_w = pp[1];
        vx_server_opts o = {
            .listen = {.host = "127.0.0.1"},
            .model = {.kind = VX_MODEL_PROCS, .n = NWORKERS},
            .on_accept = on_accept,
            .on_loop = on_loop,
            .data = &counters,
            .drain_ms = drain_ms,
        };
        vx_server *s;
        int rc = vx_server_new(&s, &o);
        uint16_t port = rc < 0 ? 0 : vx_server_port(s);
        if (write(portp[1], &port, sizeof port) != sizeof port || rc < 0)
            _exit(2);
        close(portp[1]);
        rc = vx_server_run(s);
        vx_server_free(s);
        _exit(rc == 0 ? 0 : 3);
    }
    close(pp[1]);
    close(portp[1]);
    memset(m, 0, sizeof *m);
    m->pid = pid;
    m->pids_r = pp[0];
    REQUIRE_EQ_INT(read_exact(portp[0], &m->port, sizeof m->port, 5000), sizeof m->port);
    close(portp[0]);
    REQUIRE(m->port != 0);
}

/* The next n worker starts (pids appended to m->pids); false on timeout. */
static bool master_wait_starts(master *m, int n, int timeout_ms) {
    for (int i = 0; i < n; i++) {
        pid_t p;
        if (m->npids == MAXPIDS || read_exact(m->pids_r, &p, sizeof p, timeout_ms) != sizeof p)
            return false;
        m->pids[m->npids++] = p;
    }
    return true;
}

/* The master's live children, sorted; returns how many. */
static int children(pid_t master_pid, pid_t *out, int max) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)master_pid, (int)master_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, p;
    while (n < max && fscanf(f, "%d", &p) == 1)
        out[n++] = p;
    fclose(f);
    for (int i = 1; i < n; i++) /* insertion sort: a handful */
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            pid_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

typedef struct want {
    pid_t master;
    pid_t a, b; /* exactly these two children */
} want;

static bool children_are(void *arg) {
    want *w = arg;
    pid_t c[8];
    int n = children(w->master, c, 8);
    pid_t lo = w->a < w->b ? w->a : w->b, hi = w->a < w->b ? w->b : w->a;
    return n == 2 && c[0] == lo && c[1] == hi;
}

/* Wait for the master to exit; its status, or -1 on timeout (then killed). */
static int master_wait_exit(master *m, int timeout_ms) {
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    int status;
    do {
        if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
            close(m->pids_r);
            return status;
        }
        sleep_ms(10);
    } while (now_ms() < end);
    kill(m->pid, SIGKILL);
    waitpid(m->pid, &status, 0);
    close(m->pids_r);
    return -1;
}

static void master_stop(master *m) {
    kill(m->pid, SIGTERM);
    int status = master_wait_exit(m, 5000);
    CHECK_MSG(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "master status %#x",
              status);
}

/* ------------------------------------------------------------- clients */

static int echo_once(uint16_t port, uint64_t seed, size_t max) {
    rng r;
    rng_seed(&r, seed);
    size_t len = (size_t)rng_range(&r, 1, max);
    unsigned char *buf = rng_alloc(&r, len);
    int rc = -1;
    int fd = tcp_connect("127.0.0.1", port, 3000);
    if (fd >= 0) {
        rc = echo_roundtrip(fd, buf, len, &r, 5000);
        close(fd);
    }
    free(buf);
    return rc;
}

/* A client thread in a loop: connect, `exchanges` request/response rounds,
 * half-close, EOF, close; reconnects after a failure. */
typedef struct load {
    pthread_t tid;
    uint16_t port;
    int index, exchanges;
    atomic_bool stop;
    atomic_int conns_ok, conns_failed, requests;
    char why[128];
} load;

static bool load_conn(load *l, rng *r) {
    int fd = tcp_connect("127.0.0.1", l->port, 3000);
    if (fd < 0) {
        snprintf(l->why, sizeof l->why, "connect: %s", vx_err_name(fd));
        return false;
    }
    unsigned char out[2048], in[2048];
    bool ok = true;
    for (int i = 0; ok && i < l->exchanges; i++) {
        size_t len = (size_t)rng_range(r, 1, sizeof out);
        rng_fill(r, out, len);
        ssize_t w = write_all(fd, out, len, 3000),
                n = w == (ssize_t)len ? read_exact(fd, in, len, 3000) : -1;
        ok = n == (ssize_t)len && memcmp(in, out, len) == 0;
        if (!ok)
            snprintf(l->why, sizeof l->why, "exchange %d: write %zd read %zd of %zu", i, w, n, len);
        else
            atomic_fetch_add(&l->requests, 1);
    }
    if (ok) {
        shutdown(fd, SHUT_WR);
        int e = wait_eof(fd, 3000);
        ok = e == 0;
        if (!ok)
            snprintf(l->why, sizeof l->why, "wait_eof: %d", e);
    }
    close(fd);
    return ok;
}

static void *load_thread(void *arg) {
    load *l = arg;
    rng r;
    rng_seed(&r, 77 + (uint64_t)l->index);
    while (!atomic_load(&l->stop)) {
        if (load_conn(l, &r))
            atomic_fetch_add(&l->conns_ok, 1);
        else
            atomic_fetch_add(&l->conns_failed, 1);
    }
    return NULL;
}

static void load_start(load *ls, int n, uint16_t port, int exchanges) {
    for (int i = 0; i < n; i++) {
        memset(&ls[i], 0, sizeof ls[i]);
        ls[i].port = port;
        ls[i].index = i;
        ls[i].exchanges = exchanges;
        REQUIRE(pthread_create(&ls[i].tid, NULL, load_thread, &ls[i]) == 0);
    }
}

/* Stop and join; totals into ok/failed/requests. */
static void load_stop(load *ls, int n, int *ok, int *failed, int *requests) {
    *ok = *failed = *requests = 0;
    for (int i = 0; i < n; i++)
        atomic_store(&ls[i].stop, true);
    for (int i = 0; i < n; i++) {
        pthread_join(ls[i].tid, NULL);
        *ok += atomic_load(&ls[i].conns_ok);
        *failed += atomic_load(&ls[i].conns_failed);
        *requests += atomic_load(&ls[i].requests);
        if (atomic_load(&ls[i].conns_failed))
            harness_log("client %d: %d failed, last: %s", i, atomic_load(&ls[i].conns_failed),
                        ls[i].why);
    }
}

static int total_ok(load *ls, int n) {
    int t = 0;
    for (int i = 0; i < n; i++)
        t += atomic_load(&ls[i].conns_ok);
    return t;
}

/* --------------------------------------------------------------- cases */

typedef struct one {
    uint16_t port;
    int i, rc;
} one;

static void *one_thread(void *arg) {
    one *o = arg;
    o->rc = echo_once(o->port, 500 + (uint64_t)o->i, 128 * 1024);
    return NULL;
}

TEST(echo) {
    master m;
    master_start(&m, 2000);
    REQUIRE(master_wait_starts(&m, NWORKERS, 5000));
    pid_t c[8];
    CHECK_EQ_INT(children(m.pid, c, 8), NWORKERS);
    enum { N = 20 };
    one o[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (one){.port = m.port, .i = i, .rc = -1};
        REQUIRE(pthread_create(&t[i], NULL, one_thread, &o[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(o[i].rc, 0);
    }
    master_stop(&m);
}

/* SIGKILL one worker while clients loop: the master starts a replacement
 * and the server keeps answering. Only connections that were on the killed
 * worker may fail: at most one per client thread. */
TEST(kill_worker) {
    enum { NLOAD = 3 };
    master m;
    master_start(&m, 2000);
    REQUIRE(master_wait_starts(&m, NWORKERS, 5000));
    pid_t victim = m.pids[0], survivor = m.pids[1];
    load ls[NLOAD];
    load_start(ls, NLOAD, m.port, 5);
    sleep_ms(300);
    int before = total_ok(ls, NLOAD);
    REQUIRE(kill(victim, SIGKILL) == 0);
    REQUIRE(master_wait_starts(&m, 1, 5000)); /* the replacement */
    pid_t fresh = m.pids[NWORKERS];
    CHECK(fresh != victim && fresh != survivor);
    want w = {m.pid, survivor, fresh};
    CHECK(wait_until(children_are, &w, 3000));
    sleep_ms(300);
    int ok, failed, requests;
    load_stop(ls, NLOAD, &ok, &failed, &requests);
    harness_log("%d connections before the kill, %d in all, %d failed, %d requests", before, ok,
                failed, requests);
    CHECK(ok > before);
    CHECK_LE_INT(failed, NLOAD);
    /* New connections all succeed (and some land on the new worker). */
    for (int i = 0; i < 20; i++)
        CHECK_EQ_INT(echo_once(m.port, 900 + (uint64_t)i, 8192), 0);
    master_stop(&m);
}

/* SIGHUP under continuous load: every worker is replaced, and not one
 * connection or request fails. */
TEST(reload) {
    enum { NLOAD = 4 };
    master m;
    master_start(&m, 3000);
    REQUIRE(master_wait_starts(&m, NWORKERS, 5000));
    pid_t old[NWORKERS] = {m.pids[0], m.pids[1]};
    load ls[NLOAD];
    load_start(ls, NLOAD, m.port, 2);
    sleep_ms(800);
    REQUIRE(kill(m.pid, SIGHUP) == 0);
    REQUIRE(master_wait_starts(&m, NWORKERS, 5000));
    pid_t fresh[NWORKERS] = {m.pids[2], m.pids[3]};
    for (int i = 0; i < NWORKERS; i++)
        CHECK(fresh[i] != old[0] && fresh[i] != old[1]);
    want w = {m.pid, fresh[0], fresh[1]};
    CHECK(wait_until(children_are, &w, 5000)); /* the old ones drained and left */
    int mid = total_ok(ls, NLOAD);
    sleep_ms(800);
    int ok, failed, requests;
    load_stop(ls, NLOAD, &ok, &failed, &requests);
    harness_log("%d connections (%d after the reload), %d failed, %d requests", ok, ok - mid,
                failed, requests);
    CHECK_EQ_INT(failed, 0);
    CHECK(ok > mid); /* the new workers serve */
    master_stop(&m);
}

/* SIGTERM while a client is half-way: it still gets its whole echo, then the
 * master exits 0 well within drain_ms. */
TEST(drain) {
    enum { DRAIN_MS = 3000 };
    master m;
    master_start(&m, DRAIN_MS);
    REQUIRE(master_wait_starts(&m, NWORKERS, 5000));
    int fd = tcp_connect("127.0.0.1", m.port, 3000);
    REQUIRE(fd >= 0);
    rng r;
    rng_seed(&r, 3);
    size_t len = 64 * 1024;
    unsigned char *buf = rng_alloc(&r, len), *got = malloc(len);
    REQUIRE_EQ_INT(write_all(fd, buf, len / 2, 3000), len / 2);
    REQUIRE_EQ_INT(read_exact(fd, got, len / 2, 3000), len / 2); /* a worker serves it */

    uint64_t t0 = now_ms();
    REQUIRE(kill(m.pid, SIGTERM) == 0);
    sleep_ms(300);
    int status;
    CHECK_EQ_INT(waitpid(m.pid, &status, WNOHANG), 0); /* still draining */
    REQUIRE_EQ_INT(write_all(fd, buf + len / 2, len - len / 2, 3000), len - len / 2);
    shutdown(fd, SHUT_WR);
    CHECK_EQ_INT(read_exact(fd, got + len / 2, len - len / 2, 3000), len - len / 2);
    CHECK(memcmp(buf, got, len) == 0);
    CHECK_EQ_INT(wait_eof(fd, 3000), 0);
    close(fd);
    status = master_wait_exit(&m, DRAIN_MS + 2000);
    uint64_t took = now_ms() - t0;
    CHECK_MSG(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "master status %#x",
              status);
    CHECK_MSG(took < DRAIN_MS, "exit %llu ms after SIGTERM", (unsigned long long)took);
    free(buf);
    free(got);
}
