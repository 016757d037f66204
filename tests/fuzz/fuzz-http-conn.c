/* libFuzzer target: the whole HTTP connection state machine (server.c,
 * response.c, request.c, date.c) from bytes, over the fake-conn.h test
 * double instead of sockets, with routes like vx-http's: plain, buffered
 * POST, a streamed body, a response given later from a timer, chunked and
 * large (drain-paced) responses, HEAD, 204, 404/405, max_body, timeouts.
 *
 * Input: [flags][seed][bytes]. The bytes are sent in one read, in reads of
 * fuzzer-chosen sizes with a small send budget per turn, and (when short)
 * byte by byte; then the peer may send FIN (flags), the server may be shut
 * down, and the clock jumps past the header and idle timeouts. Checks: no
 * crash or leak (ASan); the output is the same for every split (Date
 * aside); it parses back as HTTP/1.1 responses with exact Content-Length or
 * chunked framing, none after "Connection: close", no body for HEAD, 204 or
 * 100; there are no more final responses than requests our parser finds in
 * the input, as many when nothing closed the connection early, a refused
 * head gets the parser's status; nothing is written once the server closed. */
#define FUZZ_NAME "fuzz-http-conn"
#include "fuzz.h"
#include "fake-conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { F_EOF = 1, F_SHUTDOWN = 2, F_BUDGET = 4 };

#define MAX_BODY 1000
#define HEADER_TIMEOUT 1000
#define LATER_MS 5
#define MAX_REQS 1024

/* ---------------------------------------------------------------- routes */

/* Per run: what the routes keep between calls. */
typedef struct app {
    fake_peer *peer;
    vx_timer *later;      /* the answer of /async, pending */
    vx_http_req *waiting; /* its request */
    bool async_aborted;   /* its abort callback ran */
    char later_body[80];
    size_t later_len;
    uint64_t streamed; /* body callback bytes of the current /upload */
    uint64_t big_left; /* /big bytes still to write */
    unsigned long sink;
} app;

#define PLAIN "Content-Type: text/plain\r\n"

static void h_plain(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, PLAIN, "Hello, World!", 13);
}

static long long query_num(vx_http_req *r, const char *key) {
    char b[24];
    ssize_t n = vx_http_req_query_get(r, key, b, sizeof b);
    return n > 0 ? strtoll(b, NULL, 10) % 1000000 : 0;
}

/* a + b (+ the body's number for POST): the query and the buffered body. */
static void h_baseline(vx_http_req *r, void *d) {
    (void)d;
    size_t bl;
    const char *body = vx_http_req_body(r, &bl);
    char num[24] = {0};
    memcpy(num, body, bl < sizeof num - 1 ? bl : sizeof num - 1);
    long long sum = query_num(r, "a") + query_num(r, "b") + strtoll(num, NULL, 10) % 1000000;
    char o[32];
    int n = snprintf(o, sizeof o, "%lld", sum);
    vx_http_respond(r, 200, PLAIN, o, (size_t)n);
}

static void h_count(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *p = vx_http_req_param(r, "count", &n);
    int count = (int)(n ? strtol(p, NULL, 10) % 40 : 0);
    char o[200];
    size_t len = 0;
    o[len++] = '[';
    for (int i = 0; i < count && count > 0; i++)
        len += (size_t)snprintf(o + len, sizeof o - len, "%s%d", i ? "," : "", i % 10);
    o[len++] = ']';
    vx_http_respond(r, 200, "Content-Type: application/json\r\n", o, len);
}

static void h_echo(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *b = vx_http_req_body(r, &n);
    vx_http_respond(r, 200, NULL, b, n);
}

/* The views stay valid during body callbacks: read the path and a header. */
static void b_upload(vx_http_req *r, const char *p, size_t n, void *d) {
    app *a = d;
    if (!vx_http_req_data(r)) { /* a new request */
        vx_http_req_set_data(r, a);
        a->streamed = 0;
    }
    a->streamed += n;
    FUZZ_ASSERT(a->streamed == vx_http_req_body_received(r));
    size_t len;
    const char *path = vx_http_req_path(r, &len);
    for (size_t i = 0; i < len; i++)
        a->sink += (unsigned char)path[i];
    const char *host = vx_http_req_header(r, "host", &len);
    for (size_t i = 0; host && i < len; i++)
        a->sink += (unsigned char)host[i];
    for (size_t i = 0; i < n; i++)
        a->sink += (unsigned char)p[i];
}

static void h_upload(vx_http_req *r, void *d) {
    app *a = d;
    uint64_t got = vx_http_req_body_received(r);
    FUZZ_ASSERT(got == (vx_http_req_data(r) ? a->streamed : 0));
    size_t len;
    const char *path = vx_http_req_path(r, &len); /* the views, again at the end */
    char o[64];
    int n = snprintf(o, sizeof o, "%llu %.*s", (unsigned long long)got, (int)(len % 32), path);
    vx_http_respond(r, 200, PLAIN, o, (size_t)n);
}

/* Also after the connection closed: the request lives until its response
 * ends, and the answer then fails with -EPIPE (and frees it). */
static void later(vx_timer *t, void *d) {
    app *a = d;
    vx_timer_free(t);
    a->later = NULL;
    FUZZ_ASSERT(a->async_aborted == a->peer->closed); /* told of the close, once */
    int rc = vx_http_respond(a->waiting, 200, PLAIN, a->later_body, a->later_len);
    FUZZ_ASSERT(!a->peer->closed || rc == -EPIPE);
    a->waiting = NULL;
}

static void async_abort(vx_http_req *r, void *d) {
    app *a = d;
    FUZZ_ASSERT(r == a->waiting && !a->async_aborted && !vx_http_req_conn(r));
    a->async_aborted = true;
}

/* Answers LATER_MS later, from a copy of what it needs (the views die). */
static void h_async(vx_http_req *r, void *d) {
    app *a = d;
    size_t n;
    const char *q = vx_http_req_query(r, &n);
    a->later_len = (size_t)snprintf(a->later_body, sizeof a->later_body, "later %.*s",
                                    (int)(n < 64 ? n : 64), q);
    a->waiting = r;
    a->async_aborted = false;
    vx_http_on_abort(r, async_abort, a);
    FUZZ_ASSERT(vx_timer_new(vx_conn_loop(vx_http_req_conn(r)), later, a, &a->later) == 0);
    vx_timer_start(a->later, LATER_MS, 0);
}

static void h_stream(vx_http_req *r, void *d) {
    (void)d;
    vx_http_begin(r, 200, PLAIN, -1); /* chunked; HTTP/1.0: until the close */
    vx_http_write(r, "abc", 3);
    vx_http_write(r, "defgh", 5);
    vx_http_end(r);
}

static void big_pump(vx_http_req *r, void *d) {
    static const char kib[1024] = {'x'};
    app *a = d;
    while (a->big_left && !vx_http_congested(r)) {
        size_t n = a->big_left < sizeof kib ? (size_t)a->big_left : sizeof kib;
        if (vx_http_write(r, kib, n) < 0)
            return;
        a->big_left -= n;
    }
    if (a->big_left == 0)
        vx_http_end(r);
}

static void big_drain(vx_http_req *r, void *d) {
    app *a = d;
    if (a->big_left)
        big_pump(r, d);
}

/* n KiB (n <= 400: past the 256 KiB mark), paced by the drain callback. */
static void h_big(vx_http_req *r, void *d) {
    app *a = d;
    a->big_left = (uint64_t)(llabs(query_num(r, "n")) % 401) * 1024; /* n=-300 too */
    if (vx_http_begin(r, 200, NULL, (int64_t)a->big_left) < 0)
        return;
    vx_http_on_drain(r, big_drain, a);
    big_pump(r, a);
}

static void h_any(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *m = vx_http_req_method(r, &n);
    vx_http_respond(r, 200, PLAIN, m, n);
}

static void h_nocontent(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 204, NULL, "dropped", 7);
}

static void h_item(vx_http_req *r, void *d) {
    (void)d;
    size_t n;
    const char *id = vx_http_req_param(r, "id", &n);
    vx_http_respond(r, 200, PLAIN, id, n);
}

static vx_http *make_server(app *a) {
    vx_http *h;
    vx_http_opts o = {.max_body = MAX_BODY, .header_timeout_ms = HEADER_TIMEOUT};
    FUZZ_ASSERT(vx_http_new(&h, &o) == 0);
    int rc = vx_http_route(h, "GET", "/plaintext", 0, h_plain, NULL, a);
    rc |= vx_http_route(h, "GET,POST", "/baseline11", 0, h_baseline, NULL, a);
    rc |= vx_http_route(h, "GET", "/json/{count}", 0, h_count, NULL, a);
    rc |= vx_http_route(h, "POST,PUT", "/echo", 0, h_echo, NULL, a);
    rc |= vx_http_route(h, "POST", "/upload", VX_HTTP_STREAM_BODY, h_upload, b_upload, a);
    rc |= vx_http_route(h, "GET", "/async", 0, h_async, NULL, a);
    rc |= vx_http_route(h, "GET", "/stream", 0, h_stream, NULL, a);
    rc |= vx_http_route(h, "GET", "/big", 0, h_big, NULL, a);
    rc |= vx_http_route(h, "*", "/any/", VX_HTTP_PREFIX, h_any, NULL, a);
    rc |= vx_http_route(h, "GET", "/nocontent", 0, h_nocontent, NULL, a);
    rc |= vx_http_route(h, "PUT,DELETE", "/item/{id}", 0, h_item, NULL, a);
    FUZZ_ASSERT(rc == 0);
    return h;
}

/* ------------------------------------------------------------ one run */

typedef struct outcome {
    uint8_t *out;
    size_t len;
    bool aborted;
} outcome;

/* Turns until nothing moves; the clock runs only while /async waits, which
 * every split reaches at the same point, so it cannot change the output. */
static void drive(vx_loop *loop, app *a) {
    for (long i = 0; i < 2000000; i++) {
        if (fake_loop_turn(loop))
            continue;
        if (!a->later)
            return;
        fake_loop_advance(loop, LATER_MS);
    }
    FUZZ_FAIL("the connection never settles");
}

static void quiet(int level, const char *msg, void *ud) { (void)level, (void)msg, (void)ud; }

static void run(const uint8_t *in, size_t n, unsigned flags, const size_t *pieces, size_t np,
                size_t budget, outcome *o) {
    vx_loop *loop = fake_loop_new();
    fake_peer peer = {.in = in, .in_len = n, .pieces = pieces, .npieces = np};
    peer.eof = flags & F_EOF;
    peer.budget = budget;
    app a = {.peer = &peer};
    vx_http *h = make_server(&a);
    FUZZ_ASSERT(vx_http_attach(h, fake_conn_new(loop, &peer)) == 0);
    drive(loop, &a);
    fake_loop_advance(loop, HEADER_TIMEOUT + 100); /* a partial head gets 408 */
    drive(loop, &a);
    if (flags & F_SHUTDOWN) {
        vx_http_shutdown(h);
        fake_loop_advance(loop, 300);
        drive(loop, &a);
    }
    fake_loop_advance(loop, 61000); /* the idle timeout */
    drive(loop, &a);
    bool aborted = peer.aborted; /* by the server, not by the teardown */
    if (peer.c) {                /* teardown, as vx_loop_free closes what is left */
        vx_conn_abort(peer.c, false);
        fake_loop_turn(loop);
    }
    FUZZ_ASSERT(peer.closed && !a.later);
    FUZZ_ASSERT(peer.late_writes == 0); /* nothing written once the server closed */
    vx_http_free(h);
    fake_loop_free(loop);
    o->out = peer.out;
    o->len = peer.out_len;
    o->aborted = aborted;
    if (getenv("VX_FUZZ_CONN_DUMP")) /* to see what a failing input did */
        fprintf(stderr, "--- %s read, %zu output bytes%s:\n%.*s\n", pieces ? "split" : "one",
                o->len, o->aborted ? " (aborted)" : "", (int)o->len, (const char *)o->out);
}

/* A copy of x's output with every Date value blanked. */
static uint8_t *undated(const outcome *x) {
    uint8_t *u = malloc(x->len + 1);
    FUZZ_ASSERT(u);
    memcpy(u, x->out, x->len);
    for (size_t i = 0; i + 8 + 29 <= x->len; i++)
        if (!memcmp(u + i, "\r\nDate: ", 8))
            memset(u + i + 8, '-', 29);
    return u;
}

/* The outputs of two runs, Date values aside (the clock is real). */
static void same_output(const outcome *x, const outcome *y) {
    size_t n = x->len < y->len ? x->len : y->len;
    if (x->len != y->len)
        FUZZ_FAIL("%zu output bytes for one split, %zu for another", x->len, y->len);
    FUZZ_ASSERT(x->aborted == y->aborted);
    if (n == 0 || !memcmp(x->out, y->out, n))
        return;
    uint8_t *a = undated(x), *b = undated(y);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            FUZZ_FAIL("outputs differ at byte %zu", i);
    free(a);
    free(b);
}

/* --------------------------------------------- the requests in the input */

enum { E_NONE, E_PARSE, E_PARTIAL, E_BODY, E_BODY_PART, E_CLOSE, E_MANY };

/* What our parser finds in the input, as the server should see it. */
typedef struct oracle {
    int nheads, end, status;
    bool head[MAX_REQS], expect[MAX_REQS], keep[MAX_REQS];
} oracle;

/* Body framing of request q at p[0..n): bytes it takes, or -1 (error) / -2 (more). */
static ssize_t body_len(const vx_http_request *q, const uint8_t *p, size_t n) {
    if (!q->chunked) {
        int64_t cl = q->content_length > 0 ? q->content_length : 0;
        return (uint64_t)cl <= n ? (ssize_t)cl : -2;
    }
    char *copy = malloc(n ? n : 1);
    FUZZ_ASSERT(copy);
    memcpy(copy, p, n);
    vx_http_chunked d = {0};
    size_t out;
    bool done;
    const char *why;
    ssize_t c = vx_http_chunked_decode(&d, copy, n, &out, &done, &why);
    free(copy);
    return c < 0 ? -1 : done ? c : -2;
}

static void walk(const uint8_t *in, size_t n, oracle *o) {
    static vx_http_request q;
    size_t off = 0;
    o->nheads = 0;
    o->end = E_NONE;
    for (;;) {
        if (o->nheads == MAX_REQS) {
            o->end = E_MANY;
            return;
        }
        const char *why;
        ssize_t rc = vx_http_parse_request((const char *)in + off, n - off, &q, &o->status, &why);
        if (rc == VX_HTTP_INCOMPLETE) {
            o->end = off < n ? E_PARTIAL : E_NONE;
            return;
        }
        if (rc == VX_HTTP_ERROR) {
            o->end = E_PARSE;
            return;
        }
        int k = o->nheads++;
        o->head[k] = q.method == VX_HTTP_HEAD;
        o->keep[k] = q.keep_alive;
        o->expect[k] = q.expect_continue && (q.chunked || q.content_length > 0);
        ssize_t b = body_len(&q, in + off + rc, n - off - (size_t)rc);
        if (b < 0) {
            o->end = b == -1 ? E_BODY : E_BODY_PART;
            return;
        }
        off += (size_t)rc + (size_t)b;
        if (!q.keep_alive) {
            o->end = E_CLOSE;
            return;
        }
    }
}

/* ------------------------------------------------- parsing the output */

static bool tchar(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* One response head's facts. */
typedef struct resp {
    int status;
    int64_t cl; /* -1: none */
    bool chunked, close, date, server;
} resp;

static size_t line_end(const uint8_t *p, size_t n, size_t at) {
    for (size_t i = at; i + 1 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n')
            return i;
    FUZZ_FAIL("a response line without CRLF");
}

static bool header_is(const uint8_t *p, size_t n, const char *name) {
    return n == strlen(name) && !strncasecmp((const char *)p, name, n);
}

static void header_line(const uint8_t *p, size_t n, resp *r) {
    const uint8_t *colon = memchr(p, ':', n);
    FUZZ_ASSERT(colon && colon > p && colon + 1 < p + n && colon[1] == ' ');
    size_t nl = (size_t)(colon - p), vl = n - nl - 2;
    const uint8_t *v = colon + 2;
    for (size_t i = 0; i < nl; i++)
        FUZZ_ASSERT(tchar(p[i]));
    if (header_is(p, nl, "content-length")) {
        FUZZ_ASSERT(r->cl < 0 && vl > 0 && vl < 20);
        r->cl = 0;
        for (size_t i = 0; i < vl; i++) {
            FUZZ_ASSERT(v[i] >= '0' && v[i] <= '9');
            r->cl = r->cl * 10 + (v[i] - '0');
        }
    } else if (header_is(p, nl, "transfer-encoding")) {
        FUZZ_ASSERT(!r->chunked && vl == 7 && !memcmp(v, "chunked", 7));
        r->chunked = true;
    } else if (header_is(p, nl, "connection")) {
        r->close |= vl == 5 && !memcmp(v, "close", 5);
    }
    r->date |= header_is(p, nl, "date");
    r->server |= header_is(p, nl, "server");
}

/* The head at p[*pos]: "HTTP/1.1 DDD Reason" and field lines. */
static void parse_head(const uint8_t *p, size_t n, size_t *pos, resp *r) {
    size_t e = line_end(p, n, *pos), s = *pos;
    FUZZ_ASSERT(e - s > 13 && !memcmp(p + s, "HTTP/1.1 ", 9) && p[s + 12] == ' ');
    r->status = 0;
    for (int i = 9; i < 12; i++) {
        FUZZ_ASSERT(p[s + i] >= '0' && p[s + i] <= '9');
        r->status = r->status * 10 + p[s + i] - '0';
    }
    FUZZ_ASSERT(r->status >= 100 && r->status <= 599);
    r->cl = -1;
    r->chunked = r->close = r->date = r->server = false;
    for (*pos = e + 2; (e = line_end(p, n, *pos)) != *pos; *pos = e + 2)
        header_line(p + *pos, e - *pos, r);
    *pos += 2;
    FUZZ_ASSERT((r->status == 100 || (r->date && r->server)) && !(r->chunked && r->cl >= 0));
}

/* A chunked body at p[*pos]; false when the output ends inside it. */
static bool skip_chunked(const uint8_t *p, size_t n, size_t *pos) {
    for (;;) {
        size_t size = 0, i = *pos;
        for (; i < n && p[i] != '\r'; i++) {
            int c = p[i];
            FUZZ_ASSERT((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
            size = size * 16 + (size_t)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        if (i + 2 + size + 2 > n)
            return false;
        FUZZ_ASSERT(i > *pos && p[i + 1] == '\n');
        i += 2 + size;
        FUZZ_ASSERT(p[i] == '\r' && p[i + 1] == '\n');
        *pos = i + 2;
        if (size == 0)
            return true; /* the server sends no trailers */
    }
}

/* Checks the status of final response k against the requests. */
static void check_status(int k, int status, const oracle *o) {
    if (k < o->nheads) {
        bool body_error = status == 400 && k == o->nheads - 1 && o->end == E_BODY;
        FUZZ_ASSERT(status == 200 || status == 204 || status == 404 || status == 405 ||
                    status == 413 || body_error);
    } else if (o->end == E_PARSE) {
        FUZZ_ASSERT(status == o->status);
    } else {
        FUZZ_ASSERT(o->end == E_PARTIAL && status == 408);
    }
}

/* Parse every response back; returns the number of final ones. */
static int check_output(const outcome *x, const oracle *o, bool *closed_early) {
    const uint8_t *p = x->out;
    size_t n = x->len, pos = 0;
    int k = 0, continues = 0;
    *closed_early = false;
    while (pos < n) {
        resp r;
        parse_head(p, n, &pos, &r);
        if (r.status == 100) { /* before a final response, only when asked */
            FUZZ_ASSERT(k < o->nheads && o->expect[k] && continues++ == 0);
            FUZZ_ASSERT(r.cl < 0 && !r.chunked && !r.close);
            continue;
        }
        FUZZ_ASSERT(k <= o->nheads); /* responses <= requests (+1 refused or timed out) */
        check_status(k, r.status, o);
        bool bodyless = r.status == 204 || r.status == 304 || (k < o->nheads && o->head[k]);
        bool whole = true;
        if (bodyless) { /* HEAD: the GET's framing headers, no body */
            FUZZ_ASSERT(r.status != 204 || (r.cl < 0 && !r.chunked));
        } else if (r.chunked) {
            whole = skip_chunked(p, n, &pos);
        } else if (r.cl >= 0) {
            whole = (uint64_t)r.cl <= n - pos;
            pos = whole ? pos + (size_t)r.cl : n;
        } else {
            FUZZ_ASSERT(r.close); /* delimited by the close */
            pos = n;
        }
        FUZZ_ASSERT(whole || (x->aborted && pos == n)); /* only an abort cuts one short */
        FUZZ_ASSERT(!r.close || pos == n);              /* nothing after "Connection: close" */
        FUZZ_ASSERT(!(k < o->nheads && !o->keep[k]) || r.close);
        if (r.close && k < o->nheads && o->keep[k]) { /* the server ends it: why */
            FUZZ_ASSERT(r.status == 413 || (r.status == 400 && o->end == E_BODY) ||
                        (r.cl < 0 && !r.chunked && !bodyless) || (bodyless && o->head[k]));
            *closed_early = true;
        }
        *closed_early |= r.status == 413; /* refused before its body came */
        k++;
        continues = 0;
    }
    return k;
}

/* Final responses expected when nothing cut the conversation short. */
static int expected(const oracle *o) {
    switch (o->end) {
    case E_PARSE:
    case E_PARTIAL:
        return o->nheads + 1;
    case E_BODY_PART:
        return o->nheads - 1;
    default:
        return o->nheads;
    }
}

/* ------------------------------------------------------------------ main */

static size_t piece_sizes(uint8_t seed, size_t *out, size_t max) {
    uint32_t x = seed * 2654435761u + 1;
    size_t cap = 1 + (size_t)(seed & 0x3f) * 4;
    for (size_t i = 0; i < max; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        out[i] = 1 + x % cap;
    }
    return max;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool once;
    if (!once) {
        once = true;
        vx_log_set(quiet, NULL, VX_LOG_ERROR); /* refused requests log at INFO */
    }
    if (size < 2)
        return 0;
    unsigned flags = data[0];
    const uint8_t *in = data + 2;
    size_t n = size - 2, pieces[64], one = 1;
    size_t np = piece_sizes(data[1], pieces, 64);
    size_t budget = flags & F_BUDGET ? 512 + (size_t)data[1] * 61 : 0;

    outcome whole, split, bytes = {0};
    bool fin = flags & F_EOF;
    run(in, n, flags, NULL, 0, 0, &whole);
    run(in, n, flags, pieces, np, budget, &split);
    same_output(&whole, &split);
    if (n <= 512) {
        run(in, n, flags, &one, 1, 0, &bytes);
        same_output(&whole, &bytes);
    }

    static oracle o;
    walk(in, n, &o);
    bool early;
    if (fin) {
        check_output(&split, &o, &early);
        check_output(&bytes, &o, &early);
    }
    int k = check_output(&whole, &o, &early);
    if (!(flags & (F_EOF | F_SHUTDOWN)) && !early && o.end != E_MANY && !whole.aborted &&
        k != expected(&o))
        FUZZ_FAIL("%d final responses to %d requests (end %d)", k, o.nheads, o.end);
    free(whole.out);
    free(split.out);
    free(bytes.out);
    return 0;
}
