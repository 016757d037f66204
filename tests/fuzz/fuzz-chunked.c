/* libFuzzer target: the incremental chunked-body decoder.
 *
 * Input: [k][k split bytes][body]. The body is decoded three ways, as the
 * server feeds it (each call sees the bytes the previous one left plus a new
 * piece, placed to end where its allocation ends so ASan sees over-reads):
 * in one call, in pieces of 1 + split[i % k] bytes, and byte by byte (up to
 * 4 KiB). Every way must give the same decoded bytes, the same verdict and
 * the same framing length, and agree with ref_decode(), a one-pass decoder
 * of RFC 9112 7.1 written here from the grammar with the limits vortex.h
 * states. Per call: consumed <= len, output <= consumed; once done, nothing
 * more is consumed; an error is sticky. */
#define FUZZ_NAME "fuzz-chunked"
#include "fuzz.h"
#include "vortex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { V_MORE, V_DONE, V_ERROR, V_EITHER };

/* ------------------------------------------------------ reference decoder */

#define REF_LINE_MAX 4096     /* a chunk-size line, its CR included */
#define REF_TRAILER_MAX 16384 /* the trailer section, final CRLF included */

/* Decoded bytes, verdict and framing length (bytes up to the final CRLF). */
typedef struct result {
    uint8_t *out;
    size_t outn, consumed;
    int verdict;
    const char *why;
} result;

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static bool tchar(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* field-vchar / obs-text / SP / HTAB: what chunk-ext and trailer values hold */
static bool vchar(int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

/* CRLF at b[p]: V_DONE (p moved past it), V_MORE or V_ERROR. */
static int crlf(const uint8_t *b, size_t n, size_t *p) {
    if (*p == n)
        return V_MORE;
    if (b[*p] != '\r')
        return V_ERROR;
    if (*p + 1 == n)
        return V_MORE;
    if (b[*p + 1] != '\n')
        return V_ERROR;
    *p += 2;
    return V_DONE;
}

/* chunk-size [ BWS ";" ext ] CRLF at *p. The line may not pass REF_LINE_MAX
 * bytes (CR included), whether or not it is complete yet. */
static int size_line(const uint8_t *b, size_t n, size_t *p, uint64_t *size) {
    size_t start = *p, q = *p;
    int v = V_DONE;
    *size = 0;
    while (q < n && hexval(b[q]) >= 0) {
        if (*size >> 60)
            v = V_ERROR;
        *size = *size << 4 | (uint64_t)hexval(b[q++]);
    }
    if (v != V_ERROR && q == start)
        v = q == n ? V_MORE : V_ERROR;
    if (v == V_DONE) {
        size_t ws = q;
        while (q < n && (b[q] == ' ' || b[q] == '\t'))
            q++;
        if (q < n && b[q] == ';') {
            while (q < n && b[q] != '\r' && vchar(b[q]))
                q++;
        } else if (q > ws && q < n) {
            v = V_ERROR; /* BWS is only allowed before an extension */
        }
        if (v == V_DONE && q < n && b[q] != '\r')
            v = V_ERROR;
    }
    size_t cr = q < n && b[q] == '\r' ? 1 : 0;
    if (q - start + cr > REF_LINE_MAX)
        return V_ERROR;
    if (v != V_DONE)
        return v;
    *p = q;
    return crlf(b, n, p);
}

/* *( field-line CRLF ) CRLF */
static int trailers(const uint8_t *b, size_t n, size_t *p) {
    size_t start = *p;
    int v;
    for (;;) {
        if (*p < n && b[*p] != '\r') {
            size_t q = *p;
            while (q < n && tchar(b[q]))
                q++;
            if (q < n && (q == *p || b[q] != ':'))
                return V_ERROR;
            while (++q < n && b[q] != '\r' && vchar(b[q]))
                ;
            *p = q < n ? q : n;
            if ((v = crlf(b, n, p)) != V_DONE)
                break;
            continue;
        }
        v = crlf(b, n, p);
        break;
    }
    /* The decoder counts a byte or two of framing around the section: a
     * verdict this close to the limit is not the reference's to judge. */
    size_t len = (v == V_ERROR ? *p + 1 : *p) - start;
    if (len + 2 >= REF_TRAILER_MAX && len <= REF_TRAILER_MAX + 2)
        return V_EITHER;
    return len > REF_TRAILER_MAX ? V_ERROR : v;
}

static void ref_decode(const uint8_t *b, size_t n, result *r) {
    size_t p = 0;
    uint64_t size;
    r->outn = 0;
    for (;;) {
        if ((r->verdict = size_line(b, n, &p, &size)) != V_DONE)
            return;
        if (size == 0)
            break;
        size_t take = n - p < size ? n - p : (size_t)size;
        memcpy(r->out + r->outn, b + p, take);
        r->outn += take;
        p += take;
        if (take < size) {
            r->verdict = V_MORE;
            return;
        }
        if ((r->verdict = crlf(b, n, &p)) != V_DONE)
            return;
    }
    r->verdict = trailers(b, n, &p);
    r->consumed = p;
}

/* --------------------------------------------------------- the decoder */

/* Room for a decoder call's bytes, placed so that they end where the
 * allocation ends: ASan sees a read past them without a malloc per call. */
typedef struct tail {
    uint8_t *mem;
    size_t cap;
} tail;

/* One call on a copy of buf[0..n) (n <= t->cap); appends the data to r.
 * Returns consumed or -1. */
static ssize_t call(vx_http_chunked *d, const tail *t, const uint8_t *buf, size_t n, result *r) {
    uint8_t *piece = t->mem + t->cap - n;
    memmove(piece, buf, n);
    size_t out = 7777;
    bool done = true;
    const char *why = NULL;
    ssize_t c = vx_http_chunked_decode(d, (char *)piece, n, &out, &done, &why);
    if (c < 0) {
        FUZZ_ASSERT(c == VX_HTTP_ERROR && why != NULL && out <= n && !done);
        r->why = why;
    } else {
        FUZZ_ASSERT((size_t)c <= n && out <= (size_t)c);
    }
    memcpy(r->out + r->outn, piece, out);
    r->outn += out;
    if (c >= 0 && done)
        r->verdict = V_DONE;
    return c;
}

/* Once done nothing is consumed; after an error every call fails. */
static void check_after(vx_http_chunked *d, const tail *t, const uint8_t *rest, size_t n,
                        const result *r) {
    result extra = {.out = malloc(n + 1)};
    FUZZ_ASSERT(extra.out);
    ssize_t c = call(d, t, rest, n, &extra);
    if (r->verdict == V_DONE)
        FUZZ_ASSERT(c == 0 && extra.verdict == V_DONE && extra.outn == 0);
    else
        FUZZ_ASSERT(c == VX_HTTP_ERROR && extra.outn == 0);
    free(extra.out);
}

/* Feed body[0..n) in pieces (sizes from split[], or all at once when k is 0),
 * each call getting the unconsumed bytes of the last one first. */
static void decode(const uint8_t *body, size_t n, const uint8_t *split, size_t k, bool bytewise,
                   result *r) {
    vx_http_chunked d = {0};
    uint8_t *carry = malloc(n ? n : 1);
    tail t = {malloc(n ? n : 1), n};
    FUZZ_ASSERT(carry && t.mem);
    size_t have = 0, pos = 0, i = 0;
    r->outn = r->consumed = 0;
    r->verdict = V_MORE;
    while (pos < n) {
        size_t step = bytewise ? 1 : k ? 1 + (size_t)split[i++ % k] : n;
        size_t add = n - pos < step ? n - pos : step;
        memcpy(carry + have, body + pos, add);
        have += add;
        pos += add;
        ssize_t c = call(&d, &t, carry, have, r);
        if (c < 0) {
            r->verdict = V_ERROR;
            break;
        }
        r->consumed += (size_t)c;
        memmove(carry, carry + c, have - (size_t)c);
        have -= (size_t)c;
        if (r->verdict == V_DONE)
            break;
        FUZZ_ASSERT(have == 0); /* not done: everything was framing or data */
    }
    if (r->verdict != V_MORE) {
        memcpy(carry + have, body + pos, n - pos);
        check_after(&d, &t, carry, have + n - pos, r);
    }
    free(carry);
    free(t.mem);
}

static void same(const result *a, const result *b) {
    FUZZ_ASSERT(a->verdict == b->verdict && a->why == b->why);
    FUZZ_ASSERT(a->outn == b->outn && memcmp(a->out, b->out, a->outn) == 0);
    if (a->verdict == V_DONE)
        FUZZ_ASSERT(a->consumed == b->consumed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    size_t k = data[0] % 8 < size - 1 ? data[0] % 8 : size - 1;
    const uint8_t *split = data + 1, *body = data + 1 + k;
    size_t n = size - 1 - k;
    result one = {.out = malloc(n + 1)}, pieces = {.out = malloc(n + 1)},
           bytes = {.out = malloc(n + 1)}, ref = {.out = malloc(n + 1)};
    FUZZ_ASSERT(one.out && pieces.out && bytes.out && ref.out);
    decode(body, n, split, 0, false, &one);
    decode(body, n, split, k, false, &pieces);
    same(&one, &pieces);
    if (n <= 4096) { /* longer ones (the limits) would make the fuzzer crawl */
        decode(body, n, split, 0, true, &bytes);
        same(&one, &bytes);
    }
    FUZZ_ASSERT(one.outn <= n && (one.verdict != V_DONE || one.outn <= one.consumed));

    ref_decode(body, n, &ref);
    if (ref.verdict != V_EITHER)
        FUZZ_ASSERT(one.verdict == ref.verdict);
    FUZZ_ASSERT(one.outn == ref.outn && memcmp(one.out, ref.out, ref.outn) == 0);
    if (one.verdict == V_DONE && ref.verdict == V_DONE)
        FUZZ_ASSERT(one.consumed == ref.consumed);
    free(one.out);
    free(pieces.out);
    free(bytes.out);
    free(ref.out);
    return 0;
}
