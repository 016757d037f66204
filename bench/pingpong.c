/* pingpong: ping-pong echo load generator for bench/run.sh.
 *
 *   pingpong --port P [--host 127.0.0.1] [--conns 64] [--size 64]
 *            [--warmup 1] [--duration 5] [--sync]
 *
 * One thread, one level-triggered epoll set, non-blocking sockets. Each of N
 * connections sends an S-byte message and waits for the whole echo before it
 * sends the next one. Phases: connect, warm-up (W s, not counted), drain,
 * measured window (T s), drain.
 *
 * Why drain at both edges: with no message in flight the server is idle, so a
 * CPU snapshot of the server taken by a slower observer (the shell) while we
 * are drained brackets exactly the messages we count. With --sync we print
 * "warm" after the first drain and start the window only when a line arrives
 * on stdin; after the result line we keep the connections open until stdin
 * reaches EOF, so the server's close work also falls outside the window.
 * Messages sent inside the window and completed during the final drain are
 * counted, and the window ends when the drain ends.
 *
 * Output, one line on stdout:
 *   conns=N size=S secs=T msgs=M msg_per_s=R p50_us=.. p99_us=.. max_us=..
 *   errors=E cli_cpu_pct=C warm_msgs=W
 * (one line; wrapped here). Exit status 0, 1 when errors > 0, 2 on bad usage
 * or when the run could not start.
 *
 * Every echoed byte is checked: every 64-byte block of a message starts with
 * an 8-byte stamp of (connection, sequence number, offset) and the rest is a
 * fixed per-connection pattern, so a lost, duplicated, reordered or corrupted
 * block is a mismatch (counted in errors; the connection is dropped).
 *
 * Latency is the time from the first write of a message to the arrival of its
 * last echoed byte, kept in a log-linear histogram (64 sub-buckets per power
 * of two, so percentiles are within 1.6 %); nothing is allocated per message.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STAMP_EVERY 64 /* one stamp per 64-byte block */
#define DRAIN_MS 5000  /* a message still out after this is lost */
#define CONNECT_MS 5000
#define SYNC_MS 60000 /* how long --sync waits for the shell */

enum { C_CONNECTING, C_IDLE, C_BUSY, C_DEAD };

/* One client connection; lives in the conns array until exit. msg holds the
 * message in flight, which is also the expected echo. */
typedef struct conn {
    int fd, id, state;
    bool want_out;     /* EPOLLOUT registered */
    bool counted;      /* sent inside the measured window */
    size_t woff, roff; /* bytes written / echoed so far */
    uint64_t seq, t_send;
    unsigned char *msg;
} conn;

/* Latency histogram in nanoseconds: values below 64 have their own bucket;
 * above, bucket = (exponent - 6) * 64 + top 7 bits of the value. */
#define HIST_BUCKETS ((63 - 6) * 64 + 128)
static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_max;

static struct {
    const char *host;
    int port, nconns;
    size_t size;
    double warmup, duration;
    bool sync;
} opt = {.host = "127.0.0.1", .nconns = 64, .size = 64, .warmup = 1, .duration = 5};

static conn *conns;
static int ep;
static unsigned char rbuf[65536];
static bool sending, measuring;
static int inflight, alive;
static uint64_t msgs, warm_msgs, errors;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static unsigned hist_bucket(uint64_t v) {
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= 6 */
    return (e - 6) * 64 + (unsigned)(v >> (e - 6));
}

/* Smallest value that falls into bucket b. */
static uint64_t hist_low(unsigned b) {
    if (b < 128)
        return b;
    unsigned e = b / 64 + 5;
    return (uint64_t)(b - (e - 6) * 64) << (e - 6);
}

static void hist_add(uint64_t ns) {
    hist[hist_bucket(ns)]++;
    if (ns > hist_max)
        hist_max = ns;
}

/* The q-quantile in microseconds (lower edge of its bucket). */
static double hist_quantile(double q) {
    uint64_t total = 0, acc = 0;
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        total += hist[b];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        if ((acc += hist[b]) > want)
            return (double)hist_low(b) / 1000.0;
    return (double)hist_max / 1000.0;
}

static void watch(conn *c, bool out) {
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0u), .data.ptr = c};
    if (c->want_out != out && epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = out;
}

static void drop(conn *c, const char *why) {
    if (c->state == C_DEAD)
        return;
    if (errors < 5) /* enough to diagnose, not enough to flood the log */
        fprintf(stderr, "pingpong: conn %d seq %llu: %s\n", c->id, (unsigned long long)c->seq, why);
    errors++;
    if (c->state == C_BUSY)
        inflight--;
    close(c->fd); /* also leaves the epoll set */
    c->state = C_DEAD;
    alive--;
}

/* Stamp the next sequence number into every 64-byte block of the message. */
static void stamp(conn *c) {
    for (size_t off = 0; off < opt.size; off += STAMP_EVERY) {
        uint64_t v = (c->seq * 0x9E3779B97F4A7C15u) ^ ((uint64_t)c->id << 40) ^ off;
        size_t n = opt.size - off < 8 ? opt.size - off : 8;
        memcpy(c->msg + off, &v, n);
    }
}

static void flush_out(conn *c) {
    while (c->woff < opt.size) {
        ssize_t n = write(c->fd, c->msg + c->woff, opt.size - c->woff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            watch(c, true); /* the rest goes out on EPOLLOUT */
            return;
        }
        if (n < 0) {
            drop(c, strerror(errno));
            return;
        }
        c->woff += (size_t)n;
    }
    watch(c, false);
}

static void send_next(conn *c, uint64_t now) {
    c->seq++;
    stamp(c);
    c->woff = c->roff = 0;
    c->t_send = now;
    c->counted = measuring;
    c->state = C_BUSY;
    inflight++;
    flush_out(c);
}

static void complete(conn *c) {
    uint64_t now = now_ns();
    if (c->counted) {
        msgs++;
        hist_add(now - c->t_send);
    } else {
        warm_msgs++;
    }
    c->state = C_IDLE;
    inflight--;
    if (sending)
        send_next(c, now);
}

static void on_readable(conn *c) {
    size_t want = c->state == C_BUSY ? opt.size - c->roff : 1;
    if (want > sizeof rbuf)
        want = sizeof rbuf;
    ssize_t n = read(c->fd, rbuf, want);
    const char *bad = NULL;
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        bad = strerror(errno);
    else if (n == 0)
        bad = "server closed the connection";
    else if (n > 0 && c->state != C_BUSY)
        bad = "bytes arrived with no message in flight";
    else if (n > 0 && memcmp(rbuf, c->msg + c->roff, (size_t)n) != 0)
        bad = "echoed bytes differ from the message sent";
    if (bad)
        drop(c, bad);
    if (bad || n < 0)
        return;
    c->roff += (size_t)n;
    if (c->roff == opt.size && c->woff == opt.size)
        complete(c);
}

static void on_connected(conn *c) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        drop(c, strerror(err));
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = C_IDLE;
    watch(c, false);
}

static void on_event(conn *c, uint32_t ev) {
    if (c->state == C_CONNECTING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connected(c);
        return;
    }
    if (c->state == C_BUSY && (ev & EPOLLOUT) && c->woff < opt.size)
        flush_out(c);
    if (c->state != C_DEAD && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        on_readable(c);
}

/* One epoll_wait with a timeout of at most ms; dispatch what came. */
static void poll_once(int ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, ms);
    for (int i = 0; i < n; i++)
        on_event(evs[i].data.ptr, evs[i].events);
}

static int ms_until(uint64_t deadline) {
    uint64_t t = now_ns();
    return t >= deadline ? 0 : (int)((deadline - t + 999999) / 1000000);
}

static void run_until(uint64_t deadline) {
    sending = true;
    for (int ms; alive > 0 && (ms = ms_until(deadline)) > 0;)
        poll_once(ms);
}

/* Stop sending and wait until no message is in flight. */
static void drain(void) {
    sending = false;
    uint64_t deadline = now_ns() + DRAIN_MS * 1000000ull;
    for (int ms; inflight > 0 && (ms = ms_until(deadline)) > 0;)
        poll_once(ms);
    for (int i = 0; i < opt.nconns; i++)
        if (conns[i].state == C_BUSY)
            drop(&conns[i], "echo did not complete within the drain timeout");
}

static void kick_all(void) {
    uint64_t t = now_ns();
    for (int i = 0; i < opt.nconns; i++)
        if (conns[i].state == C_IDLE)
            send_next(&conns[i], t);
}

/* --sync: wait for a line (or EOF when eof_ok) on stdin; false on timeout. */
static bool wait_stdin(bool eof_ok) {
    struct pollfd p = {.fd = 0, .events = POLLIN};
    char ch;
    for (;;) {
        if (poll(&p, 1, SYNC_MS) <= 0)
            return false;
        ssize_t n = read(0, &ch, 1);
        if (n == 0)
            return eof_ok;
        if (n < 0 && errno != EINTR)
            return false;
        if (n == 1 && ch == '\n')
            return true;
    }
}

static int open_conns(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "pingpong: bad IPv4 address '%s'\n", opt.host);
        return -1;
    }
    conns = calloc((size_t)opt.nconns, sizeof *conns);
    unsigned char *msgs_mem = malloc((size_t)opt.nconns * opt.size);
    if (!conns || !msgs_mem) {
        fprintf(stderr, "pingpong: out of memory\n");
        return -1;
    }
    for (int i = 0; i < opt.nconns; i++) {
        conn *c = &conns[i];
        c->id = i;
        c->msg = msgs_mem + (size_t)i * opt.size;
        for (size_t j = 0; j < opt.size; j++)
            c->msg[j] = (unsigned char)(j * 131 + (size_t)i * 7 + 1);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            perror("pingpong: socket");
            return -1;
        }
        c->state = C_CONNECTING;
        c->want_out = true;
        alive++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
            drop(c, strerror(errno));
    }
    uint64_t deadline = now_ns() + CONNECT_MS * 1000000ull;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < opt.nconns; i++)
            pending += conns[i].state == C_CONNECTING;
        int ms = ms_until(deadline);
        if (!pending || !ms)
            break;
        poll_once(ms);
    }
    for (int i = 0; i < opt.nconns; i++)
        if (conns[i].state == C_CONNECTING)
            drop(&conns[i], "connect timed out");
    return alive > 0 ? 0 : -1;
}

static void usage(void) {
    fprintf(stderr, "usage: pingpong --port P [--host H] [--conns N] [--size BYTES]\n"
                    "                [--warmup S] [--duration S] [--sync]\n");
    exit(2);
}

static void parse_args(int argc, char **argv) {
    static const struct option longs[] = {
        {"host", 1, 0, 'H'},   {"port", 1, 0, 'p'},     {"conns", 1, 0, 'c'}, {"size", 1, 0, 's'},
        {"warmup", 1, 0, 'w'}, {"duration", 1, 0, 't'}, {"sync", 0, 0, 'S'},  {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "H:p:c:s:w:t:S", longs, NULL)) != -1) {
        switch (ch) {
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'c':
            opt.nconns = atoi(optarg);
            break;
        case 's':
            opt.size = strtoul(optarg, NULL, 10);
            break;
        case 'w':
            opt.warmup = atof(optarg);
            break;
        case 't':
            opt.duration = atof(optarg);
            break;
        case 'S':
            opt.sync = true;
            break;
        default:
            usage();
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.nconns <= 0 || opt.size == 0 || opt.warmup < 0 ||
        opt.duration <= 0)
        usage();
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || open_conns() < 0) {
        fprintf(stderr, "pingpong: could not connect to %s:%d\n", opt.host, opt.port);
        return 2;
    }

    kick_all();
    run_until(now_ns() + (uint64_t)(opt.warmup * 1e9));
    drain();
    if (opt.sync) {
        printf("warm\n");
        fflush(stdout);
        if (!wait_stdin(false)) {
            fprintf(stderr, "pingpong: no go-ahead on stdin\n");
            return 2;
        }
    }

    measuring = true;
    uint64_t t0 = now_ns(), c0 = cpu_ns();
    kick_all();
    run_until(t0 + (uint64_t)(opt.duration * 1e9));
    drain();
    uint64_t t1 = now_ns(), c1 = cpu_ns();

    double secs = (double)(t1 - t0) / 1e9;
    printf("conns=%d size=%zu secs=%.3f msgs=%llu msg_per_s=%.0f p50_us=%.1f p99_us=%.1f "
           "max_us=%.1f errors=%llu cli_cpu_pct=%.1f warm_msgs=%llu\n",
           opt.nconns, opt.size, secs, (unsigned long long)msgs, (double)msgs / secs,
           hist_quantile(0.50), hist_quantile(0.99), (double)hist_max / 1000.0,
           (unsigned long long)errors, 100.0 * (double)(c1 - c0) / (double)(t1 - t0),
           (unsigned long long)warm_msgs);
    fflush(stdout);
    if (opt.sync)
        wait_stdin(true); /* keep the connections until the shell has its snapshot */
    return errors ? 1 : 0;
}
