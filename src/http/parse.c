/* HTTP/1.1 request head parser and chunked-body decoder (RFC 9112).
 *
 * picohttpparser's shape: the head parser is a pure function of the bytes
 * received so far. It allocates nothing, keeps no state between calls, and
 * every string it returns is a slice of the caller's buffer; a caller that
 * gets VX_HTTP_INCOMPLETE simply calls again once more bytes have arrived
 * (O(n) per call, and a head is at most VX_HTTP_MAX_HEAD bytes). Errors are
 * found strictly left to right, so a prefix of a request yields either
 * INCOMPLETE or the very error the whole request yields.
 *
 * Scanning: every run of bytes (method, target, header name, header value up
 * to its CR) is found by one "skip while the byte is in class C" primitive.
 * It has three implementations chosen at run time: AVX2 (a 32-byte nibble
 * lookup, exact set membership), SSE4.2 (_mm_cmpestri with up to 8 byte
 * ranges, like picohttpparser; the ranges are a superset of the stop bytes,
 * and the 256-entry table has the last word on a stop) and scalar. Vector
 * loads never pass the end of the data, so the tail is always scalar.
 *
 * Strictness (where leniency lets two parsers disagree about framing):
 * bare LF or bare CR line endings, obs-fold, whitespace before a colon,
 * duplicate Content-Length (even identical), Content-Length with
 * Transfer-Encoding, Transfer-Encoding in HTTP/1.0, a missing (HTTP/1.1) or
 * repeated Host, and CONNECT (authority-form) are all 400. */
#include "http/parse.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ------------------------------------------------------------ byte classes */

enum { CL_TOKEN, CL_TARGET, CL_VALUE, CL_COUNT };

/* One class of bytes that may form a run; built once, read-only afterwards. */
typedef struct cclass {
    uint8_t ok[256]; /* 1: the byte continues the run */
    uint8_t lo[16];  /* AVX2: bit h of lo[l] set when byte (h << 4 | l) is ok, h < 8 */
    char ranges[16]; /* SSE4.2: inclusive [lo, hi] stop ranges, a superset of !ok */
    int nranges;     /* bytes of ranges in use */
} cclass;

static cclass classes[CL_COUNT];

#if defined(__x86_64__)
/* The AVX2 nibble tables (cclass.lo) and whether bytes >= 0x80 continue the
 * run, as constants: loads from const data stay hoisted across the parse,
 * where a load from classes[] would be repeated after every store into the
 * request (char-typed data may alias anything). http_init checks them
 * against the tables it builds. */
static const uint8_t avx2_lo[CL_COUNT][16] = {
    [CL_TOKEN] = {0xe8, 0xfc, 0xf8, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xf8, 0xf8, 0xf4, 0x54, 0xd0,
                  0x54, 0xf4, 0x70},
    [CL_TARGET] = {0xf8, 0xfc, 0xfc, 0xf8, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc,
                   0xfc, 0xfc, 0x7c},
    [CL_VALUE] = {0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfc, 0xfd, 0xfc, 0xfc, 0xfc,
                  0xfc, 0xfc, 0x7c},
};
static const bool avx2_high_ok[CL_COUNT] = {[CL_VALUE] = true}; /* obs-text in values */
#endif

/* tchar (RFC 9110 5.6.2) */
bool vx__http_is_tchar(int c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}
/* request-target: visible ASCII, no '#' (a fragment is never sent, RFC 9112 3.2) */
static bool is_target(int c) { return c > 0x20 && c < 0x7f && c != '#'; }
/* field-value bytes: field-vchar, SP, HTAB, obs-text */
static bool is_value(int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static void class_init(cclass *c, bool (*in)(int), const char *ranges, int nranges) {
    for (int b = 0; b < 256; b++) {
        c->ok[b] = in(b);
        if (c->ok[b] && b < 0x80)
            c->lo[b & 15] |= (uint8_t)(1u << (b >> 4));
    }
    memcpy(c->ranges, ranges, (size_t)nranges);
    c->nranges = nranges;
    for (int b = 0; b < 256; b++) { /* every stop byte must hit a range */
        bool hit = false;
        for (int i = 0; i < nranges; i += 2)
            hit |= b >= (uint8_t)ranges[i] && b <= (uint8_t)ranges[i + 1];
        assert(c->ok[b] || hit);
        (void)hit;
    }
}

/* ---------------------------------------------------------------- scanners */

static const char *scan_scalar(const char *p, const char *end, const cclass *c) {
    while (end - p >= 4) {
        if (!c->ok[(uint8_t)p[0]])
            return p;
        if (!c->ok[(uint8_t)p[1]])
            return p + 1;
        if (!c->ok[(uint8_t)p[2]])
            return p + 2;
        if (!c->ok[(uint8_t)p[3]])
            return p + 3;
        p += 4;
    }
    while (p < end && c->ok[(uint8_t)*p])
        p++;
    return p;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static const char *scan_sse42(const char *p, const char *end,
                                                                const cclass *c) {
    const __m128i r = _mm_loadu_si128((const __m128i *)(const void *)c->ranges);
    while (end - p >= 16) {
        __m128i b = _mm_loadu_si128((const __m128i *)(const void *)p);
        int i = _mm_cmpestri(r, c->nranges, b, 16,
                             _SIDD_UBYTE_OPS | _SIDD_CMP_RANGES | _SIDD_LEAST_SIGNIFICANT);
        if (i == 16) {
            p += 16;
            continue;
        }
        p += i;
        if (!c->ok[(uint8_t)*p])
            return p;
        p++; /* a range wider than the class (e.g. '|' in a token) */
    }
    return scan_scalar(p, end, c);
}

/* Nibble lookup (exact): byte b is in the class when lo[b & 15] has bit
 * (b >> 4) set; bytes >= 0x80 index the zero half of the high table. Bit i
 * of the result: byte i of b stops the run. */
__attribute__((target("avx2"))) static inline __m128i high_nibble_lut(void) {
    return _mm_setr_epi8(1, 2, 4, 8, 16, 32, 64, -128, 0, 0, 0, 0, 0, 0, 0, 0);
}

__attribute__((target("avx2"))) static inline uint32_t stop16(__m128i b, __m128i lo16,
                                                              uint32_t high_ok) {
    const __m128i hi16 = high_nibble_lut();
    __m128i in = _mm_and_si128(
        _mm_shuffle_epi8(lo16, _mm_and_si128(b, _mm_set1_epi8(0x0f))),
        _mm_shuffle_epi8(hi16, _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f))));
    uint32_t stop = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(in, _mm_setzero_si128()));
    return stop & ~((uint32_t)_mm_movemask_epi8(b) & high_ok);
}

/* Runs are mostly short (header values), so one 16-byte step comes first.
 * Fewer than 16 bytes before end are read with one load that ends at end
 * and starts before p (base..end is readable), the bits before p dropped;
 * only a buffer shorter than 16 bytes goes byte by byte. */
__attribute__((target("avx2"))) static const char *scan_avx2(const char *p, const char *end,
                                                             int cls, const char *base) {
    const cclass *c = &classes[cls]; /* for the scalar rest of a tiny buffer */
    const __m128i lo16 = _mm_loadu_si128((const __m128i *)(const void *)avx2_lo[cls]);
    const uint32_t high_ok = avx2_high_ok[cls] ? 0xffffffffu : 0; /* 0x80..0xff all alike */
    uint32_t stop;
    if (end - p >= 16) {
        if ((stop = stop16(_mm_loadu_si128((const __m128i *)(const void *)p), lo16, high_ok)))
            return p + __builtin_ctz(stop);
        p += 16;
        const __m256i lo_lut = _mm256_broadcastsi128_si256(lo16);
        const __m256i hi_lut = _mm256_broadcastsi128_si256(high_nibble_lut());
        const __m256i nib = _mm256_set1_epi8(0x0f);
        while (end - p >= 32) {
            __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)p);
            __m256i l = _mm256_shuffle_epi8(lo_lut, _mm256_and_si256(b, nib));
            __m256i h = _mm256_shuffle_epi8(hi_lut, _mm256_and_si256(_mm256_srli_epi16(b, 4), nib));
            __m256i in = _mm256_and_si256(l, h);
            stop = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(in, _mm256_setzero_si256()));
            stop &= ~((uint32_t)_mm256_movemask_epi8(b) & high_ok);
            if (stop)
                return p + __builtin_ctz(stop);
            p += 32;
        }
        if (end - p >= 16) {
            if ((stop = stop16(_mm_loadu_si128((const __m128i *)(const void *)p), lo16, high_ok)))
                return p + __builtin_ctz(stop);
            p += 16;
        }
    }
    if (p == end || end - base < 16)
        return scan_scalar(p, end, c);
    const char *q = end - 16;
    stop = stop16(_mm_loadu_si128((const __m128i *)(const void *)q), lo16, high_ok) >> (p - q);
    return stop ? p + __builtin_ctz(stop) : end;
}
#endif

/* ------------------------------------------------------- run-time selection */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_best;       /* best level this CPU has: 0 scalar, 1 SSE4.2, 2 AVX2 */
static int g_level = -1; /* level in use (atomic: tests may change it); -1 before init */

static void http_init(void) {
    class_init(&classes[CL_TOKEN], vx__http_is_tchar, "\x00\x20\"\"(),,//:@[]{\xff", 16);
    class_init(&classes[CL_TARGET], is_target, "\x00\x20##\x7f\xff", 6);
    class_init(&classes[CL_VALUE], is_value, "\x00\x08\x0a\x1f\x7f\x7f", 6);
#if defined(__x86_64__)
    for (int i = 0; i < CL_COUNT; i++) { /* the constants must say what the classes say */
        bool same = !memcmp(avx2_lo[i], classes[i].lo, 16);
        for (int b = 0x80; b < 0x100; b++)
            same &= classes[i].ok[b] == avx2_high_ok[i];
        if (!same) {
            fprintf(stderr, "vortex: parse.c: avx2_lo/avx2_high_ok disagree with class %d\n", i);
            abort();
        }
    }
#endif
    int best = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2"))
        best = __builtin_cpu_supports("avx2") ? 2 : 1;
#endif
    const char *env = getenv("VX_HTTP_SCALAR");
    if (env && strcmp(env, "1") == 0)
        best = 0; /* a hard cap: the test hooks cannot lift it */
    g_best = best;
    __atomic_store_n(&g_level, best, __ATOMIC_RELEASE); /* the classes are built */
}

/* No pthread_once on the request path once initialised. */
static int http_level(void) {
    int level = __atomic_load_n(&g_level, __ATOMIC_ACQUIRE);
    if (__builtin_expect(level < 0, 0)) {
        pthread_once(&g_once, http_init);
        level = __atomic_load_n(&g_level, __ATOMIC_ACQUIRE);
    }
    return level;
}

int vx__http_simd_cap(int level) {
    pthread_once(&g_once, http_init);
    if (level > g_best)
        level = g_best;
    if (level < 0)
        level = 0;
    __atomic_store_n(&g_level, level, __ATOMIC_RELAXED);
    return level;
}

void vx__http_force_scalar(bool on) { vx__http_simd_cap(on ? 0 : 2); }

/* ------------------------------------------------------------- head parser */

/* One parse call: the bound and how running into it is reported. */
typedef struct ctx {
    const char *buf;  /* the data's start: [buf, hend) may be read in any order */
    const char *hend; /* the data's end, or VX_HTTP_MAX_HEAD bytes in */
    bool capped;      /* more data lies past hend: reaching it means 431 */
    int level;
    int *status;
    const char **why;
} ctx;

static const char *scan(const ctx *x, const char *p, const char *end, int cls) {
    const cclass *c = &classes[cls];
#if defined(__x86_64__)
    if (x->level == 2)
        return scan_avx2(p, end, cls, x->buf);
    if (x->level == 1)
        return scan_sse42(p, end, c);
#else
    (void)x;
#endif
    return scan_scalar(p, end, c);
}

static ssize_t fail(const ctx *x, int status, const char *why) {
    *x->status = status;
    *x->why = why;
    return VX_HTTP_ERROR;
}

/* Out of bytes before the head ended. */
static ssize_t starve(const ctx *x) {
    return x->capped ? fail(x, 431, "request header section too large") : VX_HTTP_INCOMPLETE;
}

static uint64_t load8(const char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t load4(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* s equals the lowercase literal lit, ignoring ASCII case. */
static bool ieq(vx_http_slice s, const char *lit) {
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((uint8_t)s.p[i]) != lit[i])
            return false;
    return true;
}

static vx_http_slice trim_ows(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (vx_http_slice){p, (size_t)(end - p)};
}

/* Next element of a comma-separated list in [*p, end), OWS trimmed (may be
 * empty); false when the list is exhausted. */
static bool list_next(const char **p, const char *end, vx_http_slice *el) {
    if (!*p)
        return false;
    const char *c = memchr(*p, ',', (size_t)(end - *p));
    *el = trim_ows(*p, c ? c : end);
    *p = c ? c + 1 : NULL;
    return true;
}

static vx_http_method method_of(vx_http_slice m) {
    static const struct {
        const char *name;
        vx_http_method m;
    } tab[] = {{"GET", VX_HTTP_GET},     {"HEAD", VX_HTTP_HEAD},       {"POST", VX_HTTP_POST},
               {"PUT", VX_HTTP_PUT},     {"DELETE", VX_HTTP_DELETE},   {"OPTIONS", VX_HTTP_OPTIONS},
               {"PATCH", VX_HTTP_PATCH}, {"CONNECT", VX_HTTP_CONNECT}, {"TRACE", VX_HTTP_TRACE}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].name) == m.n && memcmp(tab[i].name, m.p, m.n) == 0)
            return tab[i].m;
    return VX_HTTP_OTHER;
}

/* Target forms (RFC 9112 3.2): origin, absolute (http/https), asterisk. */
static ssize_t split_target(const ctx *x, vx_http_request *req) {
    const char *t = req->target.p, *end = t + req->target.n, *path = t;
    if (req->method == VX_HTTP_CONNECT)
        return fail(x, 400, "CONNECT (authority-form) not supported");
    if (*t == '*' && req->target.n == 1) {
        if (req->method != VX_HTTP_OPTIONS)
            return fail(x, 400, "asterisk-form target outside OPTIONS");
    } else if (*t != '/') {
        size_t skip = 0;
        if (req->target.n > 7 && ieq((vx_http_slice){t, 7}, "http://"))
            skip = 7;
        else if (req->target.n > 8 && ieq((vx_http_slice){t, 8}, "https://"))
            skip = 8;
        if (!skip)
            return fail(x, 400, "invalid request target");
        const char *a = t + skip;
        for (path = a; path < end && *path != '/' && *path != '?'; path++)
            if (*path == '@')
                return fail(x, 400, "userinfo in absolute-form target");
        if (path == a)
            return fail(x, 400, "empty authority in absolute-form target");
    }
    const char *q = memchr(path, '?', (size_t)(end - path));
    req->path = (vx_http_slice){path, (size_t)((q ? q : end) - path)};
    req->query = q ? (vx_http_slice){q + 1, (size_t)(end - q - 1)} : (vx_http_slice){end, 0};
    return 0;
}

/* method SP request-target SP HTTP-version CRLF; the line without its CRLF
 * is at most VX_HTTP_MAX_LINE bytes, and 414 comes as soon as that is known. */
static ssize_t parse_request_line(const ctx *x, const char **pp, vx_http_request *req) {
    const char *p = *pp;
    bool line_capped = (size_t)(x->hend - p) > VX_HTTP_MAX_LINE;
    const char *e = line_capped ? p + VX_HTTP_MAX_LINE + 1 : x->hend;
#define OUT_OF_LINE() (line_capped ? fail(x, 414, "request line too long") : starve(x))
    const char *q;
    if (e - p > 4 && load4(p) == load4("GET ")) { /* most requests: no scan, no lookup */
        req->method_name = (vx_http_slice){p, 3};
        req->method = VX_HTTP_GET;
        p += 4;
    } else {
        q = scan(x, p, e, CL_TOKEN);
        if (q == e)
            return OUT_OF_LINE();
        if (*q != ' ' || q == p)
            return fail(x, 400, "invalid method");
        req->method_name = (vx_http_slice){p, (size_t)(q - p)};
        req->method = method_of(req->method_name);
        p = q + 1;
    }
    q = scan(x, p, e, CL_TARGET);
    if (q == e)
        return OUT_OF_LINE();
    if (*q != ' ')
        return fail(x, 400,
                    *q == '\r' || *q == '\n' ? "missing HTTP version"
                    : *q == '#'              ? "fragment ('#') in request target"
                                             : "invalid character in request target");
    if (q == p)
        return fail(x, 400, "empty request target");
    req->target = (vx_http_slice){p, (size_t)(q - p)};
    p = q + 1;
    /* "HTTP/1.1" CRLF wholly inside the line bound: the byte loop below would
     * accept it, so one compare decides. */
    if (e - p >= 10 && load8(p) == load8("HTTP/1.1") && p[8] == '\r' && p[9] == '\n') {
        req->minor = 1;
        *pp = p + 10;
        return split_target(x, req);
    }
    for (int i = 0; i < 8; i++) { /* HTTP/D.D, byte by byte so a prefix decides nothing */
        if (p + i == e)
            return OUT_OF_LINE();
        char c = p[i];
        if ((i == 5 || i == 7) ? !(c >= '0' && c <= '9') : c != "HTTP/1.1"[i])
            return fail(x, 400, "invalid HTTP version");
    }
    if (p + 8 == e)
        return OUT_OF_LINE();
#undef OUT_OF_LINE
    if (p[8] != '\r')
        return fail(x, 400, p[8] == '\n' ? "bare LF line ending" : "invalid HTTP version");
    if (p + 9 == x->hend)
        return starve(x);
    if (p[9] != '\n')
        return fail(x, 400, "bare CR in request line");
    if (p[5] != '1' || p[7] > '1')
        return fail(x, 505, "unsupported HTTP version");
    req->minor = p[7] - '0';
    *pp = p + 10;
    return split_target(x, req);
}

/* The fields that frame a message, noted while the header section is parsed
 * so that apply_framing() needs no second pass over the fields. */
typedef struct framing {
    int hosts, cls;
    const vx_http_header *cl; /* the (last) Content-Length */
    bool te, close, keep, expect;
} framing;

/* p[0..n) equals the lowercase literal lit (letters and '-', 4 <= n), ignoring
 * ASCII case: OR 0x20 maps exactly A-Z onto a-z and only CR (never in a field
 * line) onto '-', so a word compare is exact. Overlapping loads, no loop. */
static bool fold_eq(const char *p, const char *lit, size_t n) {
    if (n < 8)
        return ((load4(p) | 0x20202020u) ^ load4(lit)) == 0 &&
               ((load4(p + n - 4) | 0x20202020u) ^ load4(lit + n - 4)) == 0;
    const uint64_t f = 0x2020202020202020ull;
    for (size_t i = 0; i + 8 < n; i += 8)
        if ((load8(p + i) | f) != load8(lit + i))
            return false;
    return (load8(p + n - 8) | f) == load8(lit + n - 8);
}

/* Comma-separated Connection options: close and keep-alive. */
static void connection_options(vx_http_slice v, framing *f) {
    if (v.n == 10 && fold_eq(v.p, "keep-alive", 10)) {
        f->keep = true;
        return;
    }
    if (v.n == 5 && fold_eq(v.p, "close", 5)) {
        f->close = true;
        return;
    }
    const char *p = v.p, *end = p + v.n;
    vx_http_slice el;
    while (list_next(&p, end, &el)) {
        f->close |= ieq(el, "close");
        f->keep |= ieq(el, "keep-alive");
    }
}

static void note_field(framing *f, const vx_http_header *h) {
    const char *n = h->name.p;
    switch (h->name.n) {
    case 4:
        f->hosts += fold_eq(n, "host", 4);
        break;
    case 6:
        if (fold_eq(n, "expect", 6))
            f->expect |= ieq(h->value, "100-continue");
        break;
    case 10:
        if (fold_eq(n, "connection", 10))
            connection_options(h->value, f);
        break;
    case 14:
        if (fold_eq(n, "content-length", 14)) {
            f->cls++;
            f->cl = h;
        }
        break;
    case 17:
        f->te |= fold_eq(n, "transfer-encoding", 17);
        break;
    }
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* *( field-line CRLF ) CRLF */
static ssize_t parse_headers(const ctx *x, const char **pp, vx_http_request *req, framing *f) {
    const char *p = *pp, *end = x->hend;
    for (;;) {
        if (p == end)
            return starve(x);
        if (*p == '\r') {
            if (p + 1 == end)
                return starve(x);
            if (p[1] != '\n')
                return fail(x, 400, "bare CR in header section");
            *pp = p + 2;
            return 0;
        }
        if (*p == '\n')
            return fail(x, 400, "bare LF line ending");
        if (is_ows(*p))
            return fail(x, 400, "obs-fold in header");
        if (req->nheaders == VX_HTTP_MAX_HEADERS)
            return fail(x, 431, "too many header fields");
        const char *q = scan(x, p, end, CL_TOKEN);
        if (q == end)
            return starve(x);
        if (*q != ':')
            return fail(x, 400,
                        is_ows(*q) ? "whitespace before colon in header"
                                   : "invalid character in header name");
        if (q == p)
            return fail(x, 400, "empty header name");
        vx_http_header *h = &req->headers[req->nheaders];
        h->name = (vx_http_slice){p, (size_t)(q - p)};
        p = q + 1;
        while (p < end && is_ows(*p)) /* leading OWS (value bytes, so no early verdict) */
            p++;
        q = scan(x, p, end, CL_VALUE);
        if (q == end)
            return starve(x);
        if (*q != '\r')
            return fail(x, 400,
                        *q == '\n' ? "bare LF line ending" : "invalid character in header value");
        if (q + 1 == end)
            return starve(x);
        if (q[1] != '\n')
            return fail(x, 400, "bare CR in header value");
        const char *ve = q;
        while (ve > p && is_ows(ve[-1]))
            ve--;
        h->value = (vx_http_slice){p, (size_t)(ve - p)};
        req->nheaders++;
        note_field(f, h);
        p = q + 2;
    }
}

/* Transfer-Encoding, all lines in order: exactly one coding, "chunked". */
static ssize_t check_te(const ctx *x, const vx_http_request *req) {
    size_t n = 0;
    bool chunked_seen = false, other = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const vx_http_header *h = &req->headers[i];
        if (!ieq(h->name, "transfer-encoding"))
            continue;
        const char *p = h->value.p, *end = p + h->value.n;
        vx_http_slice el;
        while (list_next(&p, end, &el)) {
            if (el.n == 0)
                return fail(x, 400, "empty element in Transfer-Encoding");
            if (chunked_seen)
                return fail(x, 400, "chunked is not the final transfer coding");
            n++;
            if (ieq(el, "chunked"))
                chunked_seen = true;
            else
                other = true;
        }
    }
    if (other)
        return fail(x, 501, "unsupported transfer coding");
    return n == 1 && chunked_seen ? 0 : fail(x, 400, "invalid Transfer-Encoding");
}

/* 1*DIGIT, at most INT64_MAX. */
static int64_t parse_length(vx_http_slice v) {
    if (v.n == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        int d = v.p[i] - '0';
        if (d < 0 || d > 9 || n > (INT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    return n;
}

/* Message framing and connection semantics (RFC 9112 6, 9.3). */
static ssize_t apply_framing(const ctx *x, vx_http_request *req, const framing *f) {
    if (f->hosts > 1)
        return fail(x, 400, "duplicate Host");
    if (f->hosts == 0 && req->minor == 1)
        return fail(x, 400, "missing Host");
    if (f->te) {
        if (req->minor == 0)
            return fail(x, 400, "Transfer-Encoding in HTTP/1.0");
        if (f->cls)
            return fail(x, 400, "Content-Length and Transfer-Encoding both present");
        ssize_t rc = check_te(x, req);
        if (rc < 0)
            return rc;
        req->chunked = true;
    } else if (f->cls) {
        if (f->cls > 1)
            return fail(x, 400, "duplicate Content-Length");
        req->content_length = parse_length(f->cl->value);
        if (req->content_length < 0)
            return fail(x, 400, "invalid Content-Length");
    }
    req->keep_alive = req->minor == 1 ? !f->close : f->keep && !f->close;
    req->expect_continue = f->expect && req->minor == 1;
    return 0;
}

/* The whole parse for one SIMD level, a constant once inlined. */
static inline ssize_t parse_head(const char *buf, size_t len, vx_http_request *req, int *status,
                                 const char **why, int level) {
    ctx x = {
        .buf = buf,
        .hend = buf + (len > VX_HTTP_MAX_HEAD ? VX_HTTP_MAX_HEAD : len),
        .capped = len > VX_HTTP_MAX_HEAD,
        .level = level,
        .status = status,
        .why = why,
    };
    req->method = VX_HTTP_OTHER;
    req->method_name = req->target = req->path = req->query = (vx_http_slice){buf, 0};
    req->minor = 1;
    req->nheaders = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = false;

    const char *p = buf;
    for (;;) { /* empty lines before the request line (RFC 9112 2.2) */
        if (p == x.hend)
            return starve(&x);
        if (*p != '\r')
            break;
        if (p + 1 == x.hend)
            return starve(&x);
        if (p[1] != '\n')
            return fail(&x, 400, "bare CR before request line");
        p += 2;
    }
    framing f = {0};
    ssize_t rc = parse_request_line(&x, &p, req);
    if (rc == 0)
        rc = parse_headers(&x, &p, req, &f);
    if (rc == 0)
        rc = apply_framing(&x, req, &f);
    if (rc < 0) {
        req->keep_alive = false;
        return rc;
    }
    return p - buf;
}

/* One copy of the parser per level, each with every scan inlined (flatten),
 * so the vector constants stay in registers across a whole head. */
__attribute__((flatten)) static ssize_t
parse_scalar(const char *buf, size_t len, vx_http_request *req, int *status, const char **why) {
    return parse_head(buf, len, req, status, why, 0);
}

#if defined(__x86_64__)
__attribute__((flatten, target("sse4.2"))) static ssize_t
parse_sse42(const char *buf, size_t len, vx_http_request *req, int *status, const char **why) {
    return parse_head(buf, len, req, status, why, 1);
}

__attribute__((flatten, target("avx2"))) static ssize_t
parse_avx2(const char *buf, size_t len, vx_http_request *req, int *status, const char **why) {
    return parse_head(buf, len, req, status, why, 2);
}
#endif

ssize_t vx_http_parse_request(const char *buf, size_t len, vx_http_request *req, int *status,
                              const char **why) {
#if defined(__x86_64__)
    int level = http_level();
    if (level == 2)
        return parse_avx2(buf, len, req, status, why);
    if (level == 1)
        return parse_sse42(buf, len, req, status, why);
#endif
    return parse_scalar(buf, len, req, status, why);
}

/* ---------------------------------------------------------- chunked bodies */

#define CHUNK_LINE_MAX (4 * 1024)
#define TRAILER_MAX (16 * 1024)

enum {
    C_SIZE0,   /* first hex digit of a chunk-size (the zero state) */
    C_SIZE,    /* more hex digits */
    C_SIZE_WS, /* BWS after the size: only SP/HTAB or ';' */
    C_EXT,     /* chunk-ext, skipped up to CR */
    C_SIZE_LF, /* LF ending the size line */
    C_DATA,    /* left bytes of data */
    C_DATA_CR, /* CRLF after the data */
    C_DATA_LF,
    C_TR_START, /* start of a trailer line, or the final CRLF */
    C_TR_NAME,
    C_TR_VALUE,
    C_TR_LF,
    C_END_LF,
    C_DONE,
    C_ERROR,
};

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Advance the decoder over one framing byte; NULL or the reason it is bad. */
static const char *chunk_step(vx_http_chunked *d, int c) {
    int v;
    switch (d->state) {
    case C_SIZE0:
    case C_SIZE:
        v = hexval(c);
        if (v >= 0) {
            if (d->left >> 60)
                return "chunk size overflow";
            d->left = d->left << 4 | (uint64_t)v;
            d->state = C_SIZE;
            return NULL;
        }
        if (d->state == C_SIZE0)
            return "invalid chunk size";
        __attribute__((fallthrough)); /* after at least one digit */
    case C_SIZE_WS:
        if (c == ' ' || c == '\t')
            d->state = C_SIZE_WS;
        else if (c == ';')
            d->state = C_EXT;
        else if (c == '\r' && d->state == C_SIZE)
            d->state = C_SIZE_LF;
        else
            return c == '\n' ? "bare LF in chunked body" : "invalid chunk size line";
        return NULL;
    case C_EXT:
        if (c == '\r')
            d->state = C_SIZE_LF;
        else if (c == '\n')
            return "bare LF in chunked body";
        else if (!classes[CL_VALUE].ok[c])
            return "invalid character in chunk extension";
        return NULL;
    case C_SIZE_LF:
        if (c != '\n')
            return "bare CR in chunked body";
        d->state = d->left ? C_DATA : C_TR_START;
        d->line_bytes = 0;
        return NULL;
    case C_DATA_CR:
        if (c != '\r')
            return "chunk data not followed by CRLF";
        d->state = C_DATA_LF;
        return NULL;
    case C_DATA_LF:
        if (c != '\n')
            return "chunk data not followed by CRLF";
        d->state = C_SIZE0;
        return NULL;
    case C_TR_START:
        if (c == '\r')
            d->state = C_END_LF;
        else if (c == '\n')
            return "bare LF in chunked body";
        else if (c == ' ' || c == '\t')
            return "obs-fold in trailer";
        else if (!classes[CL_TOKEN].ok[c])
            return "invalid trailer field name";
        else
            d->state = C_TR_NAME;
        return NULL;
    case C_TR_NAME:
        if (c == ':')
            d->state = C_TR_VALUE;
        else if (!classes[CL_TOKEN].ok[c])
            return c == ' ' || c == '\t' ? "whitespace before colon in trailer"
                                         : "invalid trailer field name";
        return NULL;
    case C_TR_VALUE:
        if (c == '\r')
            d->state = C_TR_LF;
        else if (!classes[CL_VALUE].ok[c])
            return c == '\n' ? "bare LF in chunked body" : "invalid character in trailer value";
        return NULL;
    case C_TR_LF:
    case C_END_LF:
        if (c != '\n')
            return "bare CR in chunked body";
        d->state = d->state == C_TR_LF ? C_TR_START : C_DONE;
        return NULL;
    default:
        return "chunked decoder misuse";
    }
}

ssize_t vx_http_chunked_decode(vx_http_chunked *d, char *buf, size_t len, size_t *out, bool *done,
                               const char **why) {
    pthread_once(&g_once, http_init); /* the byte classes */
    size_t r = 0, w = 0;
    *out = 0;
    *done = false;
    if (d->state == C_ERROR) {
        *why = "chunked decoder already failed";
        return VX_HTTP_ERROR;
    }
    while (r < len && d->state != C_DONE) {
        if (d->state == C_DATA) {
            size_t n = len - r < d->left ? len - r : (size_t)d->left;
            if (w != r)
                memmove(buf + w, buf + r, n);
            w += n;
            r += n;
            d->left -= n;
            if (d->left == 0)
                d->state = C_DATA_CR;
            continue;
        }
        const char *err = chunk_step(d, (uint8_t)buf[r]);
        /* C_SIZE0 is only re-entered by the LF ending a chunk's data: not part
         * of the next size line, whose limit must not depend on its position. */
        if (!err && d->state >= C_SIZE && d->state <= C_SIZE_LF && ++d->line_bytes > CHUNK_LINE_MAX)
            err = "chunk size line too long";
        if (!err && d->state >= C_TR_START && ++d->trailer_bytes > TRAILER_MAX)
            err = "trailer section too large";
        if (err) {
            d->state = C_ERROR;
            *out = w;
            *why = err;
            return VX_HTTP_ERROR;
        }
        r++;
    }
    *out = w;
    *done = d->state == C_DONE;
    return (ssize_t)r;
}

/* ------------------------------------------------------------------ helpers */

const vx_http_header *vx_http_find_header(const vx_http_request *req, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const vx_http_header *h = &req->headers[i];
        if (h->name.n != n)
            continue;
        size_t j = 0;
        while (j < n && lower((uint8_t)h->name.p[j]) == lower((uint8_t)name[j]))
            j++;
        if (j == n)
            return h;
    }
    return NULL;
}

ssize_t vx_http_url_decode(char *dst, const char *src, size_t n, bool form) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((uint8_t)src[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((uint8_t)src[i + 2]) : -1;
            if (lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        dst[w++] = c;
    }
    return (ssize_t)w;
}

bool vx_http_query_get(vx_http_slice query, const char *key, vx_http_slice *value) {
    size_t kn = strlen(key);
    const char *p = query.p, *end = query.p + query.n;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        if ((size_t)(ke - p) == kn && memcmp(p, key, kn) == 0) {
            *value = eq ? (vx_http_slice){eq + 1, (size_t)(e - eq - 1)} : (vx_http_slice){e, 0};
            return true;
        }
        p = e + 1;
    }
    return false;
}
