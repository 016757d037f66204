/* Unit tests of the HTTP/1.1 request parser and chunked decoder.
 *
 * Every table request is parsed whole, as every prefix (the byte-by-byte
 * feed of a stateless parser: a prefix gives INCOMPLETE or the whole's
 * error), and as every two-call split with a dirty request struct, each time
 * placed flush against a PROT_NONE guard page; and all of it once per SIMD
 * level this CPU has (scalar, SSE4.2, AVX2). */
#include "harness.h"
#include "http/parse.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------- guard page */

#define ARENA (64 * 1024)
static char *arena_end; /* first byte of the PROT_NONE page */

static void guard_init(void) {
    if (arena_end)
        return;
    long pg = sysconf(_SC_PAGESIZE);
    char *m =
        mmap(NULL, ARENA + (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    REQUIRE(mprotect(m + ARENA, (size_t)pg, PROT_NONE) == 0);
    arena_end = m + ARENA;
}

/* Copy n bytes so that they end exactly at the guard page. */
static char *guarded(const char *s, size_t n) {
    guard_init();
    REQUIRE(n <= ARENA);
    memcpy(arena_end - n, s, n);
    return arena_end - n;
}

/* ------------------------------------------------------------ head parser */

static const char *method_names[] = {"GET",     "HEAD",  "POST",    "PUT",   "DELETE",
                                     "OPTIONS", "PATCH", "CONNECT", "TRACE", "OTHER"};

/* Canonical one-line summary of a parse result, compared as a string. */
static void summary(char *out, size_t cap, ssize_t rc, const vx_http_request *r, int status) {
    if (rc == VX_HTTP_INCOMPLETE) {
        snprintf(out, cap, "INCOMPLETE");
    } else if (rc == VX_HTTP_ERROR) {
        snprintf(out, cap, "E%d", status);
    } else {
        snprintf(out, cap, "%s %.*s path=%.*s q=%.*s 1.%d h%zu cl%lld%s%s%s",
                 method_names[r->method], (int)r->target.n, r->target.p, (int)r->path.n, r->path.p,
                 (int)r->query.n, r->query.p, r->minor, r->nheaders, (long long)r->content_length,
                 r->chunked ? " chunked" : "", r->keep_alive ? " ka" : "",
                 r->expect_continue ? " 100" : "");
    }
}

typedef struct hcase {
    const char *req;
    size_t len;
    const char *want; /* summary, or "E<status>" */
    const char *why;  /* substring of the reason (errors), optional */
    size_t tail;      /* bytes after the head (success) */
} hcase;

#define REQ(s) .req = s, .len = sizeof(s) - 1
#define H "Host: x\r\n"

static const hcase cases[] = {
    /* ---- valid */
    {REQ("GET / HTTP/1.1\r\n" H "\r\n"), "GET / path=/ q= 1.1 h1 cl-1 ka"},
    {REQ("GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n"),
     "GET /plaintext path=/plaintext q= 1.1 h2 cl-1 ka"},
    {REQ("GET /baseline11?a=1&b=2 HTTP/1.1\r\n" H "\r\n"),
     "GET /baseline11?a=1&b=2 path=/baseline11 q=a=1&b=2 1.1 h1 cl-1 ka"},
    {REQ("GET /a?b?c HTTP/1.1\r\n" H "\r\n"), "GET /a?b?c path=/a q=b?c 1.1 h1 cl-1 ka"},
    {REQ("GET /a? HTTP/1.1\r\n" H "\r\n"), "GET /a? path=/a q= 1.1 h1 cl-1 ka"},
    {REQ("GET / HTTP/1.0\r\n\r\n"), "GET / path=/ q= 1.0 h0 cl-1"},
    {REQ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), "GET / path=/ q= 1.0 h1 cl-1 ka"},
    {REQ("GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n"), "GET / path=/ q= 1.0 h1 cl-1"},
    {REQ("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n"), "GET / path=/ q= 1.1 h2 cl-1"},
    {REQ("GET / HTTP/1.1\r\n" H "Connection: Upgrade , CLOSE\r\n\r\n"),
     "GET / path=/ q= 1.1 h2 cl-1"},
    {REQ("GET / HTTP/1.1\r\n" H "Connection: closed\r\n\r\n"), "GET / path=/ q= 1.1 h2 cl-1 ka"},
    {REQ("POST /upload HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n"),
     "POST /upload path=/upload q= 1.1 h2 cl5 ka"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length:  007 \t\r\n\r\n"),
     "POST / path=/ q= 1.1 h2 cl7 ka"},
    {REQ("POST / HTTP/1.1\r\n" H "content-length: 9223372036854775807\r\n\r\n"),
     "POST / path=/ q= 1.1 h2 cl9223372036854775807 ka"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"), "POST / path=/ q= 1.1 h2 cl0 ka"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"),
     "POST / path=/ q= 1.1 h2 cl-1 chunked ka"},
    {REQ("POST / HTTP/1.1\r\n" H "transfer-encoding:   CHUNKED  \r\n\r\n"),
     "POST / path=/ q= 1.1 h2 cl-1 chunked ka"},
    {REQ("POST / HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
     "POST / path=/ q= 1.1 h3 cl3 ka 100"},
    {REQ("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
     "POST / path=/ q= 1.0 h2 cl3"},
    {REQ("\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n"), "GET / path=/ q= 1.1 h1 cl-1 ka"},
    {REQ("OPTIONS * HTTP/1.1\r\n" H "\r\n"), "OPTIONS * path=* q= 1.1 h1 cl-1 ka"},
    {REQ("GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\n\r\n"),
     "GET http://example.com/a/b?c=d path=/a/b q=c=d 1.1 h1 cl-1 ka"},
    {REQ("GET HTTPS://example.com HTTP/1.1\r\n" H "\r\n"),
     "GET HTTPS://example.com path= q= 1.1 h1 cl-1 ka"},
    {REQ("GET http://h?x HTTP/1.1\r\n" H "\r\n"), "GET http://h?x path= q=x 1.1 h1 cl-1 ka"},
    {REQ("BREW /pot HTTP/1.1\r\n" H "\r\n"), "OTHER /pot path=/pot q= 1.1 h1 cl-1 ka"},
    {REQ("get / HTTP/1.1\r\n" H "\r\n"), "OTHER / path=/ q= 1.1 h1 cl-1 ka"},
    {REQ("M-SEARCH|x~ / HTTP/1.1\r\n" H "\r\n"), "OTHER / path=/ q= 1.1 h1 cl-1 ka"},
    {REQ("DELETE /x HTTP/1.1\r\n" H "\r\n"), "DELETE /x path=/x q= 1.1 h1 cl-1 ka"},
    {REQ("HEAD /x HTTP/1.1\r\n" H "\r\n"), "HEAD /x path=/x q= 1.1 h1 cl-1 ka"},
    {REQ("PUT /x HTTP/1.1\r\n" H "\r\n"), "PUT /x path=/x q= 1.1 h1 cl-1 ka"},
    {REQ("PATCH /x HTTP/1.1\r\n" H "\r\n"), "PATCH /x path=/x q= 1.1 h1 cl-1 ka"},
    {REQ("TRACE /x HTTP/1.1\r\n" H "\r\n"), "TRACE /x path=/x q= 1.1 h1 cl-1 ka"},
    {REQ("GET /%7e~!$&'()*+,;=:@[] HTTP/1.1\r\n" H "\r\n"),
     "GET /%7e~!$&'()*+,;=:@[] path=/%7e~!$&'()*+,;=:@[] q= 1.1 h1 cl-1 ka"},
    {REQ("GET / HTTP/1.1\r\nHost:\r\nX-Empty:\r\nX-Ws: \t \r\nX-Obs: caf\xc3\xa9 \x80\xff\r\n\r\n"),
     "GET / path=/ q= 1.1 h4 cl-1 ka"},
    {REQ("GET / HTTP/1.1\r\n" H "!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n"),
     "GET / path=/ q= 1.1 h2 cl-1 ka"},
    /* pipelined: the head ends where the next request starts */
    {REQ("GET /1 HTTP/1.1\r\n" H "\r\nGET /2 HTTP/1.1\r\n"), "GET /1 path=/1 q= 1.1 h1 cl-1 ka",
     NULL, 17},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"), "POST / path=/ q= 1.1 h2 cl3 ka",
     NULL, 3},

    /* ---- request line */
    {REQ("GET  / HTTP/1.1\r\n" H "\r\n"), "E400", "empty request target"},
    {REQ("GET /  HTTP/1.1\r\n" H "\r\n"), "E400", "version"},
    {REQ(" GET / HTTP/1.1\r\n" H "\r\n"), "E400", "method"},
    {REQ("G(T / HTTP/1.1\r\n" H "\r\n"), "E400", "method"},
    {REQ("GET\t/ HTTP/1.1\r\n" H "\r\n"), "E400", "method"},
    {REQ("GET /a\tb HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET /a\x7f HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET /a\0b HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET /a#frag HTTP/1.1\r\n" H "\r\n"), "E400", "fragment"},
    {REQ("GET /a?q=1# HTTP/1.1\r\n" H "\r\n"), "E400", "fragment"},
    {REQ("GET /\r\n" H "\r\n"), "E400", "missing HTTP version"},
    {REQ("GET / HTTP/1.1 \r\n" H "\r\n"), "E400", "version"},
    {REQ("GET / http/1.1\r\n" H "\r\n"), "E400", "version"},
    {REQ("GET / HTTP/1.1x\r\n" H "\r\n"), "E400", "version"},
    {REQ("GET / HTTP/11\r\n" H "\r\n"), "E400", "version"},
    {REQ("GET / HTTP/1.10\r\n" H "\r\n"), "E400", "version"},
    {REQ("GET / HTTP/2.0\r\n" H "\r\n"), "E505", "version"},
    {REQ("GET / HTTP/1.2\r\n" H "\r\n"), "E505", "version"},
    {REQ("GET / HTTP/0.9\r\n" H "\r\n"), "E505", "version"},
    {REQ("GET / HTTP/1.1\n" H "\r\n"), "E400", "bare LF"},
    {REQ("GET / HTTP/1.1\rX" H "\r\n"), "E400", "bare CR"},
    {REQ("\nGET / HTTP/1.1\r\n" H "\r\n"), "E400", "method"},
    {REQ("\rGET / HTTP/1.1\r\n" H "\r\n"), "E400", "bare CR"},
    {REQ("GET x HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET * HTTP/1.1\r\n" H "\r\n"), "E400", "asterisk"},
    {REQ("OPTIONS *x HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("CONNECT example.com:443 HTTP/1.1\r\n" H "\r\n"), "E400", "CONNECT"},
    {REQ("GET http:// HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},
    {REQ("GET http:///x HTTP/1.1\r\n" H "\r\n"), "E400", "authority"},
    {REQ("GET http://u@h/ HTTP/1.1\r\n" H "\r\n"), "E400", "userinfo"},
    {REQ("GET ftp://h/ HTTP/1.1\r\n" H "\r\n"), "E400", "request target"},

    /* ---- header fields */
    {REQ("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n"), "E400", "obs-fold"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n"), "E400", "obs-fold"},
    {REQ("GET / HTTP/1.1\r\n Host: x\r\n\r\n"), "E400", "obs-fold"},
    {REQ("GET / HTTP/1.1\r\n" H "X : a\r\n\r\n"), "E400", "before colon"},
    {REQ("GET / HTTP/1.1\r\n" H "X\t: a\r\n\r\n"), "E400", "before colon"},
    {REQ("GET / HTTP/1.1\r\n" H ": a\r\n\r\n"), "E400", "empty header name"},
    {REQ("GET / HTTP/1.1\r\n" H "X\r\n\r\n"), "E400", "header name"},
    {REQ("GET / HTTP/1.1\r\n" H "X(y): a\r\n\r\n"), "E400", "header name"},
    {REQ("GET / HTTP/1.1\r\n" H "X\xc3\xa9: a\r\n\r\n"), "E400", "header name"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"), "E400", "header value"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n"), "E400", "header value"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\x0b\r\n\r\n"), "E400", "header value"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"), "E400", "bare CR"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\nY: b\r\n\r\n"), "E400", "bare LF"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\r\n\n"), "E400", "bare LF"},
    {REQ("GET / HTTP/1.1\r\n" H "X: a\r\n\rX"), "E400", "bare CR"},
    {REQ("GET / HTTP/1.1\r\n\r\n"), "E400", "missing Host"},
    {REQ("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), "E400", "duplicate Host"},

    /* ---- framing and smuggling */
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), "E400",
     "Content-Length and Transfer-Encoding"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), "E400",
     "Content-Length and Transfer-Encoding"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), "E400",
     "duplicate Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), "E400",
     "duplicate Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 1 5\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n"), "E400", "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n"), "E400",
     "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n"), "E400",
     "Content-Length"},
    {REQ("POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n"), "E400", "before colon"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n"), "E400",
     "not the final"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n"), "E400",
     "not the final"},
    {REQ("POST / HTTP/1.1\r\n" H
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     "E400", "not the final"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"), "E501",
     "unsupported"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
     "E501", "unsupported"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n"), "E501", "unsupported"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunkedx\r\n\r\n"), "E501", "unsupported"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n"), "E501", "unsupported"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n"), "E400", "empty element"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: , chunked\r\n\r\n"), "E400", "empty element"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n"), "E400", "empty element"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\x0b"
         "chunked\r\n\r\n"),
     "E400", "header value"},
    {REQ("POST / HTTP/1.1\r\n" H " Transfer-Encoding: chunked\r\n\r\n"), "E400", "obs-fold"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n"), "E400", "before colon"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n chunked\r\n\r\n"), "E400", "obs-fold"},
    {REQ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), "E400", "HTTP/1.0"},
    {REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nX: a\0\r\n\r\n"), "E400",
     "header value"},
};

/* Parse s[0..n) placed against the guard page, with a dirty struct. */
static ssize_t parse_guarded(const char *s, size_t n, vx_http_request *r, int *st,
                             const char **why) {
    const char *b = guarded(s, n);
    memset(r, 0xa5, sizeof *r);
    *st = 0;
    *why = NULL;
    return vx_http_parse_request(b, n, r, st, why);
}

static void check_case(const hcase *c) {
    static vx_http_request r;
    char got[512], want_full[512], pre[512];
    int st;
    const char *why;
    ssize_t rc = parse_guarded(c->req, c->len, &r, &st, &why);
    summary(got, sizeof got, rc, &r, st);
    CHECK_MSG(strcmp(got, c->want) == 0, "%.*s\n  got  %s\n  want %s", (int)c->len, c->req, got,
              c->want);
    if (strcmp(got, c->want) != 0)
        return;
    if (rc >= 0) {
        CHECK_EQ_INT(rc, c->len - c->tail);
    } else {
        CHECK(why != NULL);
        if (c->why && why)
            CHECK_MSG(strstr(why, c->why) != NULL, "%.*s: reason \"%s\" lacks \"%s\"", (int)c->len,
                      c->req, why, c->why);
    }
    snprintf(want_full, sizeof want_full, "%s", got);
    const char *why0 = why;
    /* bytes after the request change nothing, and give the vector loops room */
    static char padded[1024];
    static const char more[] =
        "GET /next HTTP/1.1\r\nHost: y\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    REQUIRE(c->len + sizeof more <= sizeof padded);
    memcpy(padded, c->req, c->len);
    memcpy(padded + c->len, more, sizeof more - 1);
    ssize_t xrc = parse_guarded(padded, c->len + sizeof more - 1, &r, &st, &why);
    summary(pre, sizeof pre, xrc, &r, st);
    CHECK_MSG(xrc == rc && strcmp(pre, want_full) == 0 && why == why0,
              "%.*s: with more bytes after it: %s", (int)c->len, c->req, pre);
    /* every prefix: INCOMPLETE, or (errors) the same error once it shows;
     * a success shows exactly from the head's last byte on */
    bool seen = false;
    for (size_t k = 0; k <= c->len; k++) {
        ssize_t prc = parse_guarded(c->req, k, &r, &st, &why);
        summary(pre, sizeof pre, prc, &r, st);
        bool ok;
        if (rc >= 0)
            ok = k < (size_t)rc ? prc == VX_HTTP_INCOMPLETE
                                : prc == rc && strcmp(pre, want_full) == 0;
        else
            ok = prc == VX_HTTP_INCOMPLETE
                     ? !seen
                     : prc == rc && strcmp(pre, want_full) == 0 && why == why0;
        seen |= prc != VX_HTTP_INCOMPLETE;
        if (!ok) {
            harness_fail(__FILE__, __LINE__, "%.*s: prefix %zu gave %s (whole: %s)", (int)c->len,
                         c->req, k, pre, want_full);
            return;
        }
    }
    /* two calls per split: prefix then whole, the same (dirty) struct */
    for (size_t k = 0; k < c->len; k++) {
        ssize_t prc = parse_guarded(c->req, k, &r, &st, &why);
        const char *b = guarded(c->req, c->len);
        ssize_t wrc = vx_http_parse_request(b, c->len, &r, &st, &why);
        summary(got, sizeof got, wrc, &r, st);
        if ((prc != VX_HTTP_INCOMPLETE && prc != VX_HTTP_ERROR) && rc < 0) {
            harness_fail(__FILE__, __LINE__, "split %zu: prefix parsed", k);
            return;
        }
        if (wrc != rc || strcmp(got, want_full) != 0) {
            harness_fail(__FILE__, __LINE__, "split %zu: %s != %s", k, got, want_full);
            return;
        }
    }
}

/* Run fn once per SIMD level this CPU has. */
static void each_level(void (*fn)(int level)) {
    for (int l = 0; l <= 2; l++) {
        if (vx__http_simd_cap(l) != l)
            break;
        fn(l);
    }
    vx__http_force_scalar(false);
}

static void table_at(int level) {
    int before = harness_failures();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    if (harness_failures() != before)
        harness_log("failures at SIMD level %d", level);
}

TEST(http_parse_table) { each_level(table_at); }

static void fields_at(int level) {
    (void)level;
    static vx_http_request r;
    int st;
    const char *why;
    static const char req[] = "GET /a HTTP/1.1\r\nHost: h\r\nX-A:   va  \r\nx-b:\tv b\t\r\n"
                              "CONTENT-type:text/plain\r\nX-E:\r\n\r\n";
    ssize_t rc = parse_guarded(req, sizeof req - 1, &r, &st, &why);
    REQUIRE_EQ_INT(rc, sizeof req - 1);
    REQUIRE_EQ_INT(r.nheaders, 5);
    const vx_http_header *h = vx_http_find_header(&r, "x-a");
    REQUIRE(h != NULL);
    CHECK(h->value.n == 2 && memcmp(h->value.p, "va", 2) == 0);
    h = vx_http_find_header(&r, "X-B");
    REQUIRE(h != NULL);
    CHECK(h->value.n == 3 && memcmp(h->value.p, "v b", 3) == 0);
    CHECK(h->name.n == 3 && memcmp(h->name.p, "x-b", 3) == 0);
    h = vx_http_find_header(&r, "Content-Type");
    REQUIRE(h != NULL);
    CHECK(h->value.n == 10 && memcmp(h->value.p, "text/plain", 10) == 0);
    h = vx_http_find_header(&r, "x-e");
    REQUIRE(h != NULL);
    CHECK_EQ_INT(h->value.n, 0);
    CHECK(vx_http_find_header(&r, "x-") == NULL);
    CHECK(vx_http_find_header(&r, "x-ab") == NULL);
    CHECK(r.method_name.n == 3 && memcmp(r.method_name.p, "GET", 3) == 0);
}

TEST(http_parse_fields_and_find_header) { each_level(fields_at); }

/* ---- limits: 414, 431, exact boundaries */

static char big[40 * 1024];

static size_t build_line(size_t target_len, const char *rest) {
    size_t n = 0;
    n += (size_t)sprintf(big, "GET /");
    memset(big + n, 'a', target_len - 1);
    n += target_len - 1;
    n += (size_t)sprintf(big + n, " HTTP/1.1\r\n%s", rest);
    return n;
}

static ssize_t parse_big(size_t n, int *st) {
    static vx_http_request r;
    const char *why;
    return parse_guarded(big, n, &r, st, &why);
}

static void limits_at(int level) {
    (void)level;
    int st = 0;
    /* request line of exactly MAX_LINE bytes: fine; one more: 414 */
    size_t n = build_line(VX_HTTP_MAX_LINE - 13, "Host: x\r\n\r\n");
    CHECK_EQ_INT(parse_big(n, &st), n);
    n = build_line(VX_HTTP_MAX_LINE - 12, "Host: x\r\n\r\n");
    CHECK_EQ_INT(parse_big(n, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 414);
    /* 414 as soon as MAX_LINE + 1 bytes of line are in, before any CRLF */
    n = build_line(20000, "");
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_LINE, &st), VX_HTTP_INCOMPLETE);
    st = 0;
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_LINE + 1, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 414);
    /* leading CRLFs do not count in the line */
    n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(big + n, "\r\n");
    size_t m = (size_t)sprintf(big + n, "GET /");
    memset(big + n + m, 'b', VX_HTTP_MAX_LINE - 14);
    m += VX_HTTP_MAX_LINE - 14;
    m += (size_t)sprintf(big + n + m, " HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK_EQ_INT(parse_big(n + m, &st), n + m);

    /* head of exactly MAX_HEAD bytes: fine; one more: 431, reported once the
     * buffer holds MAX_HEAD + 1 bytes without a complete head */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: x\r\nX: ");
    size_t pad = VX_HTTP_MAX_HEAD - n - 4;
    memset(big + n, 'v', pad);
    n += pad;
    n += (size_t)sprintf(big + n, "\r\n\r\n");
    REQUIRE_EQ_INT(n, VX_HTTP_MAX_HEAD);
    CHECK_EQ_INT(parse_big(n, &st), n);
    memmove(big + 30, big + 29, n - 29);
    n++;
    CHECK_EQ_INT(parse_big(n - 1, &st), VX_HTTP_INCOMPLETE);
    st = 0;
    CHECK_EQ_INT(parse_big(n, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 431);
    /* an endless header: INCOMPLETE up to MAX_HEAD, then 431 */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX: ");
    memset(big + n, 'v', sizeof big - n);
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_HEAD, &st), VX_HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_HEAD + 1, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 431);
    CHECK_EQ_INT(parse_big(sizeof big, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 431);
    /* endless CRLFs */
    for (size_t i = 0; i + 1 < sizeof big; i += 2)
        memcpy(big + i, "\r\n", 2);
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_HEAD, &st), VX_HTTP_INCOMPLETE);
    CHECK_EQ_INT(parse_big(VX_HTTP_MAX_HEAD + 2, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 431);

    /* MAX_HEADERS fields: fine; one more: 431 */
    n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < VX_HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(big + n, i ? "X%d: %d\r\n" : "Host: %d%d\r\n", i, i);
    n += (size_t)sprintf(big + n, "\r\n");
    CHECK_EQ_INT(parse_big(n, &st), n);
    n -= 2;
    n += (size_t)sprintf(big + n, "Y: y\r\n\r\n");
    st = 0;
    CHECK_EQ_INT(parse_big(n, &st), VX_HTTP_ERROR);
    CHECK_EQ_INT(st, 431);
}

TEST(http_parse_limits) { each_level(limits_at); }

/* Random mutations of valid requests: every SIMD level must agree with the
 * scalar code, byte for byte, and never read past the data. */
static const char *seeds[] = {
    "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain,text/html;q=0.9\r\n"
    "Connection: keep-alive\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101\r\n\r\n",
    "POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
    "X-Long-Header-Name-With-Many-Token-Characters|~: value with \t tabs and obs-text \xe2\x82\xac"
    "\r\n\r\n",
};

TEST(http_parse_simd_agrees_with_scalar) {
    rng g;
    rng_seed(&g, 42);
    static const char pool[] = "\r\n \t:/?%\x00\x7f\x80\xff|~{}\"aZ0,;=";
    static char buf[512];
    static vx_http_request r;
    char s0[512], s1[512];
    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[iter % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int muts = (int)rng_range(&g, 1, 4);
        for (int m = 0; m < muts; m++)
            buf[rng_range(&g, 0, n - 1)] = pool[rng_range(&g, 0, sizeof pool - 2)];
        size_t len = rng_range(&g, 0, n);
        int st0 = 0, st1 = 0;
        const char *w0, *w1;
        vx__http_simd_cap(0);
        ssize_t rc0 = parse_guarded(buf, len, &r, &st0, &w0);
        summary(s0, sizeof s0, rc0, &r, st0);
        for (int l = 1; l <= 2; l++) {
            if (vx__http_simd_cap(l) != l)
                break;
            ssize_t rc1 = parse_guarded(buf, len, &r, &st1, &w1);
            summary(s1, sizeof s1, rc1, &r, st1);
            if (rc0 != rc1 || strcmp(s0, s1) != 0 || (rc0 == VX_HTTP_ERROR && w0 != w1)) {
                harness_fail(__FILE__, __LINE__, "level %d: %s != scalar %s (%s / %s)", l, s1, s0,
                             rc1 < 0 ? w1 : "", rc0 < 0 ? w0 : "");
                vx__http_force_scalar(false);
                return;
            }
        }
    }
    vx__http_force_scalar(false);
}

/* ------------------------------------------------------- chunked decoder */

typedef struct ccase {
    const char *req; /* chunked body as sent */
    size_t len;
    const char *out; /* decoded body, or NULL for an error */
    size_t tail;     /* bytes after the body, not consumed */
    const char *why;
    size_t outn; /* decoded length when out may hold NUL */
} ccase;

static const ccase ccases[] = {
    {REQ("0\r\n\r\n"), ""},
    {REQ("5\r\nhello\r\n0\r\n\r\n"), "hello"},
    {REQ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world"},
    {REQ("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"), "0123456789abcdefghij"},
    {REQ("000005\r\nhello\r\n00\r\n\r\n"), "hello"},
    {REQ("5;name=value\r\nhello\r\n0;last\r\n\r\n"), "hello"},
    {REQ("5 ;a=\"q; \\\"x\"\t; b\r\nhello\r\n0\r\n\r\n"), "hello"},
    {REQ("3\r\na\r\n\r\n0\r\nTrailer: yes\r\nX-Sum: 1 2\t\r\n\r\n"), "a\r\n"},
    {REQ("2\r\n\0\xff\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), "\0\xff", 16, NULL, 2},
    {REQ("0\r\n\r\n0\r\n\r\n"), "", 5},
    /* errors */
    {REQ("\r\n"), NULL, 0, "invalid chunk size"},
    {REQ("g\r\n"), NULL, 0, "invalid chunk size"},
    {REQ("-1\r\n"), NULL, 0, "invalid chunk size"},
    {REQ("+5\r\nhello\r\n0\r\n\r\n"), NULL, 0, "invalid chunk size"},
    {REQ(" 5\r\nhello\r\n0\r\n\r\n"), NULL, 0, "invalid chunk size"},
    {REQ("0x5\r\nhello\r\n0\r\n\r\n"), NULL, 0, "chunk size line"},
    {REQ("5 \r\nhello\r\n0\r\n\r\n"), NULL, 0, "chunk size line"},
    {REQ("5\nhello\r\n0\r\n\r\n"), NULL, 0, "bare LF"},
    {REQ("5\rhello\r\n0\r\n\r\n"), NULL, 0, "bare CR"},
    {REQ("5\r\nhelloX\r\n0\r\n\r\n"), NULL, 0, "CRLF"},
    {REQ("5\r\nhello\n0\r\n\r\n"), NULL, 0, "CRLF"},
    {REQ("5;a\nb\r\nhello\r\n0\r\n\r\n"), NULL, 0, "bare LF"},
    {REQ("5;a\0\r\nhello\r\n0\r\n\r\n"), NULL, 0, "extension"},
    {REQ("10000000000000000\r\n"), NULL, 0, "overflow"},
    {REQ("0\r\nX: a\r\n b\r\n\r\n"), NULL, 0, "obs-fold"},
    {REQ("0\r\nX : a\r\n\r\n"), NULL, 0, "before colon"},
    {REQ("0\r\n: a\r\n\r\n"), NULL, 0, "trailer field name"},
    {REQ("0\r\nX: a\0\r\n\r\n"), NULL, 0, "trailer value"},
    {REQ("0\r\nX: a\n\r\n"), NULL, 0, "bare LF"},
    {REQ("0\r\n\n"), NULL, 0, "bare LF"},
    {REQ("0\r\n\rx"), NULL, 0, "bare CR"},
};

typedef struct dres {
    char out[256];
    size_t outn, consumed;
    bool done, err;
    const char *why;
} dres;

/* Feed in[0..len) cut at the given offsets (ascending, ending with len); each
 * piece is copied to the guard page and decoded in place; leftovers of a
 * piece are carried into the next call like a server's read buffer. */
static void decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts, dres *res) {
    vx_http_chunked d = {0};
    static char carry[4096];
    size_t have = 0, pos = 0;
    REQUIRE(ncuts > 0 && cuts[ncuts - 1] == len && len <= sizeof carry);
    memset(res, 0, sizeof *res);
    for (size_t i = 0; i < ncuts && !res->done && !res->err; i++) {
        memcpy(carry + have, in + pos, cuts[i] - pos);
        have += cuts[i] - pos;
        pos = cuts[i];
        char *b = (char *)guarded(carry, have);
        size_t out;
        bool done;
        const char *why = NULL;
        ssize_t n = vx_http_chunked_decode(&d, b, have, &out, &done, &why);
        if (n < 0) {
            res->err = true;
            res->why = why;
            break;
        }
        REQUIRE((size_t)n <= have && out <= (size_t)n);
        memcpy(res->out + res->outn, b, out);
        res->outn += out;
        res->consumed += (size_t)n;
        res->done = done;
        memmove(carry, b + n, have - (size_t)n);
        have -= (size_t)n;
    }
}

static bool check_dres(const ccase *c, const dres *r, const char *how) {
    if (!c->out) {
        if (r->err && r->why && strstr(r->why, c->why))
            return true;
        harness_fail(__FILE__, __LINE__, "%s: %.*s: want error \"%s\", got %s", how, (int)c->len,
                     c->req, c->why, r->err ? r->why : "success");
        return false;
    }
    size_t want = c->outn ? c->outn : strlen(c->out);
    bool ok = !r->err && r->done && r->consumed == c->len - c->tail && r->outn == want &&
              memcmp(r->out, c->out, want) == 0;
    if (!ok)
        harness_fail(__FILE__, __LINE__, "%s: %.*s: err=%d (%s) done=%d consumed=%zu outn=%zu", how,
                     (int)c->len, c->req, r->err, r->why ? r->why : "", r->done, r->consumed,
                     r->outn);
    return ok;
}

TEST(http_chunked_table) {
    size_t cuts[600];
    dres r;
    for (size_t i = 0; i < sizeof ccases / sizeof ccases[0]; i++) {
        const ccase *c = &ccases[i];
        REQUIRE(c->len < 600);
        cuts[0] = c->len;
        decode_pieces(c->req, c->len, cuts, 1, &r);
        if (!check_dres(c, &r, "whole"))
            continue;
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k + 1;
        decode_pieces(c->req, c->len, cuts, c->len, &r);
        if (!check_dres(c, &r, "byte by byte"))
            continue;
        for (size_t k = 1; k < c->len; k++) {
            size_t two[2] = {k, c->len};
            decode_pieces(c->req, c->len, two, 2, &r);
            if (!check_dres(c, &r, "split"))
                break;
        }
    }
}

TEST(http_chunked_binary_body) {
    /* the NUL/0xff case above compared by length: check it precisely */
    static const char in[] = "2\r\n\0\xff\r\n1\r\n\0\r\n0\r\n\r\n";
    char b[sizeof in];
    memcpy(b, in, sizeof in);
    vx_http_chunked d = {0};
    size_t out;
    bool done;
    const char *why;
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, sizeof in - 1, &out, &done, &why), sizeof in - 1);
    CHECK(done);
    CHECK_EQ_INT(out, 3);
    CHECK(memcmp(b, "\0\xff\0", 3) == 0);
    /* after done: nothing more is consumed */
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, 3, &out, &done, &why), 0);
    CHECK(done);
    CHECK_EQ_INT(out, 0);
}

TEST(http_chunked_limits) {
    static char b[40 * 1024];
    vx_http_chunked d = {0};
    size_t out;
    bool done;
    const char *why = NULL;
    /* a size line with extensions up to 4 KiB: fine */
    size_t n = (size_t)sprintf(b, "1;x=");
    memset(b + n, 'e', 4000);
    n += 4000;
    n += (size_t)sprintf(b + n, "\r\nZ\r\n0\r\n\r\n");
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, n, &out, &done, &why), n);
    CHECK(done && out == 1 && b[0] == 'Z');
    /* past it: error, also when fed in pieces */
    memset(&d, 0, sizeof d);
    n = (size_t)sprintf(b, "1;x=");
    memset(b + n, 'e', 5000);
    n += 5000;
    ssize_t rc = 0;
    for (size_t i = 0; i < n && rc >= 0; i += 100)
        rc = vx_http_chunked_decode(&d, b + i, n - i < 100 ? n - i : 100, &out, &done, &why);
    CHECK_EQ_INT(rc, VX_HTTP_ERROR);
    CHECK(why && strstr(why, "too long"));
    /* and it stays failed */
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, 1, &out, &done, &why), VX_HTTP_ERROR);
    /* trailers: 16 KiB max */
    memset(&d, 0, sizeof d);
    n = (size_t)sprintf(b, "0\r\n");
    while (n < 20000)
        n += (size_t)sprintf(b + n, "X-Trailer: %0100d\r\n", 7);
    n += (size_t)sprintf(b + n, "\r\n");
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, n, &out, &done, &why), VX_HTTP_ERROR);
    CHECK(why && strstr(why, "trailer"));
    /* largest sizes: 15 hex digits fine (data pending), 16 digits overflow-free, 17 overflow */
    memset(&d, 0, sizeof d);
    n = (size_t)sprintf(b, "fffffffffffffff\r\nab");
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, n, &out, &done, &why), n);
    CHECK(!done && out == 2 && d.left == 0xfffffffffffffffULL - 2);
    memset(&d, 0, sizeof d);
    n = (size_t)sprintf(b, "ffffffffffffffff\r\n");
    CHECK_EQ_INT(vx_http_chunked_decode(&d, b, n, &out, &done, &why), n);
    CHECK(d.left == UINT64_MAX);
}

/* ------------------------------------------------------ pipelined batches */

/* A mixed batch as a server reads it: arbitrary read sizes, a head parsed
 * when complete, a Content-Length body skipped, a chunked body decoded in
 * place; the decoded bodies and the request order must come out intact. */
static size_t build_batch(char *b, rng *g, char bodies[][64], int *kinds, int nreq) {
    size_t n = 0;
    for (int i = 0; i < nreq; i++) {
        int k = (int)rng_range(g, 0, 2);
        kinds[i] = k;
        snprintf(bodies[i], 64, "body-%d-%llu", i, (unsigned long long)rng_range(g, 0, 1u << 30));
        size_t bl = strlen(bodies[i]);
        if (k == 0) {
            bodies[i][0] = 0;
            n += (size_t)sprintf(b + n, "GET /pipeline?i=%d HTTP/1.1\r\nHost: h\r\n\r\n", i);
        } else if (k == 1) {
            n += (size_t)sprintf(b + n,
                                 "POST /baseline11?i=%d HTTP/1.1\r\nHost: h\r\n"
                                 "Content-Length: %zu\r\n\r\n%s",
                                 i, bl, bodies[i]);
        } else {
            n += (size_t)sprintf(b + n,
                                 "POST /upload?i=%d HTTP/1.1\r\nHost: h\r\n"
                                 "Transfer-Encoding: chunked\r\n\r\n",
                                 i);
            /* split the body into two chunks with an extension, then trailers */
            size_t h = bl / 2;
            n += (size_t)sprintf(b + n, "%zx;ext=1\r\n%.*s\r\n%zX\r\n%s\r\n0\r\nX-T: t\r\n\r\n", h,
                                 (int)h, bodies[i], bl - h, bodies[i] + h);
        }
    }
    return n;
}

static void pipeline_run(const char *stream, size_t total, rng *g, int max_read, char bodies[][64],
                         const int *kinds, int nreq) {
    static char rb[ARENA];
    static vx_http_request r;
    size_t have = 0, fed = 0;
    int idx = 0;
    enum { HEAD, CL, CHUNKED } phase = HEAD;
    int64_t cl_left = 0;
    vx_http_chunked d;
    char body[64];
    size_t bodyn = 0;
    while (idx < nreq) {
        /* "read" */
        if (fed < total) {
            size_t n = (size_t)rng_range(g, 1, (uint64_t)max_read);
            if (n > total - fed)
                n = total - fed;
            memcpy(rb + have, stream + fed, n);
            have += n;
            fed += n;
        }
        char *b = (char *)guarded(rb, have);
        size_t used = 0;
        for (;;) {
            if (phase == HEAD) {
                int st;
                const char *why;
                ssize_t n = vx_http_parse_request(b + used, have - used, &r, &st, &why);
                if (n == VX_HTTP_INCOMPLETE)
                    break;
                REQUIRE_OK(n);
                char want[32];
                snprintf(want, sizeof want, "i=%d", idx);
                REQUIRE(r.query.n == strlen(want) && memcmp(r.query.p, want, r.query.n) == 0);
                REQUIRE_EQ_INT(r.chunked, kinds[idx] == 2);
                used += (size_t)n;
                bodyn = 0;
                if (r.chunked) {
                    memset(&d, 0, sizeof d);
                    phase = CHUNKED;
                } else if (r.content_length > 0) {
                    cl_left = r.content_length;
                    phase = CL;
                } else {
                    REQUIRE_EQ_INT(kinds[idx], 0);
                    idx++;
                    continue;
                }
            }
            if (phase == CL) {
                size_t n = have - used < (size_t)cl_left ? have - used : (size_t)cl_left;
                memcpy(body + bodyn, b + used, n);
                bodyn += n;
                used += n;
                cl_left -= (int64_t)n;
                if (cl_left)
                    break;
            } else {
                size_t out;
                bool done;
                const char *why;
                ssize_t n = vx_http_chunked_decode(&d, b + used, have - used, &out, &done, &why);
                REQUIRE_OK(n);
                memcpy(body + bodyn, b + used, out);
                bodyn += out;
                used += (size_t)n;
                if (!done)
                    break;
            }
            REQUIRE(bodyn == strlen(bodies[idx]) && memcmp(body, bodies[idx], bodyn) == 0);
            idx++;
            phase = HEAD;
        }
        memmove(rb, b + used, have - used);
        have -= used;
        if (fed == total && used == 0 && idx < nreq)
            break; /* stuck: nothing more will arrive */
    }
    CHECK_EQ_INT(idx, nreq);
    CHECK_EQ_INT(have, 0);
}

static void pipeline_at(int level) {
    (void)level;
    static char stream[64 * 1024];
    static char bodies[200][64];
    static int kinds[200];
    rng g;
    rng_seed(&g, 7);
    for (int round = 0; round < 20; round++) {
        int nreq = (int)rng_range(&g, 1, 200);
        size_t n = build_batch(stream, &g, bodies, kinds, nreq);
        int max_read = round == 0 ? 1 : round == 1 ? (int)n : (int)rng_range(&g, 1, 700);
        pipeline_run(stream, n, &g, max_read, bodies, kinds, nreq);
        if (harness_failures())
            return;
    }
}

TEST(http_pipelined_batches) { each_level(pipeline_at); }

/* ------------------------------------------------------ url and query */

TEST(http_url_decode) {
    static const struct {
        const char *in;
        bool form;
        const char *out; /* NULL: -1 */
    } t[] = {
        {"", false, ""},
        {"abc", false, "abc"},
        {"a%20b", false, "a b"},
        {"a+b", false, "a+b"},
        {"a+b", true, "a b"},
        {"%2B+%2b", true, "+ +"},
        {"%41%7a%7E", false, "Az~"},
        {"%", false, NULL},
        {"%4", false, NULL},
        {"%4g", false, NULL},
        {"%g4", false, NULL},
        {"ab%", true, NULL},
        {"%%41", false, NULL},
        {"100%25", false, "100%"},
        {"%e2%82%ac", false, "\xe2\x82\xac"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[64];
        size_t n = strlen(t[i].in);
        ssize_t rc = vx_http_url_decode(buf, guarded(t[i].in, n), n, t[i].form);
        if (!t[i].out) {
            CHECK_MSG(rc == -1, "\"%s\" gave %zd", t[i].in, rc);
            continue;
        }
        CHECK_MSG(rc == (ssize_t)strlen(t[i].out) && memcmp(buf, t[i].out, (size_t)rc) == 0,
                  "\"%s\" gave %zd", t[i].in, rc);
        /* in place */
        char *g = (char *)guarded(t[i].in, n);
        rc = vx_http_url_decode(g, g, n, t[i].form);
        CHECK(rc == (ssize_t)strlen(t[i].out) && memcmp(g, t[i].out, (size_t)rc) == 0);
    }
    /* %00 decodes to a NUL byte */
    char b[4];
    CHECK_EQ_INT(vx_http_url_decode(b, "a%00", 4, false), 2);
    CHECK(b[1] == 0);
}

TEST(http_query_get) {
    static const struct {
        const char *q, *key, *val; /* val NULL: absent */
    } t[] = {
        {"a=1&b=2", "a", "1"},     {"a=1&b=2", "b", "2"},  {"a=1&b=2", "c", NULL},
        {"a=1&b=2", "", NULL},     {"aa=1&a=2", "a", "2"}, {"a=1&a=2", "a", "1"},
        {"a&b=2", "a", ""},        {"a=&b=2", "a", ""},    {"&&a=1&&", "a", "1"},
        {"=x&a=1", "", "x"},       {"a=1=2", "a", "1=2"},  {"a%20b=1", "a b", NULL},
        {"a%20b=1", "a%20b", "1"}, {"", "a", NULL},        {"A=1", "a", NULL},
        {"m=1.5", "m", "1.5"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t n = strlen(t[i].q);
        vx_http_slice q = {guarded(t[i].q, n), n}, v = {NULL, 99};
        bool found = vx_http_query_get(q, t[i].key, &v);
        if (!t[i].val) {
            CHECK_MSG(!found, "%s / %s", t[i].q, t[i].key);
            continue;
        }
        CHECK_MSG(found && v.n == strlen(t[i].val) && memcmp(v.p, t[i].val, v.n) == 0 &&
                      v.p >= q.p && v.p + v.n <= q.p + q.n,
                  "%s / %s: found=%d %.*s", t[i].q, t[i].key, found, (int)v.n, v.p ? v.p : "");
    }
}

TEST(http_accepts_coding) {
    static const struct {
        const char *v;
        bool gzip;
    } t[] = {
        {"gzip", true},
        {"GZip", true},
        {"x-gzip", true},
        {"deflate, gzip;q=0.5", true},
        {"gzip;q=0", false},
        {"gzip ; q=0.000", false},
        {"gzip;Q=0.001", true},
        {"gzip;q=1.000", true},
        {"gzip;q=1.001", false}, /* malformed: counts for nothing */
        {"gzip;q=0.0001", false},
        {"gzip;q=", false},
        {"gzip;q=.5", false},
        {"gzip ;\tq=0.8 , br", true},
        {"gzip;level=\"a,b;q=0\";q=0.7", true},
        {"gzip;foo", false},
        {"gzipx", false},
        {"nogzip", false},
        {"x-gzipx", false},
        {"*", false},
        {"identity", false},
        {"", false},
        {",,,", false},
        {"br, gzip", true},
        {"gzip;q=0, gzip", false}, /* the first element naming it decides */
        {"gzip garbage, gzip", true},
        {"gzip\"", false},
        {"gzip;a=\"open", false},
        {"gzip;a=\"x\\\"y\"", true},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t n = strlen(t[i].v);
        CHECK_MSG(vx_http_accepts_coding(guarded(t[i].v, n), n, "gzip") == t[i].gzip, "%s", t[i].v);
    }
    CHECK(vx_http_accepts_coding("x-compress", 10, "compress"));
    CHECK(!vx_http_accepts_coding("x-br", 4, "br"));
    CHECK(vx_http_accepts_coding("br;q=1", 6, "br"));
}

/* VX_HTTP_SCALAR=1 at start-up forces scalar code (run the binary with it). */
TEST(http_scalar_env) {
    const char *e = getenv("VX_HTTP_SCALAR");
    int l = vx__http_simd_cap(2);
    harness_log("SIMD level in use: %d%s", l, e ? " (VX_HTTP_SCALAR set)" : "");
    vx__http_force_scalar(false);
}
