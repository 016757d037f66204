/* libFuzzer target: the HTTP request-head parser and the chunked decoder.
 *
 * The input is parsed as a request head at every SIMD level (the results
 * must agree exactly); a parsed head's slices must lie inside the input and
 * a prefix must not parse. The bytes after a chunked head (or, when the head
 * does not parse, the whole input) go through the chunked decoder in one
 * call, byte by byte and split in two: all three must agree. */
#define FUZZ_NAME "fuzz-http-parse"
#include "fuzz.h"
#include "http/parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void slice_inside(vx_http_slice s, const char *b, size_t n) {
    FUZZ_ASSERT(s.p >= b && s.n <= n && s.p - b <= (ptrdiff_t)(n - s.n));
}

static bool same_slice(vx_http_slice a, vx_http_slice b) { return a.p == b.p && a.n == b.n; }

static bool same_request(const vx_http_request *a, const vx_http_request *b) {
    if (a->method != b->method || !same_slice(a->method_name, b->method_name) ||
        !same_slice(a->target, b->target) || !same_slice(a->path, b->path) ||
        !same_slice(a->query, b->query) || a->minor != b->minor || a->nheaders != b->nheaders ||
        a->content_length != b->content_length || a->chunked != b->chunked ||
        a->keep_alive != b->keep_alive || a->expect_continue != b->expect_continue)
        return false;
    for (size_t i = 0; i < a->nheaders; i++)
        if (!same_slice(a->headers[i].name, b->headers[i].name) ||
            !same_slice(a->headers[i].value, b->headers[i].value))
            return false;
    return true;
}

static void check_head(const char *buf, size_t size, ssize_t rc, const vx_http_request *r, int st,
                       const char *why) {
    if (rc == VX_HTTP_INCOMPLETE)
        return;
    if (rc == VX_HTTP_ERROR) {
        FUZZ_ASSERT(why != NULL);
        FUZZ_ASSERT(st == 400 || st == 414 || st == 431 || st == 501 || st == 505);
        return;
    }
    FUZZ_ASSERT(rc > 0 && (size_t)rc <= size && rc <= VX_HTTP_MAX_HEAD);
    FUZZ_ASSERT(r->nheaders <= VX_HTTP_MAX_HEADERS);
    FUZZ_ASSERT(r->minor == 0 || r->minor == 1);
    FUZZ_ASSERT(!(r->chunked && r->content_length >= 0));
    slice_inside(r->method_name, buf, (size_t)rc);
    slice_inside(r->target, buf, (size_t)rc);
    slice_inside(r->path, buf, (size_t)rc);
    slice_inside(r->query, buf, (size_t)rc);
    FUZZ_ASSERT(r->method_name.n > 0 && r->target.n > 0);
    for (size_t i = 0; i < r->nheaders; i++) {
        slice_inside(r->headers[i].name, buf, (size_t)rc);
        slice_inside(r->headers[i].value, buf, (size_t)rc);
        FUZZ_ASSERT(r->headers[i].name.n > 0);
        FUZZ_ASSERT(vx_http_find_header(r, "host") != NULL || r->minor == 0);
    }
    /* helpers on the parsed pieces */
    char tmp[VX_HTTP_MAX_HEAD];
    ssize_t n = vx_http_url_decode(tmp, r->path.p, r->path.n, false);
    FUZZ_ASSERT(n == -1 || (size_t)n <= r->path.n);
    n = vx_http_url_decode(tmp, r->query.p, r->query.n, true);
    FUZZ_ASSERT(n == -1 || (size_t)n <= r->query.n);
    vx_http_slice v;
    static const char *keys[] = {"a", "b", "m", "", "a=b"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (vx_http_query_get(r->query, keys[i], &v))
            slice_inside(v, r->query.p, r->query.n);
}

/* Parse at every SIMD level; all must agree. Returns the scalar result. */
static ssize_t parse_all_levels(const char *buf, size_t size, vx_http_request *r) {
    static vx_http_request other;
    int st = 0, st2 = 0;
    const char *why = NULL, *why2 = NULL;
    vx__http_simd_cap(0);
    ssize_t rc = vx_http_parse_request(buf, size, r, &st, &why);
    check_head(buf, size, rc, r, st, why);
    for (int l = 1; l <= 2 && vx__http_simd_cap(l) == l; l++) {
        ssize_t rc2 = vx_http_parse_request(buf, size, &other, &st2, &why2);
        FUZZ_ASSERT(rc2 == rc);
        if (rc == VX_HTTP_ERROR)
            FUZZ_ASSERT(st2 == st && why2 == why);
        if (rc > 0)
            FUZZ_ASSERT(same_request(r, &other));
    }
    vx__http_force_scalar(false);
    /* a prefix never succeeds, and an error never turns into INCOMPLETE later */
    if (rc > 0 || rc == VX_HTTP_ERROR) {
        size_t cut = rc > 0 ? (size_t)rc - 1 : size / 2;
        char *p = malloc(cut ? cut : 1);
        FUZZ_ASSERT(p);
        memcpy(p, buf, cut);
        ssize_t rc2 = vx_http_parse_request(p, cut, &other, &st2, &why2);
        FUZZ_ASSERT(rc2 == VX_HTTP_INCOMPLETE || (rc == VX_HTTP_ERROR && rc2 == rc && st2 == st));
        free(p);
    }
    return rc;
}

typedef struct decoded {
    char *out;
    size_t outn, consumed;
    bool done, err;
    const char *why;
} decoded;

/* Decode body[0..n) delivered in pieces of at most step bytes, each piece in
 * its own exact-size allocation (so ASan sees any over-read). */
static void decode(const char *body, size_t n, size_t step, decoded *res) {
    vx_http_chunked d = {0};
    memset(res, 0, sizeof *res);
    res->out = malloc(n ? n : 1);
    char *carry = malloc(n ? n : 1);
    FUZZ_ASSERT(res->out && carry);
    size_t have = 0, pos = 0;
    while (!res->done && !res->err) {
        size_t add = n - pos < step ? n - pos : step;
        if (add == 0 && have == 0)
            break;
        memcpy(carry + have, body + pos, add);
        have += add;
        pos += add;
        char *piece = malloc(have ? have : 1);
        FUZZ_ASSERT(piece);
        memcpy(piece, carry, have);
        size_t out = 0;
        bool done = false;
        const char *why = NULL;
        ssize_t c = vx_http_chunked_decode(&d, piece, have, &out, &done, &why);
        if (c < 0) { /* *out still counts the data decoded before the error */
            FUZZ_ASSERT(c == VX_HTTP_ERROR && why != NULL && out <= have);
            memcpy(res->out + res->outn, piece, out);
            res->outn += out;
            res->err = true;
            res->why = why;
        } else {
            FUZZ_ASSERT((size_t)c <= have && out <= (size_t)c);
            memcpy(res->out + res->outn, piece, out);
            res->outn += out;
            res->consumed += (size_t)c;
            res->done = done;
            memmove(carry, piece + c, have - (size_t)c);
            have -= (size_t)c;
        }
        free(piece);
        if (c >= 0 && pos == n && !done)
            break; /* all bytes in, body incomplete */
    }
    free(carry);
}

static void check_chunked(const char *body, size_t n) {
    decoded a, b, c;
    decode(body, n, n ? n : 1, &a);
    decode(body, n, 1, &b);
    decode(body, n, n / 3 + 1, &c);
    const decoded *o[2] = {&b, &c};
    for (int i = 0; i < 2; i++) {
        FUZZ_ASSERT(o[i]->err == a.err && o[i]->why == a.why && o[i]->done == a.done);
        if (!a.err)
            FUZZ_ASSERT(o[i]->consumed == a.consumed);
        FUZZ_ASSERT(o[i]->outn == a.outn && memcmp(o[i]->out, a.out, a.outn) == 0);
    }
    FUZZ_ASSERT(a.outn <= a.consumed || a.err);
    free(a.out);
    free(b.out);
    free(c.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static vx_http_request r;
    const char *buf = (const char *)data;
    ssize_t rc = parse_all_levels(buf, size, &r);
    if (rc > 0 && r.chunked)
        check_chunked(buf + rc, size - (size_t)rc);
    else if (rc < 0)
        check_chunked(buf, size);
    return 0;
}
