/* harness: case table, forked runner with a timeout, and the socket/loop helpers
 * the tests share. See harness.h for the contract. */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ registration */

#define HARNESS_MAX_CASES 256

struct tcase {
    const char *name;
    harness_fn fn;
};

static struct tcase cases[HARNESS_MAX_CASES];
static int ncases;
static const char *current_case = "-";
static atomic_int case_failures;
static bool nofork;

void harness_register(const char *name, harness_fn fn) {
    if (ncases == HARNESS_MAX_CASES) {
        fprintf(stderr, "harness: too many cases\n");
        abort();
    }
    cases[ncases].name = name;
    cases[ncases].fn = fn;
    ncases++;
}

/* ------------------------------------------------------------------ checks */

void harness_fail(const char *file, int line, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&case_failures, 1);
    /* One call, so lines from several threads do not interleave. */
    fprintf(stdout, "  %s:%d: [%s] %s\n", file, line, current_case, msg);
    fflush(stdout);
}

int harness_failures(void) { return atomic_load(&case_failures); }

void harness_abort_case(void) {
    fflush(NULL);
    if (nofork)
        exit(1);
    _exit(1);
}

void harness_skip(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stdout, "  [%s] SKIP: %s\n", current_case, msg);
    fflush(NULL);
    if (nofork)
        exit(77);
    _exit(77);
}

void harness_log(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stdout, "  [%s] %s\n", current_case, msg);
    fflush(stdout);
}

/* ------------------------------------------------------------------ runner */

static int case_timeout_s(void) {
    const char *t = getenv("HARNESS_TIMEOUT");
    int v = t ? atoi(t) : 0;
    return v > 0 ? v : 60;
}

/* In the child: run the case, exit 0/1 (77 comes from SKIP). exit() rather than
 * _exit() so that LeakSanitizer checks each case. */
static _Noreturn void child_run(const struct tcase *tc) {
    /* Its own process group (the timeout kills the group: servers the case
     * forked too), and it dies with the runner should CTest kill that. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    current_case = tc->name;
    tc->fn();
    fflush(NULL);
    exit(harness_failures() ? 1 : 0);
}

/* 0 pass, 1 fail, 2 skip */
static int run_case(const struct tcase *tc) {
    uint64_t t0 = now_ms(), deadline = t0 + (uint64_t)case_timeout_s() * 1000;
    int st = 0;
    bool timed_out = false;

    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        child_run(tc);
    setpgid(pid, pid); /* also in the parent: no race with the child's own call */
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            perror("waitpid");
            return 1;
        }
        if (now_ms() > deadline) {
            timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(2);
    }
    kill(-pid, SIGKILL); /* leftovers: server processes the case forked */
    unsigned ms = (unsigned)(now_ms() - t0);
    if (timed_out) {
        printf("FAIL %s: timed out after %d s (%u ms)\n", tc->name, case_timeout_s(), ms);
        return 1;
    }
    if (WIFSIGNALED(st)) {
        printf("FAIL %s: killed by signal %d (%s) (%u ms)\n", tc->name, WTERMSIG(st),
               strsignal(WTERMSIG(st)), ms);
        return 1;
    }
    int code = WEXITSTATUS(st);
    if (code == 0) {
        printf("ok   %s (%u ms)\n", tc->name, ms);
        return 0;
    }
    if (code == 77) {
        printf("skip %s (%u ms)\n", tc->name, ms);
        return 2;
    }
    printf("FAIL %s: exit %d (%u ms)\n", tc->name, code, ms);
    return 1;
}

/* A backend named by VX_BACKEND that cannot run here skips the whole file. */
static int probe_backend(void) {
    const char *env = getenv("VX_BACKEND");
    const char *name = env && *env ? env : "auto";
    if (env && *env && vx_backend_parse(env) < 0) {
        printf("FAIL: VX_BACKEND=%s is not a backend name (%s)\n", env,
               vx_err_name(vx_backend_parse(env)));
        return 1;
    }
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};
    int rc = vx_loop_new(&loop, &o);
    if (rc == -ENOSYS || rc == -EPERM) {
        printf("SKIP: backend %s unavailable (%s)\n", name, vx_err_name(rc));
        return 77;
    }
    if (rc < 0) {
        printf("FAIL: vx_loop_new(%s): %s\n", name, vx_err_name(rc));
        return 1;
    }
    int bad = 0;
    if (env && *env && strcmp(env, "auto") != 0 && strcmp(vx_loop_backend(loop), env) != 0) {
        printf("FAIL: VX_BACKEND=%s but the loop runs %s\n", env, vx_loop_backend(loop));
        bad = 1;
    }
    printf("backend %s\n", vx_loop_backend(loop));
    vx_loop_free(loop);
    return bad;
}

static bool selected(const char *name, int argc, char **argv) {
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]))
            return true;
    return false;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    nofork = getenv("HARNESS_NOFORK") && *getenv("HARNESS_NOFORK") == '1';
    int probe = probe_backend();
    if (probe == 77)
        return 77;
    int passed = 0, failed = probe, skipped = 0;
    for (int i = 0; i < ncases; i++) {
        if (!selected(cases[i].name, argc, argv))
            continue;
        if (nofork) {
            current_case = cases[i].name;
            atomic_store(&case_failures, 0);
            cases[i].fn();
            if (harness_failures())
                exit(1);
            printf("ok   %s\n", cases[i].name);
            passed++;
            continue;
        }
        int r = run_case(&cases[i]);
        passed += r == 0;
        failed += r == 1;
        skipped += r == 2;
    }
    printf("%d passed, %d failed", passed, failed);
    if (skipped)
        printf(", %d skipped", skipped);
    printf("\n");
    if (failed)
        return 1;
    return passed == 0 && skipped > 0 ? 77 : 0;
}

/* ------------------------------------------------------------------- time */

uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sleep_ms(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (now_ms() >= deadline)
            return cond(arg);
        sleep_ms(2);
    }
}

/* ------------------------------------------------------------------ random */

void rng_seed(rng *r, uint64_t seed) { r->s = seed ? seed : 0x9e3779b97f4a7c15ull; }

uint64_t rng_next(rng *r) {
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

uint64_t rng_range(rng *r, uint64_t lo, uint64_t hi) { return lo + rng_next(r) % (hi - lo + 1); }

void rng_fill(rng *r, void *buf, size_t len) {
    unsigned char *p = buf;
    while (len >= 8) {
        uint64_t v = rng_next(r);
        memcpy(p, &v, 8);
        p += 8;
        len -= 8;
    }
    if (len) {
        uint64_t v = rng_next(r);
        memcpy(p, &v, len);
    }
}

unsigned char *rng_alloc(rng *r, size_t len) {
    unsigned char *p = malloc(len ? len : 1);
    if (!p) {
        fprintf(stderr, "harness: out of memory (%zu bytes)\n", len);
        abort();
    }
    rng_fill(r, p, len);
    return p;
}

/* ----------------------------------------------------------------- sockets */

int set_nonblock(int fd, bool on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

/* Wait for `events` on fd until deadline; 1 ready, 0 timeout, -errno. */
static int poll_until(int fd, short events, uint64_t deadline) {
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n > 0)
            return 1;
    }
}

int tcp_connect(const char *host, uint16_t port, int timeout_ms) {
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        sl = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        if (errno != EINPROGRESS) {
            err = -errno;
            goto fail;
        }
        int r = poll_until(fd, POLLOUT, now_ms() + (uint64_t)timeout_ms);
        if (r <= 0) {
            err = r == 0 ? -ETIMEDOUT : r;
            goto fail;
        }
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err) {
            err = -err;
            goto fail;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblock(fd, false);
    return fd;
fail:
    close(fd);
    return err;
}

int unix_connect(const char *path) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return -ENAMETOOLONG;
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

void unix_path_make(char *buf, size_t len, const char *tag) {
    static atomic_int seq;
    snprintf(buf, len, "/tmp/vx-test-%s-%d-%d.sock", tag, (int)getpid(), atomic_fetch_add(&seq, 1));
    unlink(buf);
}

void close_rst(int fd) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

ssize_t read_exact(int fd, void *buf, size_t n, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t got = 0;
    while (got < n) {
        int r = poll_until(fd, POLLIN, deadline);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return r;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        if (k == 0)
            break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

ssize_t write_all(int fd, const void *buf, size_t n, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    size_t done = 0;
    while (done < n) {
        int r = poll_until(fd, POLLOUT, deadline);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return r;
        ssize_t k = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == ENOTSOCK)
            k = write(fd, (const char *)buf + done, n - done);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        done += (size_t)k;
    }
    return (ssize_t)n;
}

int wait_eof(int fd, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int r = poll_until(fd, POLLIN, deadline);
        if (r == 0)
            return -ETIMEDOUT;
        if (r < 0)
            return r;
        char b[256];
        ssize_t k = read(fd, b, sizeof b);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k < 0)
            return -errno;
        return k == 0 ? 0 : 1;
    }
}

int echo_roundtrip(int fd, const void *buf, size_t len, rng *r, int timeout_ms) {
    const unsigned char *src = buf;
    size_t sent = 0, recvd = 0, chunk_end = 0;
    bool shut = false;
    int rc = -1;
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    static __thread unsigned char tmp[65536];

    set_nonblock(fd, true);
    chunk_end = len < 65536 ? len : 65536;
    if (r)
        chunk_end = sent + rng_range(r, 1, 65536);
    if (chunk_end > len)
        chunk_end = len;
    for (;;) {
        if (sent == len && !shut) {
            if (shutdown(fd, SHUT_WR) < 0) {
                harness_log("echo_roundtrip: shutdown: %s", strerror(errno));
                goto out;
            }
            shut = true;
        }
        uint64_t now = now_ms();
        if (now >= deadline) {
            harness_log("echo_roundtrip: timeout: sent %zu/%zu, received %zu", sent, len, recvd);
            goto out;
        }
        struct pollfd p = {.fd = fd, .events = (short)(POLLIN | (sent < len ? POLLOUT : 0))};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n < 0 && errno != EINTR) {
            harness_log("echo_roundtrip: poll: %s", strerror(errno));
            goto out;
        }
        if (n <= 0)
            continue;
        if ((p.revents & POLLOUT) && sent < len) {
            ssize_t k = send(fd, src + sent, chunk_end - sent, MSG_NOSIGNAL);
            if (k < 0 && errno != EAGAIN && errno != EINTR) {
                harness_log("echo_roundtrip: send: %s (sent %zu/%zu)", strerror(errno), sent, len);
                goto out;
            }
            if (k > 0) {
                sent += (size_t)k;
                if (sent == chunk_end) {
                    chunk_end = sent + (r ? rng_range(r, 1, 65536) : 65536);
                    if (chunk_end > len)
                        chunk_end = len;
                }
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, tmp, sizeof tmp, 0);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (k < 0) {
                harness_log("echo_roundtrip: recv: %s (received %zu/%zu)", strerror(errno), recvd,
                            len);
                goto out;
            }
            if (k == 0) {
                if (recvd != len || sent != len) {
                    harness_log("echo_roundtrip: early EOF: sent %zu, received %zu of %zu", sent,
                                recvd, len);
                    goto out;
                }
                rc = 0;
                goto out;
            }
            if (recvd + (size_t)k > sent || memcmp(tmp, src + recvd, (size_t)k) != 0) {
                harness_log("echo_roundtrip: wrong bytes at offset %zu..%zu (sent %zu)", recvd,
                            recvd + (size_t)k, sent);
                goto out;
            }
            recvd += (size_t)k;
        }
    }
out:
    set_nonblock(fd, false);
    return rc;
}

int count_open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

bool have_openat2(void) {
    struct open_how how = {.flags = O_PATH | O_CLOEXEC};
    long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof how);
    if (fd >= 0)
        close((int)fd);
    return fd >= 0 || errno != ENOSYS;
}

/* -------------------------------------------------------- server in a thread */

static void server_mark_running(void *arg) {
    server *s = arg;
    pthread_mutex_lock(&s->mu);
    s->state = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Signals go to the test's main thread: block the asynchronous ones here, but
 * not SIGPIPE (a write without MSG_NOSIGNAL must show) nor the fault signals. */
static void block_async_signals(void) {
    sigset_t set;
    sigfillset(&set);
    int keep[] = {SIGPIPE, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
        sigdelset(&set, keep[i]);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *server_main(void *arg) {
    server *s = arg;
    vx_loop *loop = NULL;
    vx_loop_opts o = {.backend = VX_BACKEND_AUTO};

    block_async_signals();
    int rc = vx_loop_new(&loop, &o);
    if (rc == 0) {
        s->loop = loop;
        rc = s->setup ? s->setup(loop, s->arg) : 0;
    }
    if (rc == 0)
        rc = vx_loop_post(loop, server_mark_running, s);
    if (rc < 0) {
        pthread_mutex_lock(&s->mu);
        s->rc = rc;
        s->state = 2;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (loop)
            vx_loop_free(loop);
        return NULL;
    }
    rc = vx_loop_run(loop);
    /* Free only once server_stop's vx_loop_stop() has returned: the stopping
     * thread may still be inside it when the loop sees the stop. */
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    while (s->state != 3)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    vx_loop_free(loop);
    return NULL;
}

int server_start(server *s, server_setup_fn setup, void *arg) {
    memset(s, 0, sizeof *s);
    s->setup = setup;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->tid, NULL, server_main, s) != 0)
        return -EAGAIN;
    pthread_mutex_lock(&s->mu);
    while (s->state == 0)
        pthread_cond_wait(&s->cv, &s->mu);
    int state = s->state, rc = s->rc;
    pthread_mutex_unlock(&s->mu);
    if (state == 2) {
        pthread_join(s->tid, NULL);
        s->state = 4;
        return rc < 0 ? rc : -EINVAL;
    }
    return 0;
}

int server_stop(server *s) {
    if (s->state == 4)
        return s->rc;
    vx_loop_stop(s->loop);
    pthread_mutex_lock(&s->mu);
    s->state = 3;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->tid, NULL);
    s->state = 4;
    return s->rc;
}

struct server_call {
    vx_fn fn;
    void *arg;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void server_call_tramp(void *arg) {
    struct server_call *sc = arg;
    sc->fn(sc->arg);
    pthread_mutex_lock(&sc->mu);
    sc->done = true;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
}

int server_call(server *s, vx_fn fn, void *arg) {
    struct server_call sc = {.fn = fn, .arg = arg};
    pthread_mutex_init(&sc.mu, NULL);
    pthread_cond_init(&sc.cv, NULL);
    int rc = vx_loop_post(s->loop, server_call_tramp, &sc);
    if (rc < 0)
        return rc;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&sc.mu);
    while (!sc.done && rc == 0)
        rc = pthread_cond_timedwait(&sc.cv, &sc.mu, &dl) == ETIMEDOUT ? -ETIMEDOUT : 0;
    bool done = sc.done;
    pthread_mutex_unlock(&sc.mu);
    if (!done) {
        /* The loop never ran our function; sc lives on this stack: give up. */
        harness_fail(__FILE__, __LINE__,
                     "server_call: the loop did not run a posted function "
                     "within 10 s");
        harness_abort_case();
    }
    return 0;
}

struct stats_req {
    server *s;
    vx_stats *out;
};

static void server_stats_fn(void *arg) {
    struct stats_req *r = arg;
    vx_loop_stats(r->s->loop, r->out);
}

void server_stats(server *s, vx_stats *out) {
    struct stats_req r = {.s = s, .out = out};
    memset(out, 0, sizeof *out);
    server_call(s, server_stats_fn, &r);
}

/* -------------------------------------------------------------- echo server */

static size_t echo_on_data(vx_conn *c, const char *data, size_t len) {
    echo_server *es = vx_conn_data(c);
    if (vx_conn_write(c, data, len) < 0)
        atomic_fetch_add(&es->write_errors, 1);
    size_t q = vx_conn_queued(c), m = atomic_load(&es->max_queued);
    while (q > m && !atomic_compare_exchange_weak(&es->max_queued, &m, q))
        ;
    atomic_fetch_add(&es->bytes, len);
    return len;
}

static void echo_on_close(vx_conn *c, int err) {
    echo_server *es = vx_conn_data(c);
    atomic_store(&es->close_err_last, err);
    if (err == -ETIMEDOUT)
        atomic_fetch_add(&es->close_timeouts, 1);
    if (err)
        atomic_fetch_add(&es->close_errors, 1);
    atomic_fetch_sub(&es->live, 1);
    atomic_fetch_add(&es->closed, 1);
}

const vx_conn_cbs echo_cbs = {.on_data = echo_on_data, .on_close = echo_on_close};

static void echo_on_accept(vx_listener *l, vx_conn *c, void *data) {
    echo_server *es = data;
    (void)l;
    atomic_fetch_add(&es->accepted, 1);
    atomic_fetch_add(&es->live, 1);
    int rc = vx_conn_start(c, &echo_cbs, es);
    if (rc < 0) {
        harness_fail(__FILE__, __LINE__, "vx_conn_start: %s", vx_err_name(rc));
        vx_conn_close(c);
        return;
    }
    if (es->opts.low || es->opts.high)
        vx_conn_set_watermarks(c, es->opts.low, es->opts.high);
    if (es->opts.idle_ms)
        vx_conn_set_idle_timeout(c, es->opts.idle_ms);
}

static int echo_setup(vx_loop *loop, void *arg) {
    echo_server *es = arg;
    vx_listen_opts lo = {
        .host = es->opts.host ? es->opts.host : "127.0.0.1",
        .unix_path = es->opts.unix_path,
        .backlog = es->opts.backlog,
    };
    int rc = vx_listen(loop, &lo, echo_on_accept, es, &es->listener);
    if (rc < 0)
        return rc;
    es->port = vx_listener_port(es->listener);
    return 0;
}

int echo_server_start(echo_server *es, const echo_opts *opts) {
    memset(es, 0, sizeof *es);
    if (opts)
        es->opts = *opts;
    return server_start(&es->srv, echo_setup, es);
}

int echo_server_stop(echo_server *es) { return server_stop(&es->srv); }

struct closed_wait {
    echo_server *es;
    int n;
};

static bool closed_reached(void *arg) {
    struct closed_wait *w = arg;
    return atomic_load(&w->es->closed) >= w->n;
}

bool echo_wait_closed(echo_server *es, int n, int timeout_ms) {
    struct closed_wait w = {es, n};
    return wait_until(closed_reached, &w, timeout_ms);
}
