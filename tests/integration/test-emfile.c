/* Accepting at the fd limit: the server runs in a forked child whose
 * RLIMIT_NOFILE leaves room for ~20 more fds. It must keep serving, count
 * errors[ACCEPT_EMFILE], log why, not spin, and recover once fds free up.
 * The child reports its port through one pipe and, on SIGTERM, its stats
 * through another. */
#include "harness.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEADROOM 20
#define NCLIENTS 40

struct child_report {
    vx_stats stats;
    int log_lines, log_emfile;
    int limit;
    int run_rc;
    char line[240]; /* the first log line that mentions EMFILE */
};

static struct child_report report;

static bool mentions_emfile(const char *msg) {
    char low[512];
    size_t i;
    for (i = 0; msg[i] && i < sizeof low - 1; i++)
        low[i] = (char)tolower((unsigned char)msg[i]);
    low[i] = 0;
    return strstr(msg, "EMFILE") || strstr(low, "too many open files");
}

static void capture_log(int level, const char *msg, void *ud) {
    (void)level;
    (void)ud;
    report.log_lines++;
    if (mentions_emfile(msg) && report.log_emfile++ == 0)
        snprintf(report.line, sizeof report.line, "%s", msg);
}

static void on_term(vx_signal *s, int signum, void *data) {
    (void)s;
    (void)signum;
    vx_loop_stop(data);
}

static void echo_accept(vx_listener *l, vx_conn *c, void *data) {
    (void)l;
    atomic_fetch_add(&((echo_server *)data)->accepted, 1);
    if (vx_conn_start(c, &echo_cbs, data) < 0)
        vx_conn_close(c);
}

/* The smallest limit that leaves exactly `room` free fd numbers below it. */
static int limit_with_room(int room) {
    static bool used[4096];
    memset(used, 0, sizeof used);
    for (int fd = 0; fd < 4096; fd++)
        used[fd] = fcntl(fd, F_GETFD) >= 0;
    int free_below = 0;
    for (int l = 0; l < 4096; l++) {
        if (free_below == room)
            return l;
        free_below += !used[l];
    }
    return 4096;
}

static _Noreturn void server_child(int port_w, int report_w) {
    static echo_server es; /* only its counters: no thread here */
    vx_loop *loop = NULL;
    vx_listener *l = NULL;
    vx_signal *sig = NULL;
    vx_loop_opts lo = {.backend = VX_BACKEND_AUTO};
    vx_listen_opts o = {.host = "127.0.0.1"};

    vx_log_set(capture_log, NULL, VX_LOG_DEBUG);
    if (vx_loop_new(&loop, &lo) < 0 || vx_listen(loop, &o, echo_accept, &es, &l) < 0 ||
        vx_signal_start(loop, SIGTERM, on_term, loop, &sig) < 0)
        _exit(3);
    report.limit = limit_with_room(HEADROOM);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)report.limit;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        _exit(4);
    uint16_t port = vx_listener_port(l);
    if (write(port_w, &port, sizeof port) != sizeof port)
        _exit(5);
    report.run_rc = vx_loop_run(loop);
    vx_loop_stats(loop, &report.stats);
    vx_signal_free(sig);
    vx_loop_free(loop);
    ssize_t n = write(report_w, &report, sizeof report);
    _exit(n == (ssize_t)sizeof report ? 0 : 6);
}

/* utime + stime of pid in seconds, from /proc/pid/stat */
static double cpu_seconds(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static bool echo_once(int fd, const char *msg, int timeout_ms) {
    char back[64];
    size_t len = strlen(msg);
    return write_all(fd, msg, len, timeout_ms) == (ssize_t)len &&
           read_exact(fd, back, len, timeout_ms) == (ssize_t)len && memcmp(back, msg, len) == 0;
}

static bool read_timeout(int fd, void *buf, size_t len, int timeout_ms) {
    return read_exact(fd, buf, len, timeout_ms) == (ssize_t)len;
}

static int wait_child(pid_t pid, int timeout_ms) {
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int st;
    while (now_ms() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return st;
        sleep_ms(5);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

TEST(emfile_survive_and_recover) {
    int port_p[2], rep_p[2];
    REQUIRE(pipe(port_p) == 0 && pipe(rep_p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(port_p[0]);
        close(rep_p[0]);
        server_child(port_p[1], rep_p[1]);
    }
    close(port_p[1]);
    close(rep_p[1]);
    uint16_t port = 0;
    if (!read_timeout(port_p[0], &port, sizeof port, 5000)) {
        int st = wait_child(pid, 1000);
        harness_fail(__FILE__, __LINE__, "server child did not start (status 0x%x)", st);
        harness_abort_case();
    }

    /* more clients than the child has fds: the kernel completes every handshake */
    int fds[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        fds[i] = tcp_connect("127.0.0.1", port, 5000);
        REQUIRE_OK(fds[i]);
    }
    sleep_ms(300);

    /* the first ones were accepted and are served */
    char msg[32];
    for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof msg, "client %d", i);
        CHECK_MSG(echo_once(fds[i], msg, 3000), "client %d: no echo at the fd limit", i);
    }

    /* at EMFILE with connections waiting: the server must sleep, not spin */
    double c0 = cpu_seconds(pid);
    sleep_ms(1000);
    double c1 = cpu_seconds(pid);
    harness_log("server CPU over 1 s at the fd limit: %.2f s", c1 - c0);
    CHECK(c0 >= 0 && c1 >= 0);
    CHECK_MSG(c1 - c0 < 0.5, "server used %.2f s CPU in 1 s at EMFILE (spinning?)", c1 - c0);
    CHECK_MSG(echo_once(fds[0], "still here", 3000), "client 0: no echo after the EMFILE period");

    /* fds free up: new clients are accepted and served */
    for (int i = 0; i < NCLIENTS; i++)
        close(fds[i]);
    sleep_ms(200);
    for (int i = 0; i < 5; i++) {
        int fd = tcp_connect("127.0.0.1", port, 5000);
        REQUIRE_OK(fd);
        snprintf(msg, sizeof msg, "recovered %d", i);
        CHECK_MSG(echo_once(fd, msg, 5000), "new client %d: no echo after fds were freed", i);
        close(fd);
    }

    CHECK(kill(pid, SIGTERM) == 0);
    struct child_report rep;
    memset(&rep, 0, sizeof rep);
    bool got = read_timeout(rep_p[0], &rep, sizeof rep, 5000);
    int st = wait_child(pid, 5000);
    CHECK_MSG(got, "no report from the server child");
    CHECK_MSG(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "server child status 0x%x", st);
    if (got) {
        harness_log("limit %d, accepts %llu, errors[accept_emfile] %llu, log lines %d (EMFILE: %d)",
                    rep.limit, (unsigned long long)rep.stats.accepts,
                    (unsigned long long)rep.stats.errors[VX_ERRK_ACCEPT_EMFILE], rep.log_lines,
                    rep.log_emfile);
        if (rep.log_emfile)
            harness_log("log: %s", rep.line);
        CHECK_EQ_INT(rep.run_rc, 0);
        CHECK(rep.stats.errors[VX_ERRK_ACCEPT_EMFILE] > 0);
        CHECK_MSG(rep.log_emfile > 0, "no log line mentions EMFILE / too many open files");
        CHECK(rep.stats.accepts >= 5 + 5);
    }
    close(port_p[0]);
    close(rep_p[0]);
}
