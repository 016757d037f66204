/* vx-http: the TechEmpower and HttpArena endpoints on the vortex HTTP server,
 * on any backend and server model.
 *   vx-http [--host H] [--port P] [--backend NAME] [--model MODEL]
 *           [--root DIR] [--dataset FILE] [--max-body BYTES]
 *           [--header-timeout MS] [--idle-timeout MS] [--async-file-min BYTES|off]
 * Endpoints: GET /plaintext, GET /json, GET|POST /baseline11?a=&b=,
 * GET /pipeline, GET /json/{count}?m=M (gzip with Accept-Encoding: gzip),
 * GET /delay/{ms}, POST /upload, GET /static/NAME, GET /metrics.
 * Prints "listening HOST:PORT backend=NAME model=MODEL"; SIGINT/SIGTERM stop
 * it gracefully (in-flight requests finish, idle keep-alive conns close). */
#include "common.h"
#include "dataset.h"
#include "decimal.h"
#include "vortex.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static struct {
    const char *host, *root, *dataset;
    int port;
    vx_backend backend;
    vx_model model;
    size_t max_body;
    uint64_t header_timeout_ms, idle_timeout_ms; /* the blocking baselines use them too */
    uint64_t async_file_min;                     /* 0: the library's default */
} opt = {.host = "127.0.0.1",
         .port = 8080,
         .model = {VX_MODEL_SINGLE, 1},
         .header_timeout_ms = 10000,
         .idle_timeout_ms = 60000};
static int root_fd = -1; /* --root, opened once: files are opened beneath it */

static vx_server *server;
static vx_http *http;

/* ------------------------------------------------------------ out buffer */

/* One growable buffer per thread: no allocation per request once grown. */
typedef struct obuf {
    char *p;
    size_t len, cap;
} obuf;

static _Thread_local obuf out, zout;

static _Thread_local z_stream z;
static _Thread_local bool z_init;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

/* A loop thread ends: free its buffers and deflate state. */
static void tls_free(void *arg) {
    (void)arg;
    if (z_init)
        deflateEnd(&z);
    z_init = false;
    free(out.p);
    free(zout.p);
    out = zout = (obuf){0};
}

static void tls_key_make(void) { pthread_key_create(&tls_key, tls_free); }

static void ob_reserve(obuf *b, size_t extra) {
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 16384;
    if (!b->cap) {
        pthread_once(&tls_once, tls_key_make);
        pthread_setspecific(tls_key, b);
    }
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        fprintf(stderr, "vx-http: out of memory\n");
        exit(1);
    }
    b->p = p;
    b->cap = cap;
}

static void ob_put(obuf *b, const char *s, size_t n) {
    ob_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* ---------------------------------------------------- the dataset (JSON) */

static dataset ds; /* read-only once serving */

/* ------------------------------------------------------------- handlers */

#define PLAIN "Content-Type: text/plain\r\n"
#define JSON "Content-Type: application/json\r\n"

static void h_plaintext(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, PLAIN, "Hello, World!", 13);
}

/* s as a JSON string (RFC 8259: quote, backslash and controls escaped) at
 * p, which has room for 2 + 6 * strlen(s) bytes; returns the end. */
static char *json_string(char *p, const char *s) {
    *p++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            p += sprintf(p, "\\u%04x", c);
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    return p;
}

/* TechEmpower's {"message":"Hello, World!"}, serialized per request (no
 * cached bytes) into b, which holds JSON_HELLO_MAX; by json_string rather
 * than snprintf, which cost more than parsing the request. */
#define HELLO "Hello, World!"
#define JSON_HELLO_MAX (16 + 6 * sizeof HELLO)
static size_t json_hello(char *b) {
    char *p = b;
    memcpy(p, "{\"message\":", 11);
    p = json_string(p + 11, HELLO);
    *p++ = '}';
    return (size_t)(p - b);
}

static void h_json(vx_http_req *r, void *d) {
    (void)d;
    char b[JSON_HELLO_MAX];
    vx_http_respond(r, 200, JSON, b, json_hello(b));
}

static void h_pipeline(vx_http_req *r, void *d) {
    (void)d;
    vx_http_respond(r, 200, PLAIN, "ok", 2);
}

/* A refused request, logged with its reason (up to a newline) like the
 * library's own refusals: at most ten lines a second per process, so that
 * one bad client cannot flood the log. The handlers' 400s and the blocking
 * baselines' refusals. */
static void refused(int status, const char *why) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static time_t window;
    static unsigned count;
    time_t now = time(NULL);
    pthread_mutex_lock(&mu);
    if (now != window) {
        if (count > 10)
            fprintf(stderr, "vx-http: %u more refused requests not logged\n", count - 10);
        window = now;
        count = 0;
    }
    bool say = ++count <= 10;
    pthread_mutex_unlock(&mu);
    if (say)
        fprintf(stderr, "vx-http: %d, %.*s\n", status, why ? (int)strcspn(why, "\n") : 11,
                why ? why : "bad request");
}

static void bad(vx_http_req *r, const char *why) {
    refused(400, why);
    vx_http_respond(r, 400, PLAIN, why, strlen(why));
}

static bool parse_i64(const char *s, size_t n, long long *v) {
    char t[32], *end;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (!n || n >= sizeof t)
        return false;
    memcpy(t, s, n);
    t[n] = 0;
    errno = 0;
    *v = strtoll(t, &end, 10);
    return !*end && !errno;
}

static bool query_i64(vx_http_req *r, const char *key, long long *v, long long dflt) {
    char b[32];
    ssize_t n = vx_http_req_query_get(r, key, b, sizeof b);
    if (n == -ENOENT) {
        *v = dflt;
        return true;
    }
    return n >= 0 && parse_i64(b, (size_t)n, v);
}

static void h_baseline(vx_http_req *r, void *d) {
    (void)d;
    long long a, b, c = 0;
    if (!query_i64(r, "a", &a, 0) || !query_i64(r, "b", &b, 0))
        return bad(r, "bad a or b\n");
    size_t bl;
    const char *body = vx_http_req_body(r, &bl);
    if (vx_http_req_method(r, NULL)[0] == 'P' && !parse_i64(body, bl, &c))
        return bad(r, "bad body\n");
    long long sum;
    if (__builtin_add_overflow(a, b, &sum) || __builtin_add_overflow(sum, c, &sum))
        return bad(r, "sum out of range\n"); /* a signed overflow would be undefined */
    char o[32];
    vx_http_respond(r, 200, PLAIN, o, (size_t)(dec_i64(o, sum) - o));
}

static bool accepts_gzip(vx_http_req *r) {
    size_t n;
    const char *v = vx_http_req_header(r, "Accept-Encoding", &n);
    return v && vx_http_accepts_coding(v, n, "gzip");
}

/* Level 2: on /json/N answers it costs what level 1 does (deflate's
 * instructions within 1 %) and gives 5-7 % less (/json/50: 2154 bytes
 * against 2287); 4 and up cost 1.5-2x the time for 12-18 % less. */
static int gzip_out(const char *p, size_t n) {
    if (!z_init) {
        if (deflateInit2(&z, 2, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -1;
        z_init = true;
        pthread_once(&tls_once, tls_key_make);
        pthread_setspecific(tls_key, &z);
    } else {
        deflateReset(&z);
    }
    zout.len = 0;
    ob_reserve(&zout, deflateBound(&z, n));
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)zout.p;
    z.avail_out = (uInt)zout.cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        return -1;
    zout.len = zout.cap - z.avail_out;
    return 0;
}

static void h_json_count(vx_http_req *r, void *d) {
    (void)d;
    size_t cl;
    const char *cs = vx_http_req_param(r, "count", &cl);
    long long count, m;
    if (!parse_i64(cs, cl, &count) || count < 0 || !query_i64(r, "m", &m, 1))
        return bad(r, "bad count or m\n");
    if (count > ds.n)
        count = ds.n;
    out.len = 0;
    ob_put(&out, "{\"items\":[", 10);
    for (int i = 0; i < count; i++) {
        if (i)
            ob_put(&out, ",", 1);
        ob_put(&out, ds.items[i].json, ds.items[i].len);
        char t[48];
        memcpy(t, ",\"total\":", 9);
        double total = ds.items[i].price * ds.items[i].quantity * (double)m;
        char *e = dec_shortest(t + 9, total);
        if (!e) { /* inf or nan (a --dataset with huge prices): JSON has neither */
            memcpy(t + 9, "null", 4);
            e = t + 13;
        }
        *e++ = '}';
        ob_put(&out, t, (size_t)(e - t));
    }
    char t[32];
    memcpy(t, "],\"count\":", 10);
    char *e = dec_i64(t + 10, count);
    *e++ = '}';
    ob_put(&out, t, (size_t)(e - t));
    if (accepts_gzip(r) && gzip_out(out.p, out.len) == 0)
        vx_http_respond(r, 200, JSON "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n", zout.p,
                        zout.len);
    else
        vx_http_respond(r, 200, JSON "Vary: Accept-Encoding\r\n", out.p, out.len);
}

/* GET /delay/{ms} (HttpArena's async profile): ms, as text/plain, ms
 * milliseconds later. The handler returns without answering; a one-shot
 * timer on the request's loop answers. Each waiting request owns its timer,
 * and a client that leaves first frees it (the abort callback), so 32000
 * held connections cost 32000 timers and nothing else. */
#define DELAY_MAX_MS 60000
#define DELAY_BAD "delay: 0 to 60000 ms\n"

typedef struct delay {
    vx_http_req *r;
    vx_timer *t;
    long long ms;
} delay;

static void delay_free(delay *d) {
    vx_timer_free(d->t);
    free(d);
}

static void delay_fire(vx_timer *t, void *data) {
    (void)t;
    delay *d = data;
    char b[24];
    vx_http_respond(d->r, 200, PLAIN, b, (size_t)(dec_i64(b, d->ms) - b));
    delay_free(d);
}

static void delay_abort(vx_http_req *r, void *data) {
    (void)r;
    delay_free(data);
}

/* ms in [0, DELAY_MAX_MS] from s..n: digits only, as the path gives them. */
static bool parse_delay(const char *s, size_t n, long long *ms) {
    long long v = 0;
    if (!n || n > 6)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ms = v;
    return v <= DELAY_MAX_MS;
}

static void h_delay(vx_http_req *r, void *unused) {
    (void)unused;
    size_t n;
    const char *s = vx_http_req_param(r, "ms", &n);
    long long ms;
    if (!parse_delay(s, n, &ms))
        return bad(r, DELAY_BAD);
    delay *d = malloc(sizeof *d);
    vx_conn *c = vx_http_req_conn(r);
    if (!d || vx_timer_new(vx_conn_loop(c), delay_fire, d, &d->t) < 0) {
        free(d);
        return (void)vx_http_respond(r, 503, PLAIN, "out of memory\n", 14);
    }
    d->r = r;
    d->ms = ms;
    vx_http_on_abort(r, delay_abort, d);
    /* The loop's clock is whole milliseconds read once a turn, so a timer
     * for ms can fire up to 1 ms (plus the turn so far) early; from a fresh
     * reading, ms + 1 never answers before ms have passed. */
    vx_loop_update_time(vx_conn_loop(c));
    vx_timer_start(d->t, ms ? (uint64_t)ms + 1 : 0, 0);
}

static void b_upload(vx_http_req *r, const char *p, size_t n, void *d) {
    (void)r, (void)p, (void)n, (void)d; /* counted by the server; nothing kept */
}

static void h_upload(vx_http_req *r, void *d) {
    (void)d;
    char o[32];
    vx_http_respond(r, 200, PLAIN, o, (size_t)(dec_u64(o, vx_http_req_body_received(r)) - o));
}

static void h_static(vx_http_req *r, void *d) {
    (void)d;
    if (root_fd < 0)
        return (void)vx_http_respond(r, 404, PLAIN, "no --root\n", 10);
    size_t n;
    const char *p = vx_http_req_path(r, &n);
    char name[1024];
    n -= 8; /* "/static/" */
    if (n >= sizeof name)
        return (void)vx_http_respond(r, 404, PLAIN, "404 Not Found\n", 14);
    ssize_t o = vx_http_url_decode(name, p + 8, n, false); /* '+' stays: it is a path */
    if (o < 0 || memchr(name, 0, (size_t)o))
        return bad(r, "bad escape\n");
    name[o] = 0;
    vx_http_static(r, root_fd, name);
}

/* One loop counter: its family name, type, help text and value. */
typedef struct loop_metric {
    const char *name, *type, *help;
    uint64_t (*get)(const vx_stats *s);
} loop_metric;

static uint64_t m_wakeups(const vx_stats *s) { return s->wakeups; }
static uint64_t m_events(const vx_stats *s) { return s->events; }
static uint64_t m_accepts(const vx_stats *s) { return s->accepts; }
static uint64_t m_conns(const vx_stats *s) { return s->conns_live; }
static uint64_t m_bytes_in(const vx_stats *s) { return s->bytes_in; }
static uint64_t m_bytes_out(const vx_stats *s) { return s->bytes_out; }
static uint64_t m_file_reads(const vx_stats *s) { return s->file_reads; }
static uint64_t m_file_bytes(const vx_stats *s) { return s->file_bytes; }

static const loop_metric loop_metrics[] = {
    {"vx_loop_wakeups_total", "counter", "Returns from the poller's wait.", m_wakeups},
    {"vx_loop_events_total", "counter", "Events and completions dispatched.", m_events},
    {"vx_loop_accepts_total", "counter", "Connections accepted.", m_accepts},
    {"vx_loop_conns", "gauge", "Connections open.", m_conns},
    {"vx_loop_bytes_in_total", "counter", "Bytes read from sockets.", m_bytes_in},
    {"vx_loop_bytes_out_total", "counter", "Bytes written to sockets.", m_bytes_out},
    {"vx_loop_file_reads_total", "counter", "File reads done off the loop's thread.", m_file_reads},
    {"vx_loop_file_bytes_total", "counter", "Bytes those file reads brought.", m_file_bytes},
};

#define METRICS_MAX_LOOPS 256

/* Prometheus text format 0.0.4: every family once, HELP and TYPE first,
 * its samples together (so one family's lines never interleave with
 * another's, which strict parsers refuse). */
static void h_metrics(vx_http_req *r, void *d) {
    (void)d;
    static _Thread_local vx_stats st[METRICS_MAX_LOOPS];
    static _Thread_local vx_http_stats hs;
    int loops = vx_server_count(server), have = 0;
    if (loops > METRICS_MAX_LOOPS)
        loops = METRICS_MAX_LOOPS;
    int ids[METRICS_MAX_LOOPS];
    for (int i = 0; i < loops; i++)
        if (vx_server_stats(server, i, &st[have]) == 0)
            ids[have++] = i;
    if (!have && vx_http_req_conn(r)) { /* blocking models: no loops of the server's */
        vx_loop_stats(vx_conn_loop(vx_http_req_conn(r)), &st[0]);
        ids[have++] = 0;
    }
    out.len = 0;
    char line[256];
    int n;
#define EMIT(...) (n = snprintf(line, sizeof line, __VA_ARGS__), ob_put(&out, line, (size_t)n))
    for (size_t m = 0; m < sizeof loop_metrics / sizeof *loop_metrics; m++) {
        const loop_metric *lm = &loop_metrics[m];
        EMIT("# HELP %s %s\n# TYPE %s %s\n", lm->name, lm->help, lm->name, lm->type);
        for (int i = 0; i < have; i++)
            EMIT("%s{loop=\"%d\"} %llu\n", lm->name, ids[i], (unsigned long long)lm->get(&st[i]));
    }
    EMIT("# HELP vx_loop_syscalls_total System calls made, by kind.\n"
         "# TYPE vx_loop_syscalls_total counter\n");
    for (int i = 0; i < have; i++)
        for (int k = 0; k < VX_SYS__COUNT; k++)
            EMIT("vx_loop_syscalls_total{loop=\"%d\",kind=\"%s\"} %llu\n", ids[i],
                 vx_syscall_kind_name(k), (unsigned long long)st[i].syscalls[k]);
    vx_http_get_stats(http, &hs);
    EMIT("# HELP vx_http_connections HTTP connections open.\n"
         "# TYPE vx_http_connections gauge\nvx_http_connections %llu\n",
         (unsigned long long)hs.conns);
    EMIT("# HELP vx_http_requests_total Responses started, by status code.\n"
         "# TYPE vx_http_requests_total counter\n");
    for (int s = 100; s < 600; s++)
        if (hs.status[s])
            EMIT("vx_http_requests_total{code=\"%d\"} %llu\n", s, (unsigned long long)hs.status[s]);
    EMIT("# HELP vx_http_bytes_in_total Request bytes read (heads and bodies).\n"
         "# TYPE vx_http_bytes_in_total counter\nvx_http_bytes_in_total %llu\n",
         (unsigned long long)hs.bytes_in);
    EMIT("# HELP vx_http_bytes_out_total Response bytes queued (heads and bodies).\n"
         "# TYPE vx_http_bytes_out_total counter\nvx_http_bytes_out_total %llu\n",
         (unsigned long long)hs.bytes_out);
#undef EMIT
    vx_http_respond(r, 200, "Content-Type: text/plain; version=0.0.4\r\n", out.p, out.len);
}

/* ----------------------------------------------------------------- main */

static void on_signal(int signum) {
    (void)signum;
    vx_server_stop(server); /* async-signal-safe; calls on_stop */
}

/* vx_server_stop's hook, here and in every procs worker: idle keep-alive
 * connections close now, in-flight requests finish (async-signal-safe). */
static void on_stop(void *data) { vx_http_shutdown(data); }

static void usage(FILE *f) {
    fprintf(f, "usage: vx-http [--host H] [--port P] [--backend "
               "auto|select|poll|epoll|epoll-et|uring]\n"
               "               [--model "
               "single|reuseport:N|handoff:N|shared:N|procs:N|thread-per-conn|fork-per-conn]\n"
               "               [--root DIR] [--dataset FILE] [--max-body BYTES]\n"
               "               [--header-timeout MS] [--idle-timeout MS]\n"
               "               [--async-file-min BYTES|off]\n");
}

static void parse_args(int argc, char **argv) {
    /* one option per line */
    /* clang-format off */
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},
        {"port", 1, 0, 'p'},
        {"backend", 1, 0, 'b'},
        {"model", 1, 0, 'm'},
        {"root", 1, 0, 'r'},
        {"dataset", 1, 0, 'd'},
        {"max-body", 1, 0, 'x'},
        {"header-timeout", 1, 0, 'H'},
        {"idle-timeout", 1, 0, 'i'},
        {"async-file-min", 1, 0, 'a'},
        {"help", 0, 0, '?'},
        {0, 0, 0, 0},
    };
    /* clang-format on */
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = (int)app_num("vx-http", "--port", optarg, 0, 65535);
            break;
        case 'r':
            opt.root = optarg;
            break;
        case 'd':
            opt.dataset = optarg;
            break;
        case 'x':
            opt.max_body = (size_t)app_num("vx-http", "--max-body", optarg, 1, 1LL << 40);
            break;
        case 'H':
            opt.header_timeout_ms =
                (uint64_t)app_num("vx-http", "--header-timeout", optarg, 1, 86400000);
            break;
        case 'i':
            opt.idle_timeout_ms =
                (uint64_t)app_num("vx-http", "--idle-timeout", optarg, 1, 86400000);
            break;
        case 'a': /* static files this large are read off the loop's thread; off: sendfile */
            opt.async_file_min =
                strcmp(optarg, "off") == 0
                    ? UINT64_MAX
                    : (uint64_t)app_num("vx-http", "--async-file-min", optarg, 1, 1LL << 50);
            break;
        case 'm':
            opt.model = app_model("vx-http", optarg);
            break;
        case 'b':
            opt.backend = app_backend("vx-http", optarg);
            break;
        default:
            usage(stderr);
            exit(2);
        }
    }
}

static int routes(void) {
    int rc = 0;
    rc |= vx_http_route(http, "GET", "/plaintext", 0, h_plaintext, NULL, NULL);
    rc |= vx_http_route(http, "GET", "/json", 0, h_json, NULL, NULL);
    rc |= vx_http_route(http, "GET", "/pipeline", 0, h_pipeline, NULL, NULL);
    rc |= vx_http_route(http, "GET,POST", "/baseline11", 0, h_baseline, NULL, NULL);
    rc |= vx_http_route(http, "GET", "/json/{count}", 0, h_json_count, NULL, NULL);
    rc |= vx_http_route(http, "GET", "/delay/{ms}", 0, h_delay, NULL, NULL);
    rc |= vx_http_route(http, "POST", "/upload", VX_HTTP_STREAM_BODY, h_upload, b_upload, NULL);
    rc |= vx_http_route(http, "GET", "/static/", VX_HTTP_PREFIX, h_static, NULL, NULL);
    rc |= vx_http_route(http, "GET", "/metrics", 0, h_metrics, NULL, NULL);
    return rc;
}

/* ------------------------------------------------ the blocking baselines */

/* --model thread-per-conn|fork-per-conn, for comparison only: blocking reads
 * and writes on one connection, the same parser, every response produced
 * from one read sent with one write (in 64 KiB pieces). The timeouts and
 * refusal logs of the event models. The benchmark endpoints only (GET
 * /plaintext, /json, /pipeline, /baseline11), 404 for the rest; bodies up to
 * 8 KiB with Content-Length (chunked bodies: 501). */
#define BLK_IN 16384
#define BLK_OUT 65536
#define CLOSE_HDR "Connection: close\r\n"

static size_t blk_date(char *ob) {
    static __thread time_t sec = -1;
    static __thread char line[64];
    static __thread size_t n;
    time_t now = time(NULL);
    if (now != sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        n = strftime(line, sizeof line, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        sec = now;
    }
    memcpy(ob, line, n);
    return n;
}

static size_t blk_response(char *ob, int status, const char *ctype, const char *body, size_t len,
                           const char *conn_hdr) {
    const char *reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 408 ? "Request Timeout"
                         : status == 413 ? "Content Too Large"
                         : status == 414 ? "URI Too Long"
                         : status == 431 ? "Request Header Fields Too Large"
                         : status == 501 ? "Not Implemented"
                         : status == 505 ? "HTTP Version Not Supported"
                                         : "Bad Request";
    size_t n = (size_t)sprintf(ob, "HTTP/1.1 %d %s\r\nServer: vortex\r\n", status, reason);
    n += blk_date(ob + n);
    n += (size_t)sprintf(ob + n, "Content-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", ctype, len,
                         conn_hdr);
    memcpy(ob + n, body, len);
    return n + len;
}

static long blk_query_long(vx_http_slice q, const char *key) {
    vx_http_slice v;
    char b[32];
    if (!vx_http_query_get(q, key, &v) || v.n >= sizeof b)
        return 0;
    memcpy(b, v.p, v.n);
    b[v.n] = 0;
    return strtol(b, NULL, 10);
}

/* One request whose head is h bytes and body blen bytes at p: the response. */
static size_t blk_handle(const vx_http_request *req, const char *body, size_t blen, char *ob) {
    vx_http_slice path = req->path;
    char b[96];
    /* HTTP/1.0 keep-alive must be said; 1.1 implies it. */
    const char *ka = !req->keep_alive  ? CLOSE_HDR
                     : req->minor == 0 ? "Connection: keep-alive\r\n"
                                       : "";
    if (path.n == 10 && !memcmp(path.p, "/plaintext", 10))
        return blk_response(ob, 200, "text/plain", "Hello, World!", 13, ka);
    if (path.n == 5 && !memcmp(path.p, "/json", 5)) {
        char j[JSON_HELLO_MAX];
        return blk_response(ob, 200, "application/json", j, json_hello(j), ka);
    }
    if (path.n == 9 && !memcmp(path.p, "/pipeline", 9))
        return blk_response(ob, 200, "text/plain", "ok", 2, ka);
    if (path.n == 11 && !memcmp(path.p, "/baseline11", 11)) {
        long sum, c = 0;
        if (req->method == VX_HTTP_POST && blen && blen < 32) {
            memcpy(b, body, blen);
            b[blen] = 0;
            c = strtol(b, NULL, 10);
        }
        if (__builtin_add_overflow(blk_query_long(req->query, "a"), blk_query_long(req->query, "b"),
                                   &sum) ||
            __builtin_add_overflow(sum, c, &sum)) {
            refused(400, "sum out of range");
            return blk_response(ob, 400, "text/plain", "sum out of range\n", 17, ka);
        }
        int n = snprintf(b, sizeof b, "%ld", sum);
        return blk_response(ob, 200, "text/plain", b, (size_t)n, ka);
    }
    long long ms;
    if (path.n > 7 && !memcmp(path.p, "/delay/", 7)) { /* the thread (or process) sleeps */
        if (!parse_delay(path.p + 7, path.n - 7, &ms)) {
            refused(400, DELAY_BAD);
            return blk_response(ob, 400, "text/plain", DELAY_BAD, sizeof DELAY_BAD - 1, ka);
        }
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        char *e = dec_i64(b, ms);
        return blk_response(ob, 200, "text/plain", b, (size_t)(e - b), ka);
    }
    return blk_response(ob, 404, "text/plain", "", 0, ka);
}

/* The event models' timeouts, so that a slow or silent client cannot hold a
 * thread (or a process) for ever. SO_RCVTIMEO/SO_SNDTIMEO bound every read
 * and write by the idle timeout at no cost per call; while a partial head is
 * buffered, poll() first waits only what is left of the header timeout, so a
 * client trickling a byte at a time still gets its 408. */
static void blk_set_timeouts(int fd) {
    struct timeval tv = {.tv_sec = (time_t)(opt.idle_timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(opt.idle_timeout_ms % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Wait for input while a partial head is buffered since head_start: false
 * once the header timeout has run out. */
static bool blk_head_wait(int fd, uint64_t head_start) {
    for (;;) {
        uint64_t spent = app_now_ns() / 1000000 - head_start;
        if (spent >= opt.header_timeout_ms)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)(opt.header_timeout_ms - spent));
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return true; /* let the read report it */
    }
}

static void serve_blocking(int fd, void *data) {
    (void)data;
    char *in = malloc(BLK_IN), *ob = malloc(BLK_OUT);
    size_t len = 0;
    uint64_t head_start = 0; /* a partial head is buffered since (0: none) */
    bool open = in && ob, need_read = true;
    blk_set_timeouts(fd);
    while (open) {
        if (need_read) {
            if (head_start && !blk_head_wait(fd, head_start)) {
                refused(408, "request head not complete within the header timeout");
                app_write_all(fd, ob, blk_response(ob, 408, "text/plain", "", 0, CLOSE_HDR));
                break;
            }
            ssize_t n = read(fd, in + len, BLK_IN - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break; /* EOF, reset, or idle past the idle timeout (EAGAIN) */
            len += (size_t)n;
        }
        need_read = true;
        size_t off = 0, olen = 0;
        bool partial_head = false;
        for (;;) {
            vx_http_request req;
            int status;
            const char *why;
            ssize_t h = vx_http_parse_request(in + off, len - off, &req, &status, &why);
            if (h == VX_HTTP_INCOMPLETE) {
                partial_head = off < len;
                break;
            }
            size_t blen = req.content_length > 0 ? (size_t)req.content_length : 0;
            if (h < 0 || req.chunked || blen > 8192) {
                status = h < 0 ? status : req.chunked ? 501 : 413;
                refused(status, h < 0         ? why
                                : req.chunked ? "chunked bodies: not in the blocking baseline"
                                              : "body over the blocking baseline's 8 KiB");
                olen += blk_response(ob + olen, status, "text/plain", "", 0, CLOSE_HDR);
                open = false;
                break;
            }
            if (len - off - (size_t)h < blen)
                break; /* the body is not all here yet: the idle timeout applies */
            olen += blk_handle(&req, in + off + h, blen, ob + olen);
            off += (size_t)h + blen;
            if (!req.keep_alive) {
                open = false;
                break;
            }
            if (olen > BLK_OUT - 512) {
                need_read = false; /* write these, then answer the rest */
                break;
            }
        }
        if (olen && !app_write_all(fd, ob, olen))
            break;
        /* The clock runs from the head's first bytes, across reads. */
        if (!partial_head)
            head_start = 0;
        else if (!head_start || off)
            head_start = app_now_ns() / 1000000;
        memmove(in, in + off, len - off);
        len -= off;
        if (open && len == BLK_IN) { /* a head that does not fit: 431 */
            refused(431, "request over the blocking baseline's 16 KiB input buffer");
            app_write_all(fd, ob, blk_response(ob, 431, "text/plain", "", 0, CLOSE_HDR));
            break;
        }
    }
    free(in);
    free(ob);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    bool blocking = app_blocking_model(opt.model);
    if (!blocking && app_resolve_backend("vx-http", &opt.backend) < 0)
        return 1;
    if (opt.dataset && dataset_load(&ds, opt.dataset) < 0)
        return 1;
    if (opt.root && (root_fd = open(opt.root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "vx-http: --root %s: %s\n", opt.root, strerror(errno));
        return 1;
    }
    vx_http_opts ho = {.server_name = "vortex",
                       .max_body = opt.max_body,
                       .header_timeout_ms = opt.header_timeout_ms,
                       .idle_timeout_ms = opt.idle_timeout_ms,
                       .async_file_min = opt.async_file_min};
    if (vx_http_new(&http, &ho) < 0 || routes() != 0) {
        fprintf(stderr, "vx-http: cannot set up the routes\n");
        return 1;
    }
    vx_server_opts so = {
        .listen = {.host = opt.host, .port = (uint16_t)opt.port},
        .backend = opt.backend,
        .model = opt.model,
        .on_accept = vx_http_on_accept,
        .on_blocking = serve_blocking,
        .on_stop = on_stop,
        .data = http,
    };
    int rc = vx_server_new(&server, &so);
    if (rc < 0) {
        fprintf(stderr, "vx-http: listen: %s\n", vx_strerror(rc));
        return 1;
    }
    app_on_stop_signals(on_signal);
    signal(SIGPIPE, SIG_IGN);
    char model[64];
    vx_model_format(&opt.model, model, sizeof model);
    printf("listening %s:%u backend=%s model=%s\n", opt.host, vx_server_port(server),
           blocking ? "blocking" : vx_backend_name(opt.backend), model);
    fflush(stdout);
    rc = vx_server_run(server);
    app_ignore_stop_signals(); /* on_signal must not see the server freed below */
    if (rc < 0)
        fprintf(stderr, "vx-http: %s\n", vx_strerror(rc));
    vx_server_free(server);
    vx_http_free(http);
    dataset_free(&ds);
    if (root_fd >= 0)
        close(root_fd);
    return rc < 0 ? 1 : 0;
}
