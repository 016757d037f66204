/* vx-load: vortex's HTTP/1.1 load generator, built on the vortex loop (so on
 * any backend), one loop per thread.
 *   vx-load [--host H] [--port P] [--backend NAME] [--threads N] [--conns N]
 *           [--duration S] [--requests N] [--path P] [--pipeline D]
 *           [--expect BODY] [--header 'Name: value']... [--timeout MS]
 *           [--mix valid=W,invalid=W,slow=W,reset=W] [--slow-interval MS]
 *           [--slow-timeout MS] [--reset-path P] [--rate R]
 * The weights of --mix split the connection slots into four classes; each
 * slot repeats its class's behaviour until the run ends (see usage()). Every
 * valid response is checked; the outcome is one line on stdout:
 *   vx-load backend=... requests=... ok=... failed=... errors=... rps=...
 *   p50_us=... p99_us=... invalid=... slow=... reset=... (one line)
 * Exit status 0, 1 when a valid request failed, a connection could not be
 * made or another class saw a wrong answer, 2 on bad usage.
 *
 * Fast where it can be: keep-alive connections, --pipeline requests in flight
 * written with one vx_conn_write from a prebuilt buffer, responses parsed in
 * place and their bodies consumed as they stream in, one clock read per
 * read callback, a log-linear latency histogram per thread; nothing is
 * allocated per request.
 *
 * --rate R makes it an open loop: a pace timer releases R valid requests per
 * second in all (a token each), idle valid slots take them in turn, and a
 * request's latency runs from its token's release, so time spent waiting
 * for a free connection counts (no coordinated omission). */
#include "common.h"
#include "vortex.h"
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

enum { CL_VALID, CL_INVALID, CL_SLOW, CL_RESET, CL__COUNT };
static const char *const class_names[CL__COUNT] = {"valid", "invalid", "slow", "reset"};

#define MAX_HEADERS 16
#define MAX_RESP_HEAD (64 * 1024) /* a response head longer than this is garbage */
#define RETRY_MS 100              /* after a failed connect: no busy loop on a dead server */
#define RESET_DELAY_MS 5          /* half a request sits at the server this long before the RST */
#define TICK_MS 100               /* how often a loop looks at the stop flag */
#define MAX_LOGGED 10             /* failure lines on stderr: enough to diagnose */
#define PACE_MS 1                 /* --rate: how often tokens are released */

static struct {
    const char *host, *path, *reset_path, *expect;
    const char *headers[MAX_HEADERS];
    int nheaders, port, threads, conns, pipeline;
    double duration;
    uint64_t requests, timeout_ms, slow_ms, slow_timeout_ms, rate;
    unsigned mix[CL__COUNT];
    vx_backend backend;
} opt = {
    .host = "127.0.0.1",
    .path = "/plaintext",
    .port = 8080,
    .threads = 1,
    .conns = 64,
    .pipeline = 1,
    .duration = 10,
    .timeout_ms = 10000,
    .slow_ms = 100,
    .slow_timeout_ms = 30000,
    .mix = {100, 0, 0, 0},
};

/* ------------------------------------------------------------- requests */

/* Requests the server must refuse with a 4xx and close; the %s are the path
 * and the Host value. Two more (414, 431) are built in build_requests(). */
static const char *const invalid_fmt[] = {
    "GET %s HTTP/1.1\r\nHost: %s\r\nNo-Colon-Here\r\n\r\n",
    ("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n"), /* one element (parentheses: clang's -Wstring-concatenation) */
    "GET %s HTTP/1.1\r\nX-Host-Missing: %s\r\n\r\n",
    "GET %s HTTP/1.1\nHost: %s\n\n",
    "GET %s HTTP/1.1\r\nHost: %s\r\nX-Control: a\001b\r\n\r\n",
    "GET %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
};
#define NFMT (sizeof invalid_fmt / sizeof *invalid_fmt)
#define NINVALID (NFMT + 2)

/* Built once before the threads start; read-only afterwards. */
static struct {
    char *valid; /* opt.pipeline copies of the request, so a refill is one write */
    size_t valid_len;
    char *reset; /* what a mid-response reset asks for */
    size_t reset_len;
    char *slow; /* a head the slow client never finishes */
    size_t slow_len;
    char *invalid[NINVALID];
    size_t invalid_len[NINVALID];
    size_t expect_len;
} rq;

static char *request_text(const char *path, const char *hostport, size_t *len) {
    char head[8192];
    int n = snprintf(head, sizeof head, "GET %s HTTP/1.1\r\nHost: %s\r\n", path, hostport);
    for (int i = 0; i < opt.nheaders && n > 0 && (size_t)n < sizeof head; i++)
        n += snprintf(head + n, sizeof head - (size_t)n, "%s\r\n", opt.headers[i]);
    if (n < 0 || (size_t)n + 3 > sizeof head)
        return NULL;
    memcpy(head + n, "\r\n", 3);
    *len = (size_t)n + 2;
    return strdup(head);
}

static char *repeat(const char *s, size_t len, int times) {
    char *p = malloc(len * (size_t)times);
    for (int i = 0; p && i < times; i++)
        memcpy(p + (size_t)i * len, s, len);
    return p;
}

/* The 414 (request line over 8 KiB) and 431 (over 100 header fields) cases. */
static void build_oversized(const char *hostport) {
    size_t cap = 16384, n;
    char *a = malloc(cap), *b = malloc(cap);
    if (!a || !b)
        return free(a), free(b);
    n = (size_t)snprintf(a, cap, "GET /");
    memset(a + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(a + n, cap - n, " HTTP/1.1\r\nHost: %s\r\n\r\n", hostport);
    rq.invalid[NFMT] = a, rq.invalid_len[NFMT] = n;
    n = (size_t)snprintf(b, cap, "GET %s HTTP/1.1\r\nHost: %s\r\n", opt.path, hostport);
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(b + n, cap - n, "X-Field-%d: v\r\n", i);
    n += (size_t)snprintf(b + n, cap - n, "\r\n");
    rq.invalid[NFMT + 1] = b, rq.invalid_len[NFMT + 1] = n;
}

static bool build_requests(void) {
    char hostport[300], one[512];
    const char *fmt = strchr(opt.host, ':') ? "[%s]:%d" : "%s:%d";
    snprintf(hostport, sizeof hostport, fmt, opt.host, opt.port);
    char *valid = request_text(opt.path, hostport, &rq.valid_len);
    rq.valid = valid ? repeat(valid, rq.valid_len, opt.pipeline) : NULL;
    free(valid);
    rq.reset = request_text(opt.reset_path ? opt.reset_path : opt.path, hostport, &rq.reset_len);
    int n =
        snprintf(one, sizeof one, "GET %s HTTP/1.1\r\nHost: %s\r\nX-Slow: ", opt.path, hostport);
    rq.slow = n > 0 && (size_t)n < sizeof one ? strdup(one) : NULL;
    rq.slow_len = rq.slow ? (size_t)n : 0;
    for (size_t i = 0; i < NFMT; i++) {
        n = snprintf(one, sizeof one, invalid_fmt[i], opt.path, hostport);
        rq.invalid[i] = n > 0 && (size_t)n < sizeof one ? strdup(one) : NULL;
        rq.invalid_len[i] = rq.invalid[i] ? (size_t)n : 0;
    }
    build_oversized(hostport);
    rq.expect_len = opt.expect ? strlen(opt.expect) : 0;
    bool ok = rq.valid && rq.reset && rq.slow;
    for (size_t i = 0; i < NINVALID; i++)
        ok = ok && rq.invalid[i];
    return ok;
}

static void free_requests(void) {
    free(rq.valid);
    free(rq.reset);
    free(rq.slow);
    for (size_t i = 0; i < NINVALID; i++)
        free(rq.invalid[i]);
}

/* ------------------------------------------------------------- responses */

/* What a response head says. */
typedef struct head {
    int status;
    int64_t length; /* Content-Length; -1: none */
    bool close, chunked, keep_alive;
} head;

static bool has_token(const char *v, size_t n, const char *tok) {
    size_t t = strlen(tok);
    for (size_t i = 0; i + t <= n; i++)
        if (!strncasecmp(v + i, tok, t))
            return true;
    return false;
}

static void parse_field(const char *p, size_t n, head *h) {
    const char *colon = memchr(p, ':', n);
    if (!colon)
        return;
    size_t kl = (size_t)(colon - p), vl = n - kl - 1;
    const char *v = colon + 1;
    while (vl && (*v == ' ' || *v == '\t'))
        v++, vl--;
    if (kl == 14 && !strncasecmp(p, "Content-Length", 14)) {
        int64_t x = 0;
        size_t i = 0;
        for (; i < vl && v[i] >= '0' && v[i] <= '9' && x < INT64_MAX / 10; i++)
            x = x * 10 + (v[i] - '0');
        h->length = i ? x : -1;
    } else if (kl == 10 && !strncasecmp(p, "Connection", 10)) {
        h->close = has_token(v, vl, "close");
        h->keep_alive = has_token(v, vl, "keep-alive");
    } else if (kl == 17 && !strncasecmp(p, "Transfer-Encoding", 17)) {
        h->chunked = true;
    }
}

/* A response head p[0..n) (through the blank line): 0, or -1 if it is not
 * HTTP/1.x with a three-digit status. */
static int parse_head(const char *p, size_t n, head *h) {
    *h = (head){.length = -1};
    if (n < 14 || memcmp(p, "HTTP/1.", 7) || p[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        h->status = h->status * 10 + (p[i] - '0');
    }
    const char *e = p + n, *line = memchr(p, '\n', n);
    for (line = line ? line + 1 : e; line < e;) {
        const char *eol = memchr(line, '\n', (size_t)(e - line));
        if (!eol || eol - line <= 1)
            break;
        parse_field(line, (size_t)(eol - line - 1), h);
        line = eol + 1;
    }
    if (p[7] == '0' && !h->keep_alive)
        h->close = true; /* HTTP/1.0 closes unless it says otherwise */
    return 0;
}

/* Length of the head at the start of p[0..n): > 0, 0 when incomplete, -1 when
 * longer than any sane head. */
static ssize_t head_length(const char *p, size_t n) {
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    if (e)
        return e + 4 - p;
    return n > MAX_RESP_HEAD ? -1 : 0;
}

/* ------------------------------------------------------------ histogram */

/* Latency in ns: values below 128 have their own bucket, above that 64
 * sub-buckets per power of two (percentiles within 1.6 %). */
#define HIST_BUCKETS ((63 - 6) * 64 + 128)

static unsigned hist_bucket(uint64_t v) {
    if (v < 128)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 7 */
    return (e - 6) * 64 + (unsigned)(v >> (e - 6));
}

/* Smallest value of bucket b. */
static uint64_t hist_low(unsigned b) {
    if (b < 128)
        return b;
    unsigned e = b / 64 + 5;
    return (uint64_t)(b - (e - 6) * 64) << (e - 6);
}

static double hist_quantile_us(const uint64_t *hist, uint64_t total, double q) {
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    for (unsigned b = 0; total && b < HIST_BUCKETS; b++)
        if ((acc += hist[b]) > want)
            return (double)hist_low(b) / 1000.0;
    return 0;
}

/* ------------------------------------------------------------ the loops */

/* Per class: episodes (valid: requests) started, answered as expected, not. */
typedef struct counts {
    uint64_t sent[CL__COUNT], good[CL__COUNT], bad[CL__COUNT];
    uint64_t errors, connects, server_closes;
} counts;

struct worker;

/* One client connection slot, owned by its worker for the whole run. Its
 * connection comes and goes: one per episode, or, for valid slots, for as
 * long as the server keeps it alive. */
typedef struct slot {
    struct worker *w;
    vx_conn *c;      /* NULL between connections */
    vx_timer *timer; /* slow drip, reset delay, connect retry */
    uint64_t *sent;  /* valid: send times of the requests in flight (a ring) */
    unsigned inflight, first;
    int cls, id, variant, status;
    bool connecting, closing, ending, done;
    bool in_body, bad_body, server_close; /* valid: the response being read */
    bool settled;                         /* other classes: outcome counted */
    int64_t body_left;
    size_t body_off, drip;
    uint64_t episodes, deadline;
} slot;

/* --rate: tokens released up to upto, at time t. */
typedef struct release {
    uint64_t t, upto;
} release;

/* One thread and its loop; the main thread reads it after the join. */
typedef struct worker {
    pthread_t tid;
    vx_loop *loop;
    vx_timer *tick, *deadline;
    slot *slots;
    uint64_t *sent;
    int nslots, live, rc;
    bool stopping;
    uint64_t budget; /* requests and episodes this thread may still start */
    uint64_t t_begin, t_last;
    uint64_t connected_ms; /* loop time of the last connect that worked (or the start) */
    /* --rate: tokens released by the pace timer and taken by requests; each
     * release is (time, tokens released up to then), oldest first, in a
     * ring that grows while requests wait for connections. */
    vx_timer *pace;
    uint64_t rate, released, taken;
    release *rel;
    size_t rel_first, rel_n, rel_cap;
    int next_offer; /* the slot the next tokens are offered to first */
    counts k;
    uint64_t hist[HIST_BUCKETS], hist_max;
} worker;

static atomic_bool g_stop; /* SIGINT/SIGTERM */
static atomic_int g_logged;

static void note(const slot *s, const char *what, int err) {
    if (atomic_fetch_add(&g_logged, 1) >= MAX_LOGGED)
        return;
    fprintf(stderr, "vx-load: %s conn %d: %s%s%s\n", class_names[s->cls], s->id, what,
            err ? ": " : "", err ? vx_err_name(err) : "");
}

static void start_episode(slot *s);
static void slot_stop(slot *s);

static void slot_done(slot *s) {
    if (s->done)
        return;
    s->done = true;
    if (--s->w->live == 0)
        vx_loop_stop(s->w->loop);
}

static bool take_budget(worker *w) {
    if (w->stopping || !w->budget)
        return false;
    w->budget--;
    return true;
}

/* One valid request may start: its latency clock starts at *t (its token's
 * release with --rate, else now). */
static bool take_request(worker *w, uint64_t now, uint64_t *t) {
    if (w->rate && w->taken == w->released)
        return false;
    if (!take_budget(w))
        return false;
    *t = now;
    if (w->rate) {
        while (w->rel[w->rel_first].upto <= w->taken)
            w->rel_first = (w->rel_first + 1) % w->rel_cap, w->rel_n--;
        *t = w->rel[w->rel_first].t;
        w->taken++;
    }
    return true;
}

/* End this connection now (its close callback does the accounting). */
static void drop(slot *s, bool rst) {
    if (s->c && !s->closing) {
        s->closing = true;
        vx_conn_abort(s->c, rst);
    }
}

/* Close after the queued output, FIN first (valid and cut episodes). */
static void finish(slot *s) {
    if (s->c && !s->closing) {
        s->closing = true;
        vx_conn_close(s->c);
    }
}

/* Outcome of a non-valid episode, counted once. */
static void settle(slot *s, bool good, const char *why) {
    if (s->settled)
        return;
    s->settled = true;
    if (good) {
        s->w->k.good[s->cls]++;
    } else {
        s->w->k.bad[s->cls]++;
        note(s, why, 0);
    }
}

/* ------------------------------------------------------------ valid */

/* Top the pipeline up to opt.pipeline requests (with --rate, as far as the
 * released tokens go); a slot with nothing left to send and nothing in
 * flight is finished, one merely waiting for tokens stays open. */
static void fill(slot *s) {
    worker *w = s->w;
    if (s->closing)
        return;
    unsigned k = 0, want = (unsigned)opt.pipeline - s->inflight;
    uint64_t now = app_now_ns(), t;
    while (!s->server_close && k < want && take_request(w, now, &t))
        s->sent[(s->first + s->inflight + k++) % (unsigned)opt.pipeline] = t;
    if (k) {
        s->inflight += k;
        w->k.sent[CL_VALID] += k;
        if (vx_conn_write(s->c, rq.valid, k * rq.valid_len) < 0)
            return drop(s, false);
    }
    if (s->inflight)
        return;
    bool more = !w->stopping && w->budget;
    if (s->server_close && more)
        finish(s); /* the server will close: a new connection then */
    else if (!(w->rate && more))
        slot_stop(s); /* else idle until the pace timer releases tokens */
}

static void response_done(slot *s, uint64_t t) {
    worker *w = s->w;
    uint64_t lat = t - s->sent[s->first];
    s->first = (s->first + 1) % (unsigned)opt.pipeline;
    s->inflight--;
    s->in_body = false;
    w->t_last = t;
    if (s->status == 200 && !s->bad_body) {
        w->k.good[CL_VALID]++;
        w->hist[hist_bucket(lat)]++;
        if (lat > w->hist_max)
            w->hist_max = lat;
        return;
    }
    w->k.bad[CL_VALID]++;
    note(s, s->status != 200 ? "status not 200" : "body differs from --expect", 0);
}

/* The head at p: 0 incomplete, -1 unusable (the connection is dropped). */
static ssize_t valid_head(slot *s, const char *p, size_t n) {
    ssize_t hl = head_length(p, n);
    head h;
    if (hl <= 0)
        return hl;
    if (parse_head(p, (size_t)hl, &h) < 0 || h.chunked || h.length < 0) {
        note(s, h.length < 0 ? "response without Content-Length" : "not an HTTP/1.x response", 0);
        return -1;
    }
    s->status = h.status;
    s->body_left = h.length;
    s->body_off = 0;
    s->bad_body = opt.expect && (size_t)h.length != rq.expect_len;
    s->server_close |= h.close; /* what we sent after this goes unanswered */
    s->in_body = true;
    return hl;
}

static size_t valid_body(slot *s, const char *p, size_t n) {
    size_t take = (size_t)(s->body_left < (int64_t)n ? s->body_left : (int64_t)n);
    if (opt.expect && !s->bad_body && memcmp(p, opt.expect + s->body_off, take))
        s->bad_body = true;
    s->body_off += take;
    s->body_left -= (int64_t)take;
    return take;
}

static size_t valid_data(vx_conn *c, const char *data, size_t len) {
    slot *s = vx_conn_data(c);
    uint64_t t = 0;
    for (size_t off = 0; off < len || (s->in_body && !s->body_left);) {
        if (!s->inflight) {
            s->w->k.errors++;
            note(s, "bytes with no request in flight", 0);
            drop(s, false);
            return len;
        }
        if (!s->in_body) {
            ssize_t hl = valid_head(s, data + off, len - off);
            if (hl == 0)
                return off; /* the connection keeps the partial head */
            if (hl < 0) {
                drop(s, false);
                return len;
            }
            off += (size_t)hl;
        }
        off += valid_body(s, data + off, len - off);
        if (s->body_left)
            break;
        response_done(s, t ? t : (t = app_now_ns()));
    }
    fill(s);
    return len;
}

static void valid_start(slot *s) {
    s->inflight = s->first = 0;
    s->in_body = s->server_close = false;
    vx_conn_set_idle_timeout(s->c, opt.timeout_ms);
    fill(s);
}

static void valid_closed(slot *s, int err) {
    worker *w = s->w;
    if (s->inflight) {
        w->k.bad[CL_VALID] += s->inflight;
        note(s, "connection closed with requests in flight", err);
    } else if (!s->ending && (s->server_close || !s->closing)) {
        w->k.server_closes++; /* Connection: close, or an idle one closed: reconnect */
    }
    s->inflight = 0;
}

/* ------------------------------------------------------------ invalid */

static void invalid_start(slot *s) {
    s->variant = (int)(s->episodes++ % NINVALID);
    vx_conn_set_idle_timeout(s->c, opt.timeout_ms);
    if (vx_conn_write(s->c, rq.invalid[s->variant], rq.invalid_len[s->variant]) < 0)
        drop(s, false);
}

/* The status is all that matters; the body and anything after are dropped. */
static size_t invalid_data(vx_conn *c, const char *data, size_t len) {
    slot *s = vx_conn_data(c);
    if (s->status)
        return len;
    ssize_t hl = head_length(data, len);
    head h;
    if (hl == 0)
        return 0;
    if (hl < 0 || parse_head(data, (size_t)hl, &h) < 0) {
        settle(s, false, "not an HTTP/1.x response");
        drop(s, false);
        return len;
    }
    s->status = h.status;
    if (s->status < 400 || s->status > 499) {
        settle(s, false, "invalid request not refused with a 4xx");
        drop(s, false);
    }
    return len;
}

static void invalid_eof(vx_conn *c) {
    slot *s = vx_conn_data(c);
    settle(s, s->status >= 400 && s->status <= 499, "closed without a response");
    finish(s);
}

/* ------------------------------------------------------------ slow */

static void slow_start(slot *s) {
    s->drip = 0;
    s->deadline = vx_loop_now(s->w->loop) + opt.slow_timeout_ms;
    vx_timer_start(s->timer, 0, opt.slow_ms);
}

/* One more byte of a head that never ends. */
static void slow_tick(slot *s) {
    if (vx_loop_now(s->w->loop) >= s->deadline) {
        settle(s, false, "no 408 and no close within --slow-timeout");
        vx_timer_stop(s->timer);
        return drop(s, false);
    }
    char b = s->drip < rq.slow_len ? rq.slow[s->drip] : 'a';
    s->drip++;
    if (vx_conn_write(s->c, &b, 1) < 0)
        drop(s, false);
}

static size_t slow_data(vx_conn *c, const char *data, size_t len) {
    slot *s = vx_conn_data(c);
    ssize_t hl = head_length(data, len);
    head h;
    if (hl == 0)
        return 0;
    bool ok = hl > 0 && parse_head(data, (size_t)hl, &h) == 0 && h.status == 408;
    settle(s, ok, "slow client answered, but not with 408");
    vx_timer_stop(s->timer);
    finish(s);
    return len;
}

static void slow_eof(vx_conn *c) {
    slot *s = vx_conn_data(c);
    settle(s, true, NULL); /* closed by the server: what we expect */
    vx_timer_stop(s->timer);
    finish(s);
}

/* ------------------------------------------------------------ reset */

/* Even episodes reset mid-request (half a head sent), odd ones at the first
 * byte of the response. */
static void reset_start(slot *s) {
    s->variant = (int)(s->episodes++ % 2);
    vx_conn_set_idle_timeout(s->c, opt.timeout_ms);
    int rc = s->variant == 0 ? vx_conn_write(s->c, rq.valid, rq.valid_len / 2)
                             : vx_conn_write(s->c, rq.reset, rq.reset_len);
    if (rc < 0)
        return drop(s, false);
    if (s->variant == 0) /* after this turn's flush, so the half request is out */
        vx_timer_start(s->timer, RESET_DELAY_MS, 0);
}

static void reset_now(slot *s) {
    settle(s, true, NULL);
    drop(s, true);
}

static size_t reset_data(vx_conn *c, const char *data, size_t len) {
    (void)data;
    slot *s = vx_conn_data(c);
    if (s->variant == 1)
        reset_now(s);
    else
        settle(s, false, "response to half a request");
    return len;
}

static void reset_eof(vx_conn *c) {
    slot *s = vx_conn_data(c);
    settle(s, false, "closed by the server before the reset");
    finish(s);
}

/* ------------------------------------------------------------ slots */

static void on_close(vx_conn *c, int err) {
    slot *s = vx_conn_data(c);
    s->c = NULL;
    vx_timer_stop(s->timer);
    if (s->done)
        return; /* vx_loop_free closing leftovers */
    if (s->cls == CL_VALID)
        valid_closed(s, err);
    else if (s->cls == CL_SLOW && !s->ending)
        settle(s, true, NULL); /* reset or closed by the server */
    else if (!s->ending)
        settle(s,
               s->cls == CL_INVALID && s->status >= 400 && s->status <= 499 && err == -ECONNRESET,
               err == -ETIMEDOUT ? "no answer within --timeout" : "connection error");
    if (s->ending || s->w->stopping)
        slot_done(s);
    else
        start_episode(s);
}

static const vx_conn_cbs class_cbs[CL__COUNT] = {
    [CL_VALID] = {.on_data = valid_data, .on_close = on_close},
    [CL_INVALID] = {.on_data = invalid_data, .on_eof = invalid_eof, .on_close = on_close},
    [CL_SLOW] = {.on_data = slow_data, .on_eof = slow_eof, .on_close = on_close},
    [CL_RESET] = {.on_data = reset_data, .on_eof = reset_eof, .on_close = on_close},
};

static void begin_stop(worker *w);

static void connect_failed(slot *s, int err) {
    worker *w = s->w;
    w->k.errors++;
    note(s, "connect failed", err);
    /* A server that stays unreachable ends the run (--duration 0 would
     * otherwise retry forever). */
    if (!w->stopping && vx_loop_now(w->loop) - w->connected_ms >= opt.timeout_ms) {
        fprintf(stderr, "vx-load: no connection for %llu ms (--timeout): stopping\n",
                (unsigned long long)opt.timeout_ms);
        begin_stop(w);
    }
    if (s->ending || w->stopping)
        slot_done(s);
    else
        vx_timer_start(s->timer, RETRY_MS, 0);
}

static void on_connect(vx_conn *c, int err, void *data) {
    slot *s = data;
    s->connecting = false;
    if (err < 0)
        return connect_failed(s, err);
    if (s->ending) { /* not started: no close callback */
        vx_conn_abort(c, false);
        return slot_done(s);
    }
    int rc = vx_conn_start(c, &class_cbs[s->cls], s);
    if (rc < 0) {
        vx_conn_abort(c, false);
        return connect_failed(s, rc);
    }
    s->w->k.connects++;
    s->w->connected_ms = vx_loop_now(s->w->loop);
    s->c = c;
    s->closing = s->settled = false;
    s->status = 0;
    if (s->cls != CL_VALID)
        s->w->k.sent[s->cls]++;
    static void (*const start[CL__COUNT])(slot *) = {valid_start, invalid_start, slow_start,
                                                     reset_start};
    start[s->cls](s);
}

static void start_episode(slot *s) {
    worker *w = s->w;
    /* Valid slots pay the budget per request, the others per episode. */
    bool go = s->cls == CL_VALID ? !w->stopping && w->budget : take_budget(w);
    if (!go)
        return slot_stop(s);
    vx_connect_opts o = {
        .host = opt.host, .port = (uint16_t)opt.port, .timeout_ms = opt.timeout_ms};
    s->connecting = true;
    int rc = vx_connect(w->loop, &o, on_connect, s);
    if (rc < 0) {
        s->connecting = false;
        connect_failed(s, rc);
    }
}

/* No more episodes: close what is open (a valid slot is only stopped once
 * nothing is in flight, or by the drain deadline). */
static void slot_stop(slot *s) {
    s->ending = true;
    vx_timer_stop(s->timer);
    if (s->c)
        finish(s);
    else if (!s->connecting)
        slot_done(s);
}

static void slot_timer(vx_timer *t, void *data) {
    (void)t;
    slot *s = data;
    if (!s->c) {
        if (!s->connecting && !s->ending)
            start_episode(s); /* retry after a failed connect */
    } else if (s->cls == CL_SLOW) {
        slow_tick(s);
    } else if (s->cls == CL_RESET) {
        reset_now(s);
    }
}

/* ------------------------------------------------------------ a worker */

/* Tokens due by now: rate x elapsed, without overflowing for any run. */
static uint64_t tokens_due(const worker *w, uint64_t now) {
    uint64_t ns = now - w->t_begin;
    return ns / 1000000000u * w->rate + ns % 1000000000u * w->rate / 1000000000u;
}

static bool note_release(worker *w, uint64_t now, uint64_t upto) {
    if (w->rel_n == w->rel_cap) { /* requests are waiting: grow, oldest first */
        size_t cap = w->rel_cap ? 2 * w->rel_cap : 1024;
        release *r = malloc(cap * sizeof *r);
        if (!r)
            return false;
        for (size_t i = 0; i < w->rel_n; i++)
            r[i] = w->rel[(w->rel_first + i) % w->rel_cap];
        free(w->rel);
        w->rel = r, w->rel_cap = cap, w->rel_first = 0;
    }
    w->rel[(w->rel_first + w->rel_n++) % w->rel_cap] = (release){now, upto};
    return true;
}

/* --rate: release the tokens due, then offer them to the idle valid slots,
 * round robin, so the load spreads over the connections. */
static void pace(vx_timer *t, void *data) {
    (void)t;
    worker *w = data;
    uint64_t now = app_now_ns(), due = tokens_due(w, now);
    if (w->stopping || due == w->released)
        return;
    if (!note_release(w, now, due)) {
        fprintf(stderr, "vx-load: out of memory for the request backlog: stopping\n");
        w->k.errors++;
        return begin_stop(w);
    }
    w->released = due;
    for (int i = 0; i < w->nslots && w->taken < w->released; i++) {
        slot *s = &w->slots[w->next_offer];
        w->next_offer = (w->next_offer + 1) % w->nslots;
        if (s->cls == CL_VALID && s->c && !s->closing && s->inflight < (unsigned)opt.pipeline)
            fill(s);
    }
}

/* Time is up (or a signal came): no new requests; in-flight ones get
 * --timeout to finish, then deadline_hit() drops them. */
static void begin_stop(worker *w) {
    if (w->stopping)
        return;
    w->stopping = true;
    w->t_last = app_now_ns(); /* the run's end, unless responses still come in */
    vx_timer_stop(w->pace);
    for (int i = 0; i < w->nslots; i++) {
        slot *s = &w->slots[i];
        if (!s->done && !(s->cls == CL_VALID && s->inflight))
            slot_stop(s);
    }
    vx_timer_start(w->deadline, opt.timeout_ms, 0);
}

static void deadline_hit(vx_timer *t, void *data) {
    (void)t;
    worker *w = data;
    if (!w->stopping)
        return begin_stop(w);
    for (int i = 0; i < w->nslots; i++) {
        w->slots[i].ending = true;
        drop(&w->slots[i], false);
    }
}

static void tick(vx_timer *t, void *data) {
    (void)t;
    if (atomic_load_explicit(&g_stop, memory_order_relaxed))
        begin_stop(data);
}

static int worker_setup(worker *w, int first, int stride, const int *classes) {
    vx_loop_opts lo = {.backend = opt.backend};
    int rc = vx_loop_new(&w->loop, &lo);
    if (rc < 0)
        return rc;
    if ((rc = vx_timer_new(w->loop, tick, w, &w->tick)) < 0 ||
        (rc = vx_timer_new(w->loop, deadline_hit, w, &w->deadline)) < 0 ||
        (rc = vx_timer_new(w->loop, pace, w, &w->pace)) < 0)
        return rc;
    w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
    w->sent = calloc((size_t)w->nslots * (size_t)opt.pipeline, sizeof *w->sent);
    if (!w->slots || !w->sent)
        return -ENOMEM;
    for (int i = 0; i < w->nslots; i++) {
        slot *s = &w->slots[i];
        *s = (slot){.w = w, .id = first + i * stride, .cls = classes[first + i * stride]};
        s->sent = w->sent + (size_t)i * (size_t)opt.pipeline;
        if ((rc = vx_timer_new(w->loop, slot_timer, s, &s->timer)) < 0)
            return rc;
    }
    return 0;
}

static void worker_cleanup(worker *w) {
    for (int i = 0; w->slots && i < w->nslots; i++)
        vx_timer_free(w->slots[i].timer);
    vx_timer_free(w->tick);
    vx_timer_free(w->deadline);
    vx_timer_free(w->pace);
    if (w->loop)
        vx_loop_free(w->loop);
    free(w->slots);
    free(w->sent);
    free(w->rel);
}

/* Worker i of n: slots i, i + n, i + 2n... of the global slot list. */
typedef struct worker_arg {
    worker *w;
    int first, stride;
    const int *classes;
} worker_arg;

static void *worker_main(void *arg) {
    worker_arg *a = arg;
    worker *w = a->w;
    w->rc = worker_setup(w, a->first, a->stride, a->classes);
    if (w->rc == 0) {
        w->live = w->nslots;
        w->t_begin = w->t_last = app_now_ns();
        w->connected_ms = vx_loop_now(w->loop);
        vx_timer_start(w->tick, TICK_MS, TICK_MS);
        if (opt.duration > 0)
            vx_timer_start(w->deadline, (uint64_t)(opt.duration * 1000), 0);
        if (w->rate)
            vx_timer_start(w->pace, PACE_MS, PACE_MS);
        for (int i = 0; i < w->nslots; i++)
            start_episode(&w->slots[i]);
        if (w->live > 0)
            w->rc = vx_loop_run(w->loop);
    }
    worker_cleanup(w);
    return NULL;
}

/* ------------------------------------------------------------ the run */

/* Split n slots by the weights (largest remainder, every non-zero weight gets
 * at least one), then interleave the classes (smooth weighted round-robin)
 * so that each thread gets its share of each. */
static int assign_classes(int n, int *classes) {
    unsigned sum = 0;
    int count[CL__COUNT], nonzero = 0, given = 0;
    uint64_t rem[CL__COUNT];
    for (int k = 0; k < CL__COUNT; k++)
        sum += opt.mix[k], nonzero += opt.mix[k] > 0;
    if (!sum || n < nonzero)
        return -EINVAL;
    for (int k = 0; k < CL__COUNT; k++) {
        given += count[k] = (int)((uint64_t)n * opt.mix[k] / sum);
        rem[k] = (uint64_t)n * opt.mix[k] % sum;
    }
    /* The remainders add up to (n - given) * sum, each below sum: enough of
     * them are non-zero for one extra slot each. */
    for (; given < n; given++) {
        int best = 0;
        for (int k = 1; k < CL__COUNT; k++)
            best = rem[k] > rem[best] ? k : best;
        count[best]++;
        rem[best] = 0;
    }
    for (int k = 0; k < CL__COUNT; k++) {
        while (opt.mix[k] && !count[k]) {
            int big = 0;
            for (int j = 1; j < CL__COUNT; j++)
                big = count[j] > count[big] ? j : big;
            count[big]--, count[k]++;
        }
    }
    int cur[CL__COUNT] = {0};
    for (int i = 0; i < n; i++) {
        int best = -1;
        for (int k = 0; k < CL__COUNT; k++) {
            cur[k] += count[k];
            if (count[k] && (best < 0 || cur[k] > cur[best]))
                best = k;
        }
        cur[best] -= n;
        classes[i] = best;
    }
    return 0;
}

static void on_signal(int signum) {
    (void)signum;
    atomic_store(&g_stop, true);
}

/* The sum over the workers, one line; exit status. */
static int report(worker *ws, int n) {
    counts k = {0};
    static uint64_t hist[HIST_BUCKETS];
    uint64_t t0 = UINT64_MAX, t1 = 0, max = 0, unsent = 0;
    for (int i = 0; i < n; i++) {
        worker *w = &ws[i];
        for (int c = 0; c < CL__COUNT; c++)
            k.sent[c] += w->k.sent[c], k.good[c] += w->k.good[c], k.bad[c] += w->k.bad[c];
        k.errors += w->k.errors, k.connects += w->k.connects;
        k.server_closes += w->k.server_closes;
        for (unsigned b = 0; b < HIST_BUCKETS; b++)
            hist[b] += w->hist[b];
        max = w->hist_max > max ? w->hist_max : max;
        unsent += w->released - w->taken;
        t0 = w->t_begin < t0 ? w->t_begin : t0;
        t1 = w->t_last > t1 ? w->t_last : t1;
    }
    /* Anything sent and neither answered nor failed is a failure too. */
    uint64_t answered = k.good[CL_VALID] + k.bad[CL_VALID];
    if (k.sent[CL_VALID] > answered)
        k.bad[CL_VALID] += k.sent[CL_VALID] - answered;
    double secs = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    uint64_t ok = k.good[CL_VALID];
    printf("vx-load backend=%s threads=%d conns=%d pipeline=%d rate=%llu secs=%.2f requests=%llu "
           "ok=%llu failed=%llu errors=%llu rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f unsent=%llu connects=%llu server_closes=%llu",
           vx_backend_name(opt.backend), opt.threads, opt.conns, opt.pipeline,
           (unsigned long long)opt.rate, secs, (unsigned long long)k.sent[CL_VALID],
           (unsigned long long)ok, (unsigned long long)k.bad[CL_VALID],
           (unsigned long long)k.errors, secs > 0 ? (double)ok / secs : 0,
           hist_quantile_us(hist, ok, 0.5), hist_quantile_us(hist, ok, 0.9),
           hist_quantile_us(hist, ok, 0.99), (double)max / 1000.0, (unsigned long long)unsent,
           (unsigned long long)k.connects, (unsigned long long)k.server_closes);
    uint64_t bad = k.bad[CL_VALID] + k.errors;
    for (int c = CL_INVALID; c < CL__COUNT; c++) {
        printf(" %s=%llu %s_ok=%llu %s_bad=%llu", class_names[c], (unsigned long long)k.sent[c],
               class_names[c], (unsigned long long)k.good[c], class_names[c],
               (unsigned long long)k.bad[c]);
        bad += k.bad[c];
    }
    printf("\n");
    fflush(stdout);
    return bad ? 1 : 0;
}

/* Start the threads, wait for them, report. */
static int run_workers(worker *ws, worker_arg *args, const int *classes) {
    int started = 0, failed = 0;
    uint64_t share = opt.requests / (uint64_t)opt.threads;
    for (int i = 0; i < opt.threads; i++) {
        bool extra = (uint64_t)i < opt.requests % (uint64_t)opt.threads;
        ws[i].budget = opt.requests ? share + extra : UINT64_MAX;
        ws[i].nslots = opt.conns / opt.threads + (i < opt.conns % opt.threads);
        ws[i].rate =
            opt.rate / (uint64_t)opt.threads + ((uint64_t)i < opt.rate % (uint64_t)opt.threads);
        args[i] = (worker_arg){&ws[i], i, opt.threads, classes};
        if (pthread_create(&ws[i].tid, NULL, worker_main, &args[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(ws[i].tid, NULL);
        if (ws[i].rc < 0) {
            fprintf(stderr, "vx-load: thread %d: %s\n", i, vx_strerror(ws[i].rc));
            failed++;
        }
    }
    if (started < opt.threads)
        fprintf(stderr, "vx-load: cannot start thread %d\n", started);
    return started < opt.threads || failed ? 2 : report(ws, started);
}

static int run(void) {
    int *classes = calloc((size_t)opt.conns, sizeof *classes);
    worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    worker_arg *args = calloc((size_t)opt.threads, sizeof *args);
    int rc = 2;
    if (!classes || !ws || !args || assign_classes(opt.conns, classes) < 0)
        fprintf(stderr, "vx-load: cannot set up %d connections with that --mix\n", opt.conns);
    else
        rc = run_workers(ws, args, classes);
    free(classes);
    free(ws);
    free(args);
    return rc;
}

/* ------------------------------------------------------------ options */

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: vx-load [options]   HTTP/1.1 load on 127.0.0.1:8080/plaintext by default\n"
        "  --host H             server address (numeric IPv4/IPv6 or localhost; 127.0.0.1)\n"
        "  --port P             server port (8080)\n"
        "  --backend NAME       auto|select|poll|epoll|epoll-et|uring (auto; or VX_BACKEND)\n"
        "  --threads N          N loops, one thread each; connections split among them (1)\n"
        "  --conns N            connection slots in all (64)\n"
        "  --duration S         stop starting requests after S seconds (10; 0: only --requests)\n"
        "  --requests N         stop after N requests and episodes of all classes (0: no bound)\n"
        "  --path P             target of valid requests (/plaintext)\n"
        "  --pipeline D         requests in flight per valid connection (1)\n"
        "  --expect BODY        every valid response's body must be exactly BODY\n"
        "  --header 'N: V'      extra header line on valid requests (repeatable, up to 16)\n"
        "  --timeout MS         connect, response and drain timeout; no connect\n"
        "                       working for that long ends the run (10000)\n"
        "  --mix SPEC           slot classes by weight, e.g. valid=90,invalid=3,slow=3,reset=4\n"
        "                       (valid=100); every non-zero weight gets at least one slot\n"
        "  --slow-interval MS   a slow client sends one byte every MS (100)\n"
        "  --slow-timeout MS    a slow client must see 408 or a close by then (30000)\n"
        "  --reset-path P       what mid-response resets ask for (--path); name a large\n"
        "                       response so that the reset lands in the middle of it\n"
        "  --rate R             open loop: R valid requests per second in all, released\n"
        "                       every %d ms and sent on whichever valid connection is\n"
        "                       free (0: closed loop, each slot sends as it is answered)\n"
        "Classes (each slot repeats its own until the run ends):\n"
        "  valid    keep-alive connection, --pipeline requests in flight; every response\n"
        "           must be 200 with Content-Length framing (and --expect's body).\n"
        "           Latency runs from the write of a request (with --rate, from the\n"
        "           release of its token) to the end of its response.\n"
        "  invalid  a new connection per request, one of %d malformed requests (bad field,\n"
        "           CL+TE, no Host, bare LF, control byte, repeated Content-Length, 9 KiB\n"
        "           target, 120 fields); the server must answer 4xx and close.\n"
        "  slow     a new connection sending a head that never ends, a byte at a time;\n"
        "           the server must answer 408 or close (its header timeout).\n"
        "  reset    a new connection reset with SO_LINGER 0, alternately mid-request\n"
        "           (half a head sent) and at the first byte of the response.\n"
        "Output: one line, vx-load backend=.. rate=R requests=N ok=N failed=N errors=N rps=N\n"
        "  p50_us= p90_us= p99_us= max_us= connects= server_closes= invalid= invalid_ok=\n"
        "  invalid_bad= slow= slow_ok= slow_bad= reset= reset_ok= reset_bad=\n"
        "  (requests/ok/failed: valid requests; errors: failed connects and stray bytes;\n"
        "  the other classes count episodes). Exit 0, 1 if anything failed or was bad,\n"
        "  2 on bad usage. SIGINT/SIGTERM end the run early and still report.\n",
        PACE_MS, (int)NINVALID);
}

static long long num(const char *name, const char *s, long long lo, long long hi) {
    return app_num("vx-load", name, s, lo, hi);
}

static void parse_mix(const char *spec) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    memset(opt.mix, 0, sizeof opt.mix);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        int k = 0;
        while (eq && k < CL__COUNT && strncmp(t, class_names[k], (size_t)(eq - t)))
            k++;
        if (!eq || k == CL__COUNT || (size_t)(eq - t) != strlen(class_names[k])) {
            fprintf(stderr, "vx-load: bad --mix element '%s'\n", t);
            exit(2);
        }
        opt.mix[k] = (unsigned)num("--mix weight", eq + 1, 0, 1000000);
    }
}

/* The numeric options; false for any other. */
static bool set_number(int ch, const char *arg) {
    switch (ch) {
    case 'p':
        opt.port = (int)num("--port", arg, 1, 65535);
        return true;
    case 't':
        opt.threads = (int)num("--threads", arg, 1, 256);
        return true;
    case 'c':
        opt.conns = (int)num("--conns", arg, 1, 1000000);
        return true;
    case 'd':
        opt.duration = (double)num("--duration", arg, 0, 86400);
        return true;
    case 'n':
        opt.requests = (uint64_t)num("--requests", arg, 0, LLONG_MAX);
        return true;
    case 'D':
        opt.pipeline = (int)num("--pipeline", arg, 1, 1024);
        return true;
    case 'T':
        opt.timeout_ms = (uint64_t)num("--timeout", arg, 1, 3600000);
        return true;
    case 's':
        opt.slow_ms = (uint64_t)num("--slow-interval", arg, 1, 60000);
        return true;
    case 'S':
        opt.slow_timeout_ms = (uint64_t)num("--slow-timeout", arg, 1, 3600000);
        return true;
    case 'R':
        opt.rate = (uint64_t)num("--rate", arg, 0, 100000000);
        return true;
    }
    return false;
}

/* What vx_connect takes: IPv4, IPv6 (bracketed or not) or localhost. */
static bool numeric_host(const char *h) {
    unsigned char a[16];
    char b[64];
    size_t n = strlen(h);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']' && n - 2 < sizeof b) {
        memcpy(b, h + 1, n - 2);
        b[n - 2] = 0;
        h = b;
    }
    return !strcmp(h, "localhost") || inet_pton(AF_INET, h, a) == 1 ||
           inet_pton(AF_INET6, h, a) == 1;
}

/* The other options; false for an unknown one. */
static bool set_option(int ch, const char *arg) {
    switch (ch) {
    case 'h':
        if (!numeric_host(arg)) { /* else every connection would fail with EINVAL */
            fprintf(stderr, "vx-load: bad --host '%s' (numeric IPv4/IPv6 or localhost)\n", arg);
            exit(2);
        }
        opt.host = arg;
        return true;
    case 'b':
        opt.backend = app_backend("vx-load", arg);
        return true;
    case 'P':
        opt.path = arg;
        return true;
    case 'e':
        opt.expect = arg;
        return true;
    case 'r':
        opt.reset_path = arg;
        return true;
    case 'm':
        parse_mix(arg);
        return true;
    case 'H':
        if (opt.nheaders == MAX_HEADERS || !strchr(arg, ':')) {
            fprintf(stderr, "vx-load: --header 'Name: value', at most %d\n", MAX_HEADERS);
            exit(2);
        }
        opt.headers[opt.nheaders++] = arg;
        return true;
    }
    return set_number(ch, arg);
}

static void parse_args(int argc, char **argv) {
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},
        {"port", 1, 0, 'p'},
        {"backend", 1, 0, 'b'},
        {"threads", 1, 0, 't'},
        {"conns", 1, 0, 'c'},
        {"duration", 1, 0, 'd'},
        {"requests", 1, 0, 'n'},
        {"path", 1, 0, 'P'},
        {"pipeline", 1, 0, 'D'},
        {"expect", 1, 0, 'e'},
        {"header", 1, 0, 'H'},
        {"timeout", 1, 0, 'T'},
        {"mix", 1, 0, 'm'},
        {"slow-interval", 1, 0, 's'},
        {"slow-timeout", 1, 0, 'S'},
        {"reset-path", 1, 0, 'r'},
        {"rate", 1, 0, 'R'},
        {"help", 0, 0, 'u'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (ch == 'u') {
            usage(stdout);
            exit(0);
        }
        if (!set_option(ch, optarg)) {
            usage(stderr);
            exit(2);
        }
    }
    const char *bad = optind < argc                    ? "unexpected argument"
                      : opt.threads > opt.conns        ? "more threads than connections"
                      : !opt.duration && !opt.requests ? "--duration 0 needs --requests"
                      : opt.rate && opt.rate < (uint64_t)opt.threads
                          ? "--rate below one request per second per thread"
                          : NULL;
    if (bad) {
        fprintf(stderr, "vx-load: %s (see --help)\n", bad);
        exit(2);
    }
}

/* Every slot holds one socket, plus a few while connections close. */
static bool raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (rlim_t)opt.conns + 64 <= rl.rlim_cur;
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    if (app_resolve_backend("vx-load", &opt.backend) < 0)
        return 2;
    if (!raise_fd_limit()) {
        fprintf(stderr, "vx-load: --conns %d does not fit the open-file limit\n", opt.conns);
        return 2;
    }
    if (!build_requests()) {
        fprintf(stderr, "vx-load: --path or --header too long\n");
        free_requests();
        return 2;
    }
    app_on_stop_signals(on_signal);
    signal(SIGPIPE, SIG_IGN);
    int rc = run();
    free_requests();
    return rc;
}
