/* libFuzzer target: our request parser and chunked decoder against Debian's
 * libhttp-parser (2.9, built non-strict), message by message over pipelined
 * input. Where both accept a head they must agree on its length, method,
 * target, version, every header name and value, Content-Length, chunked,
 * keep-alive; then on the body bytes and where the message ends.
 *
 * They disagree on purpose in a listed set of cases (tests/fuzz/README.md):
 * every disagreement must match one exemption below, and each exemption
 * checks its claim on the raw bytes (a reason we give must really be in the
 * input), so "we reject for reason X" cannot hide another bug. We may reject
 * what libhttp-parser accepts (stricter, for smuggling safety); accepting
 * what it rejects needs an exemption of its own. VX_FUZZ_DIFF_STATS=1 prints
 * how often each exemption was used. */
#define FUZZ_NAME "fuzz-http-diff"
#include "fuzz.h"
#include "vortex.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 8
#define LIB_HEADERS 128

/* ------------------------------------------------------ libhttp-parser side */

typedef struct span {
    size_t off, n; /* into the arena */
} span;

enum { L_NONE, L_HEAD, L_BODY, L_DONE, L_ERROR };

/* One message as libhttp-parser saw it; offsets are into the input. */
typedef struct lib_msg {
    int state, err_in; /* err_in: the state the error interrupted */
    enum http_errno err;
    size_t start, head_end, end, err_at;
    unsigned method, major, minor, flags;
    uint64_t cl;
    bool keep_alive, upgrade, in_trailers, last_was_value;
    span url, body;
    span names[LIB_HEADERS], values[LIB_HEADERS];
    size_t nheaders;
} lib_msg;

typedef struct lib_run {
    char *arena;
    size_t used;
    lib_msg msgs[MAX_MSGS];
    int n; /* messages begun or errored */
    size_t pos;
} lib_run;

static lib_msg *cur(http_parser *p) {
    lib_run *r = p->data;
    return &r->msgs[r->n - 1];
}

static void append(http_parser *p, span *s, const char *at, size_t n) {
    lib_run *r = p->data;
    if (s->n == 0)
        s->off = r->used;
    FUZZ_ASSERT(s->off + s->n == r->used); /* pieces of one string are consecutive */
    memcpy(r->arena + r->used, at, n);
    r->used += n;
    s->n += n;
}

static int on_begin(http_parser *p) {
    cur(p)->state = L_HEAD;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
    append(p, &cur(p)->url, at, n);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n) {
    lib_msg *m = cur(p);
    if (m->in_trailers)
        return 0; /* trailers are parsed and dropped, as we do */
    if (m->last_was_value || m->nheaders == 0)
        m->nheaders++;
    m->last_was_value = false;
    if (m->nheaders <= LIB_HEADERS)
        append(p, &m->names[m->nheaders - 1], at, n);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t n) {
    lib_msg *m = cur(p);
    if (m->in_trailers)
        return 0;
    m->last_was_value = true;
    if (m->nheaders <= LIB_HEADERS)
        append(p, &m->values[m->nheaders - 1], at, n);
    return 0;
}

static int on_headers(http_parser *p) {
    lib_msg *m = cur(p);
    m->state = L_BODY;
    m->in_trailers = true;
    m->method = p->method;
    m->major = p->http_major;
    m->minor = p->http_minor;
    m->flags = p->flags;
    m->cl = p->content_length;
    m->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1); /* to note where the head ends */
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
    append(p, &cur(p)->body, at, n);
    return 0;
}

static int on_complete(http_parser *p) {
    cur(p)->state = L_DONE;
    cur(p)->upgrade = p->upgrade;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings lib_settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static void lib_next(lib_run *r, size_t start) {
    lib_msg *m = &r->msgs[r->n++];
    memset(m, 0, sizeof *m);
    m->start = start;
}

/* Parse the whole input once, pausing at each head's end and message's end. */
static void lib_parse(lib_run *r, const char *buf, size_t size) {
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = r;
    r->n = 0;
    r->used = 0;
    lib_next(r, 0);
    size_t off = 0;
    for (;;) {
        size_t got = http_parser_execute(&p, &lib_settings, buf + off, size - off);
        enum http_errno e = HTTP_PARSER_ERRNO(&p);
        lib_msg *m = cur(&p);
        if (e == HPE_PAUSED) {
            if (m->state == L_BODY && m->head_end == 0)
                m->head_end = off + got + 1; /* the head's last LF is not consumed yet */
            off += got;
            http_parser_pause(&p, 0);
            if (m->state == L_DONE) {
                m->end = off;
                if (!m->keep_alive || m->upgrade || r->n == MAX_MSGS)
                    return;
                lib_next(r, off);
            }
            continue;
        }
        if (e != HPE_OK) {
            m->err_in = m->state;
            m->state = L_ERROR;
            m->err = e;
            m->err_at = off + got; /* the byte it stopped at */
        }
        return;
    }
}

/* ---------------------------------------------------------- raw-byte facts */

/* The bytes a verdict is about: input[start, end). */
typedef struct region {
    const uint8_t *p;
    size_t n;
} region;

static bool tchar(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int hexval_of(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* p[0..n) is lit, ignoring ASCII case. */
static bool ieq(const uint8_t *p, size_t n, const char *lit) {
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != lower((uint8_t)lit[i]))
            return false;
    return true;
}

/* Leading CR/LF bytes that are not all CRLF pairs (libhttp-parser skips any). */
static bool junk_before_line(region r) {
    size_t i = 0;
    while (i < r.n && (r.p[i] == '\r' || r.p[i] == '\n')) {
        if (r.p[i] != '\r' || i + 1 == r.n || r.p[i + 1] != '\n')
            return i + 1 < r.n || r.p[i] == '\n';
        i += 2;
    }
    return false;
}

static size_t skip_crlfs(region r) {
    size_t i = 0;
    while (i < r.n && (r.p[i] == '\r' || r.p[i] == '\n'))
        i++;
    return i;
}

static bool bare_lf(region r) {
    for (size_t i = 0; i < r.n; i++)
        if (r.p[i] == '\n' && (i == 0 || r.p[i - 1] != '\r'))
            return true;
    return false;
}

static bool bare_cr(region r) {
    for (size_t i = 0; i + 1 < r.n; i++)
        if (r.p[i] == '\r' && r.p[i + 1] != '\n')
            return true;
    return false;
}

/* The request line: method, target and version as split at single spaces. */
typedef struct line {
    region all, method, target, version;
    int spaces;
    bool double_space;
} line;

static line request_line(region r) {
    line l = {0};
    size_t s = skip_crlfs(r), e = s;
    while (e < r.n && r.p[e] != '\r' && r.p[e] != '\n')
        e++;
    l.all = (region){r.p + s, e - s};
    region *parts[3] = {&l.method, &l.target, &l.version};
    size_t b = s;
    for (size_t i = s; i <= e; i++) {
        if (i < e && r.p[i] != ' ')
            continue;
        if (l.spaces < 3)
            *parts[l.spaces] = (region){r.p + b, i - b};
        if (i < e) {
            l.double_space |= i + 1 < e && r.p[i + 1] == ' ';
            l.spaces++;
        }
        b = i + 1;
    }
    return l;
}

/* Each header line of the head (after the request line), split at LF. */
typedef bool (*line_fn)(const uint8_t *p, size_t n);

static bool any_header_line(region r, line_fn fn) {
    size_t i = skip_crlfs(r);
    while (i < r.n && r.p[i] != '\n')
        i++;
    while (++i < r.n) {
        size_t e = i;
        while (e < r.n && r.p[e] != '\n')
            e++;
        size_t n = e - i;
        if (n && r.p[i + n - 1] == '\r')
            n--;
        if (n == 0)
            return false; /* the end of the head */
        if (fn(r.p + i, n))
            return true;
        i = e;
    }
    return false;
}

static bool fold_line(const uint8_t *p, size_t n) { return n && (p[0] == ' ' || p[0] == '\t'); }

static size_t colon(const uint8_t *p, size_t n) {
    const uint8_t *c = memchr(p, ':', n);
    return c ? (size_t)(c - p) : n;
}

static bool ws_before_colon(const uint8_t *p, size_t n) {
    size_t c = colon(p, n);
    return (memchr(p, ' ', c) || memchr(p, '\t', c)) && !fold_line(p, n);
}

static bool bad_value(const uint8_t *p, size_t n) {
    for (size_t i = colon(p, n) + 1; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return true;
    return false;
}

/* ------------------------------------------------- libhttp-parser's fields */

static region trim(region r) {
    while (r.n && (r.p[0] == ' ' || r.p[0] == '\t'))
        r.p++, r.n--;
    while (r.n && (r.p[r.n - 1] == ' ' || r.p[r.n - 1] == '\t'))
        r.n--;
    return r;
}

typedef struct view {
    region head; /* the head as far as libhttp-parser got (or the rest of the input) */
    const lib_run *lr;
    const lib_msg *m;
    size_t err_at;     /* libhttp-parser's error, relative to head.p */
    bool ours_pending; /* our parser wants more bytes for this head */
} view;

/* Decimal digits d, leading zeros aside, past INT64_MAX. */
static bool p_digits_over(region d) {
    while (d.n && d.p[0] == '0')
        d.p++, d.n--;
    return d.n > 19 || (d.n == 19 && memcmp(d.p, "9223372036854775807", 19) > 0);
}

/* The whole header line (CRLF excluded) holding byte `at` of r; n 0 when
 * that is the request line. *ended: the line is complete. */
static region line_at(region r, size_t at, bool *ended) {
    size_t b = at, e = at;
    while (b > 0 && r.p[b - 1] != '\n')
        b--;
    while (e < r.n && r.p[e] != '\n')
        e++;
    *ended = e < r.n;
    if (e > b && r.p[e - 1] == '\r')
        e--;
    if (b <= skip_crlfs(r))
        return (region){NULL, 0};
    return (region){r.p + b, e - b};
}

/* A Content-Length field line we reject (or will, once it is complete). */
static bool cl_doomed(region l, bool ended) {
    size_t c = colon(l.p, l.n);
    if (c == l.n || !ieq(l.p, c, "content-length"))
        return false;
    region val = trim((region){l.p + c + 1, l.n - c - 1});
    size_t d = 0;
    while (d < val.n && val.p[d] >= '0' && val.p[d] <= '9')
        d++;
    return d != val.n || p_digits_over(val) || (ended && d == 0);
}

/* libhttp-parser's error is on a Content-Length line we reject too once the
 * head is complete (on that line, or the one before when the error is where
 * the next begins). */
static bool p_cl_doomed(const view *v) {
    bool ended;
    if (v->err_at >= v->head.n)
        return false;
    region l = line_at(v->head, v->err_at, &ended);
    if (cl_doomed(l, ended))
        return true;
    if (v->err_at == 0 || v->head.p[v->err_at - 1] != '\n')
        return false;
    return cl_doomed(line_at(v->head, v->err_at - 1, &ended), true);
}

/* Raw header lines named name, as we will count them at the head's end. */
static size_t count_lines(region r, const char *name) {
    size_t k = 0, i = skip_crlfs(r);
    while (i < r.n && r.p[i] != '\n')
        i++;
    while (++i < r.n) {
        bool ended;
        region l = line_at(r, i, &ended);
        if (l.n == 0)
            break;
        size_t c = colon(l.p, l.n);
        k += c < l.n && ieq(l.p, c, name);
        i = (size_t)(l.p - r.p) + l.n;
        while (i < r.n && r.p[i] != '\n')
            i++;
    }
    return k;
}

/* Framing fields we refuse at the head's end: two Content-Length, or one
 * with a Transfer-Encoding. */
static bool p_framing_doomed(const view *v) {
    size_t cl = count_lines(v->head, "content-length");
    return cl > 1 || (cl && count_lines(v->head, "transfer-encoding"));
}

static region lib_str(const view *v, span s) {
    return (region){(const uint8_t *)v->lr->arena + s.off, s.n};
}

static size_t lib_count(const view *v, const char *name) {
    size_t k = 0;
    for (size_t i = 0; i < v->m->nheaders && i < LIB_HEADERS; i++) {
        region n = lib_str(v, v->m->names[i]);
        k += ieq(n.p, n.n, name);
    }
    return k;
}

static region lib_value(const view *v, const char *name) {
    for (size_t i = 0; i < v->m->nheaders && i < LIB_HEADERS; i++) {
        region n = lib_str(v, v->m->names[i]);
        if (ieq(n.p, n.n, name))
            return lib_str(v, v->m->values[i]);
    }
    return (region){NULL, 0};
}

/* ------------------------------------------------------------ exemptions */

typedef bool (*pred_fn)(const view *v);

typedef struct exemption {
    const char *name;
    const char *why[4]; /* our reasons it covers (category 1), or NULL */
    int lib_err;        /* libhttp-parser's error it covers (category 2), or -1 */
    pred_fn holds;
    unsigned long hits;
    bool later; /* "we reject too, at the end of the line or head": only while we wait */
} exemption;

static bool p_bare_lf(const view *v) { return bare_lf(v->head); }
static bool p_bare_cr(const view *v) { return bare_cr(v->head); }
static bool p_junk(const view *v) { return junk_before_line(v->head); }
static bool p_fold(const view *v) { return any_header_line(v->head, fold_line); }
static bool p_ws_colon(const view *v) { return any_header_line(v->head, ws_before_colon); }
static bool p_bad_value(const view *v) { return any_header_line(v->head, bad_value); }
static bool p_no_host(const view *v) { return lib_count(v, "host") == 0 && v->m->minor == 1; }
static bool p_hosts(const view *v) { return lib_count(v, "host") > 1; }

static bool p_te_10(const view *v) {
    return lib_count(v, "transfer-encoding") && v->m->major == 1 && v->m->minor == 0;
}

/* Anything but exactly one Transfer-Encoding field holding just "chunked". */
static bool p_te_other(const view *v) {
    region te = trim(lib_value(v, "transfer-encoding"));
    return lib_count(v, "transfer-encoding") != 1 || !ieq(te.p, te.n, "chunked");
}

/* Not 1*DIGIT, or past INT64_MAX (libhttp-parser allows up to UINT64_MAX). */
static bool p_bad_cl(const view *v) {
    region cl = trim(lib_value(v, "content-length"));
    if (cl.n == 0)
        return true;
    for (size_t i = 0; i < cl.n; i++)
        if (cl.p[i] < '0' || cl.p[i] > '9')
            return true;
    return p_digits_over(cl);
}

static bool p_connect(const view *v) {
    region m = request_line(v->head).method;
    return m.n == 7 && memcmp(m.p, "CONNECT", 7) == 0;
}

static bool p_star(const view *v) {
    line l = request_line(v->head);
    return l.target.n == 1 && l.target.p[0] == '*' &&
           !(l.method.n == 7 && memcmp(l.method.p, "OPTIONS", 7) == 0);
}

static bool absolute(region t, size_t *skip) {
    *skip = t.n > 7 && ieq(t.p, 7, "http://") ? 7 : t.n > 8 && ieq(t.p, 8, "https://") ? 8 : 0;
    return *skip != 0;
}

/* t is a prefix of lit, or begins with it, ignoring case. */
static bool starts_like(region t, const char *lit) {
    size_t n = strlen(lit), k = t.n < n ? t.n : n;
    for (size_t i = 0; i < k; i++)
        if (lower(t.p[i]) != lit[i])
            return false;
    return true;
}

/* A target we reject once its line is complete (libhttp-parser rejects it
 * at once): not origin-form, not "*", not (the start of) http(s)://. */
static bool p_target_doomed(const view *v) {
    line l = request_line(v->head);
    region t = l.target;
    size_t skip;
    if (t.n == 0 || t.p[0] == '/')
        return false;
    if (l.spaces >= 2) /* the whole target */
        return !(t.n == 1 && t.p[0] == '*') && !absolute(t, &skip);
    if (t.p[0] == '*')
        return t.n > 1;
    return !starts_like(t, "http://") && !starts_like(t, "https://");
}

static bool p_bad_form(const view *v) {
    region t = request_line(v->head).target;
    size_t skip;
    return t.n && t.p[0] != '/' && !(t.n == 1 && t.p[0] == '*') && !absolute(t, &skip);
}

static region authority(region t) {
    size_t skip, i;
    if (!absolute(t, &skip))
        return (region){NULL, 0};
    for (i = skip; i < t.n && t.p[i] != '/' && t.p[i] != '?'; i++)
        ;
    return (region){t.p + skip, i - skip};
}

static bool p_userinfo(const view *v) {
    region a = authority(request_line(v->head).target);
    return a.n && memchr(a.p, '@', a.n);
}

static bool p_no_authority(const view *v) {
    size_t skip;
    region t = request_line(v->head).target;
    return absolute(t, &skip) && authority(t).n == 0;
}

/* libhttp-parser's error is in the authority of an absolute-form target. */
static bool p_in_authority(const view *v) {
    region t = request_line(v->head).target, a = authority(t);
    const uint8_t *e = v->head.p + v->err_at;
    return a.n && e >= a.p && e <= a.p + a.n;
}

static bool p_target_byte(const view *v) {
    region t = request_line(v->head).target;
    for (size_t i = 0; i < t.n; i++)
        if (t.p[i] <= 0x20 || t.p[i] >= 0x7f)
            return true;
    return false;
}

static bool p_fragment(const view *v) {
    region t = request_line(v->head).target;
    return t.n && memchr(t.p, '#', t.n);
}

/* HTTP/0.9 (no version) or two spaces in a row. */
static bool p_line_shape(const view *v) {
    line l = request_line(v->head);
    return l.spaces < 2 || l.double_space;
}

static bool p_version(const view *v) {
    line l = request_line(v->head);
    return l.spaces != 2 || l.version.n != 8 || memcmp(l.version.p, "HTTP/1.", 7) != 0 ||
           (l.version.p[7] != '0' && l.version.p[7] != '1');
}

static bool p_long_line(const view *v) { return request_line(v->head).all.n > VX_HTTP_MAX_LINE; }
static bool p_big_head(const view *v) { return v->head.n > VX_HTTP_MAX_HEAD; }
static bool p_many(const view *v) { return v->m->nheaders > VX_HTTP_MAX_HEADERS; }

/* A field whose name only begins with "Transfer-Encoding": libhttp-parser
 * matches the name by prefix and counts it as one (a token compares whole). */
static bool te_prefixed(const uint8_t *p, size_t n) {
    size_t c = colon(p, n);
    return c > 17 && ieq(p, 17, "transfer-encoding");
}

static bool p_te_prefix(const view *v) { return any_header_line(v->head, te_prefixed); }

/* Content-Length or Transfer-Encoding ending in HTAB: OWS (RFC 9110 5.5), not
 * part of the value, but libhttp-parser only skips SP there. */
static bool htab_ows(const uint8_t *p, size_t n) {
    size_t c = colon(p, n);
    if (c == n || !(ieq(p, c, "content-length") || ieq(p, c, "transfer-encoding")))
        return false;
    region val = trim((region){p + c + 1, n - c - 1});
    return val.n && memchr(p + c + 1, '\t', n - c - 1) &&
           (val.p[val.n - 1] != '\t' && (p[n - 1] == '\t' || p[n - 1] == ' '));
}

static bool p_htab_ows(const view *v) { return any_header_line(v->head, htab_ows); }

/* A method token libhttp-parser does not know (RFC 9110 9.1: any token). */
static bool p_ext_method(const view *v) {
    line l = request_line(v->head);
    if (l.method.n == 0)
        return false;
    for (size_t i = 0; i < l.method.n; i++)
        if (!tchar(l.method.p[i]))
            return false;
    for (int m = 0; m <= HTTP_SOURCE; m++) {
        const char *s = http_method_str((enum http_method)m);
        if (strlen(s) == l.method.n && !memcmp(s, l.method.p, l.method.n))
            return false;
    }
    return true;
}

/* We reject, for one of the reasons given, what libhttp-parser accepts. */
#define OURS(name, pred, ...)                                                                      \
    { name, {__VA_ARGS__}, -1, pred, 0, false }
/* libhttp-parser rejects with err what we accept. */
#define THEIRS(name, err, pred)                                                                    \
    { name, {NULL}, err, pred, 0, false }
/* Both reject: libhttp-parser as the byte arrives, we once the line or the
 * head is complete (so only while our parser still waits for it). */
#define LATER(name, err, pred)                                                                     \
    { name, {NULL}, err, pred, 0, true }

static exemption head_exemptions[] = {
    /* category 1: libhttp-parser accepts, we reject (request smuggling safety) */
    OURS("bare LF line ending", p_bare_lf, "bare LF line ending"),
    OURS("bare CR", p_bare_cr, "bare CR in request line", "bare CR in header section",
         "bare CR in header value"),
    OURS("CR/LF junk before the request line", p_junk, "bare CR before request line",
         "invalid method"),
    OURS("obs-fold", p_fold, "obs-fold in header"),
    OURS("whitespace before colon", p_ws_colon, "whitespace before colon in header"),
    OURS("control byte in a value", p_bad_value, "invalid character in header value"),
    OURS("missing Host (HTTP/1.1)", p_no_host, "missing Host"),
    OURS("repeated Host", p_hosts, "duplicate Host"),
    OURS("Transfer-Encoding in HTTP/1.0", p_te_10, "Transfer-Encoding in HTTP/1.0"),
    OURS("Transfer-Encoding other than one \"chunked\"", p_te_other, "unsupported transfer coding",
         "invalid Transfer-Encoding", "chunked is not the final transfer coding",
         "empty element in Transfer-Encoding"),
    OURS("Content-Length not 1*DIGIT within int64", p_bad_cl, "invalid Content-Length"),
    OURS("CONNECT", p_connect, "CONNECT (authority-form) not supported"),
    OURS("asterisk-form outside OPTIONS", p_star, "asterisk-form target outside OPTIONS"),
    OURS("target form (not origin, http(s) absolute or *)", p_bad_form, "invalid request target"),
    OURS("userinfo in absolute-form", p_userinfo, "userinfo in absolute-form target"),
    OURS("empty authority", p_no_authority, "empty authority in absolute-form target"),
    OURS("target byte outside VCHAR", p_target_byte, "invalid character in request target"),
    OURS("fragment in the target", p_fragment, "fragment ('#') in request target"),
    OURS("HTTP/0.9 or double space in the request line", p_line_shape, "missing HTTP version",
         "empty request target"),
    OURS("version other than HTTP/1.0 or HTTP/1.1", p_version, "invalid HTTP version",
         "unsupported HTTP version"),
    OURS("request line over 8 KiB", p_long_line, "request line too long"),
    OURS("head over 16 KiB", p_big_head, "request header section too large"),
    OURS("over 100 fields", p_many, "too many header fields"),
    /* category 2: libhttp-parser rejects, we accept (each justified in README.md) */
    THEIRS("extension method", HPE_INVALID_METHOD, p_ext_method),
    THEIRS("HTAB after a Content-Length or Transfer-Encoding value", HPE_INVALID_TRANSFER_ENCODING,
           p_htab_ows),
    THEIRS("HTAB after a Content-Length or Transfer-Encoding value", HPE_INVALID_CONTENT_LENGTH,
           p_htab_ows),
    THEIRS("field name beginning with Transfer-Encoding", HPE_INVALID_TRANSFER_ENCODING,
           p_te_prefix),
    THEIRS("field name beginning with Transfer-Encoding", HPE_UNEXPECTED_CONTENT_LENGTH,
           p_te_prefix),
    THEIRS("absolute-form authority not validated", HPE_INVALID_HOST, p_in_authority),
    THEIRS("absolute-form authority not validated", HPE_INVALID_URL, p_in_authority),
    /* not disagreements */
    LATER("target form rejected at the end of the line", HPE_INVALID_URL, p_target_doomed),
    LATER("Content-Length rejected at the end of the head", HPE_INVALID_CONTENT_LENGTH,
          p_cl_doomed),
    LATER("framing fields rejected at the end of the head", HPE_UNEXPECTED_CONTENT_LENGTH,
          p_framing_doomed),
};

#define NEXEMPT (sizeof head_exemptions / sizeof head_exemptions[0])

/* An exemption covering our rejection for `why`, or one covering theirs. */
static bool exempt(const char *why, int lib_err, const view *v) {
    for (size_t i = 0; i < NEXEMPT; i++) {
        exemption *x = &head_exemptions[i];
        bool match = x->lib_err >= 0 ? x->lib_err == lib_err && !why : false;
        for (int k = 0; k < 4 && why && x->why[k]; k++)
            match |= strcmp(x->why[k], why) == 0;
        if (match && (!x->later || v->ours_pending) && x->holds(v)) {
            x->hits++;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------- comparing */

static bool same_str(const vx_http_slice *s, region r) {
    return s->n == r.n && (r.n == 0 || memcmp(s->p, r.p, r.n) == 0);
}

static exemption keep_alive_10 =
    THEIRS("Connection options libhttp-parser reads otherwise", -1, NULL);

/* close and keep-alive among the elements of every Connection line. */
static void connection_options(region r, bool *close, bool *keep) {
    size_t i = skip_crlfs(r);
    while (i < r.n && r.p[i] != '\n')
        i++;
    for (i++; i < r.n;) {
        bool ended;
        region l = line_at(r, i, &ended);
        size_t c = colon(l.p, l.n);
        if (c < l.n && ieq(l.p, c, "connection")) {
            for (size_t b = c + 1, e; b <= l.n; b = e + 1) {
                for (e = b; e < l.n && l.p[e] != ','; e++)
                    ;
                region el = trim((region){l.p + b, e - b});
                *close |= ieq(el.p, el.n, "close");
                *keep |= ieq(el.p, el.n, "keep-alive");
            }
        }
        while (i < r.n && r.p[i] != '\n')
            i++;
        i++;
    }
}

/* Both parsed a head: every field must agree. */
static void compare_heads(const vx_http_request *q, ssize_t rc, const view *v) {
    const lib_msg *m = v->m;
    if ((size_t)rc != m->head_end - m->start)
        FUZZ_FAIL("head length: ours %zd, libhttp-parser %zu", rc, m->head_end - m->start);
    const char *mn = http_method_str((enum http_method)m->method);
    FUZZ_ASSERT(q->method_name.n == strlen(mn) && !memcmp(q->method_name.p, mn, q->method_name.n));
    FUZZ_ASSERT(same_str(&q->target, lib_str(v, m->url)));
    FUZZ_ASSERT(m->major == 1 && (int)m->minor == q->minor);
    FUZZ_ASSERT(m->nheaders == q->nheaders);
    for (size_t i = 0; i < q->nheaders; i++) {
        FUZZ_ASSERT(same_str(&q->headers[i].name, lib_str(v, m->names[i])));
        FUZZ_ASSERT(same_str(&q->headers[i].value, trim(lib_str(v, m->values[i]))));
    }
    if (m->flags & F_CONTENTLENGTH)
        FUZZ_ASSERT(q->content_length >= 0 && (uint64_t)q->content_length == m->cl);
    else
        FUZZ_ASSERT(q->content_length == -1);
    FUZZ_ASSERT(q->chunked == !!(m->flags & F_CHUNKED));
    /* Connection options read from the raw lines (RFC 9110 7.6.1: a list,
     * empty elements and OWS allowed); ours must match exactly. */
    bool close = false, keep = false;
    connection_options(v->head, &close, &keep);
    FUZZ_ASSERT(q->keep_alive == (q->minor == 1 ? !close : keep && !close));
    if (q->keep_alive != m->keep_alive)
        keep_alive_10.hits++; /* it misreads such a list, or keeps with both options */
}

/* One message's head; returns our head length, or -1 when comparing stops. */
static ssize_t compare_head(const uint8_t *buf, size_t size, const lib_run *lr, int i,
                            vx_http_request *q) {
    const lib_msg *m = &lr->msgs[i];
    int st = 0;
    const char *why = NULL;
    ssize_t rc = vx_http_parse_request((const char *)buf + m->start, size - m->start, q, &st, &why);
    bool seen =
        m->state == L_BODY || m->state == L_DONE || (m->state == L_ERROR && m->err_in == L_BODY);
    /* Some checks (Transfer-Encoding) fail just after on_headers_complete. */
    bool refused = m->state == L_ERROR && (!seen || m->err_at < m->head_end);
    bool lib_head = seen && !refused;
    size_t hend = seen ? m->head_end : size;
    view v = {
        {buf + m->start, hend - m->start}, lr, m, m->err_at - m->start, rc == VX_HTTP_INCOMPLETE};
    if (rc == VX_HTTP_ERROR) {
        if (refused)
            return -1; /* both reject */
        if (!exempt(why, -1, &v))
            FUZZ_FAIL("we reject (%d, %s) what libhttp-parser accepts", st, why);
        return -1;
    }
    if (refused) {
        if (!exempt(NULL, m->err, &v))
            FUZZ_FAIL("libhttp-parser rejects (%s) what we %s", http_errno_name(m->err),
                      rc > 0 ? "accept" : "may still accept");
        return -1;
    }
    if (rc == VX_HTTP_INCOMPLETE) {
        if (lib_head)
            FUZZ_FAIL("libhttp-parser ends a head (%zu bytes) we find incomplete",
                      m->head_end - m->start);
        return -1;
    }
    if (!lib_head)
        FUZZ_FAIL("we end a head (%zd bytes) libhttp-parser finds incomplete", rc);
    compare_heads(q, rc, &v);
    return rc;
}

/* ------------------------------------------------------------- bodies */

enum { V_MORE, V_DONE, V_ERROR };

/* Our framing of the body at p[0..n): verdict, decoded bytes, bytes used. */
typedef struct body {
    int verdict;
    size_t used, outn;
    char *out;
    const char *why;
} body;

static void our_body(const vx_http_request *q, const uint8_t *p, size_t n, body *b) {
    b->why = NULL;
    if (q->chunked) {
        memcpy(b->out, p, n);
        vx_http_chunked d = {0};
        bool done;
        ssize_t c = vx_http_chunked_decode(&d, b->out, n, &b->outn, &done, &b->why);
        b->verdict = c < 0 ? V_ERROR : done ? V_DONE : V_MORE;
        b->used = c < 0 ? 0 : (size_t)c;
        return;
    }
    uint64_t cl = q->content_length > 0 ? (uint64_t)q->content_length : 0;
    b->used = b->outn = n < cl ? n : (size_t)cl;
    memcpy(b->out, p, b->outn);
    b->verdict = b->used == cl ? V_DONE : V_MORE;
}

/* Where our decoder fails: the offending byte's index in p. */
static size_t chunk_error_at(const uint8_t *p, size_t n) {
    vx_http_chunked d = {0};
    for (size_t i = 0; i < n; i++) {
        char c = (char)p[i];
        size_t out;
        bool done;
        const char *why;
        if (vx_http_chunked_decode(&d, &c, 1, &out, &done, &why) < 0)
            return i;
    }
    FUZZ_FAIL("the chunked decoder fails in one call but not byte by byte");
}

/* The chunk-size line (or trailer line) holding byte e of p: its start. */
static size_t line_start(const uint8_t *p, size_t e) {
    while (e > 0 && p[e - 1] != '\n')
        e--;
    return e;
}

typedef struct chunk_view {
    const uint8_t *p; /* the body */
    size_t e;         /* where we fail, or where libhttp-parser does */
} chunk_view;

typedef bool (*chunk_pred)(const chunk_view *c);

static bool ctl(int c) { return (c < 0x20 && c != '\t') || c == 0x7f; }
static bool c_lf(const chunk_view *c) { return c->p[c->e] == '\n'; }
static bool c_cr(const chunk_view *c) { return c->e && c->p[c->e - 1] == '\r'; }
static bool c_not_crlf(const chunk_view *c) { return c->p[c->e] != '\r' || c_cr(c); }
static bool c_ctl(const chunk_view *c) { return ctl(c->p[c->e]); }
static bool c_ws(const chunk_view *c) { return c->p[c->e] == ' ' || c->p[c->e] == '\t'; }
static bool c_high(const chunk_view *c) { return c->p[c->e] >= 0x80; }
static bool c_long(const chunk_view *c) { return c->e - line_start(c->p, c->e) >= 4095; }

/* libhttp-parser takes anything after "size SP" as parameters up to CR. */
static bool c_after_sp(const chunk_view *c) {
    size_t b = line_start(c->p, c->e);
    return memchr(c->p + b, ' ', c->e - b) != NULL || c_ws(c);
}

/* Its limit on a chunk size is 0x0fffffffffffffff before the last digit; ours
 * UINT64_MAX. Such a chunk (exabytes) never completes on a real connection. */
static bool c_huge(const chunk_view *c) {
    size_t b = line_start(c->p, c->e), k = b;
    while (k < c->e && c->p[k] == '0')
        k++;
    if (c->e - k != 15 || hexval_of(c->p[c->e]) < 0)
        return false;
    for (; k < c->e; k++)
        if (c->p[k] != 'f' && c->p[k] != 'F')
            return false;
    return true;
}

/* HTAB between the size and ';': BWS to us, an error to libhttp-parser. */
static bool c_bws_tab(const chunk_view *c) {
    size_t b = line_start(c->p, c->e), k = b;
    while (k < c->e && hexval_of(c->p[k]) >= 0)
        k++;
    if (k == b || c->p[c->e] != '\t')
        return false;
    for (; k < c->e; k++)
        if (c->p[k] != ' ' && c->p[k] != '\t')
            return false;
    return true;
}

/* The error is in the trailer section: we decode up to it and are there. */
static bool c_trailer(const chunk_view *c) {
    vx_http_chunked d = {0};
    char *tmp = malloc(c->e + 1);
    FUZZ_ASSERT(tmp);
    memcpy(tmp, c->p, c->e);
    size_t out;
    bool done;
    const char *why;
    ssize_t rc = vx_http_chunked_decode(&d, tmp, c->e, &out, &done, &why);
    free(tmp);
    return rc == (ssize_t)c->e && !done && d.trailer_bytes > 0;
}

typedef struct chunk_exemption {
    const char *name, *why; /* why: ours (category 3), or NULL */
    int lib_err;            /* libhttp-parser's (category 4), or -1 */
    chunk_pred holds;
    unsigned long hits;
} chunk_exemption;

static chunk_exemption chunk_exemptions[] = {
    /* category 3: libhttp-parser (non-strict) accepts, we reject */
    {"bare LF in a chunked body", "bare LF in chunked body", -1, c_lf, 0},
    {"bare CR in a chunked body", "bare CR in chunked body", -1, c_cr, 0},
    {"chunk data not followed by CRLF", "chunk data not followed by CRLF", -1, c_not_crlf, 0},
    {"junk after the chunk size", "invalid chunk size line", -1, c_after_sp, 0},
    {"byte >= 0x80 in a chunk size (read as the digit 0)", "invalid chunk size line", -1, c_high,
     0},
    {"byte >= 0x80 in a chunk size (read as the digit 0)", "invalid chunk size", -1, c_high, 0},
    {"control byte in a chunk extension", "invalid character in chunk extension", -1, c_ctl, 0},
    {"obs-fold in a trailer", "obs-fold in trailer", -1, c_ws, 0},
    {"whitespace before colon in a trailer", "whitespace before colon in trailer", -1, c_ws, 0},
    {"control byte in a trailer value", "invalid character in trailer value", -1, c_ctl, 0},
    {"chunk-size line over 4 KiB", "chunk size line too long", -1, c_long, 0},
    {"trailers over 16 KiB", "trailer section too large", -1, NULL, 0},
    /* category 4: libhttp-parser rejects, we accept */
    {"chunk size past 0x0fffffffffffffff", NULL, HPE_INVALID_CONTENT_LENGTH, c_huge, 0},
    {"HTAB before a chunk extension (BWS)", NULL, HPE_INVALID_CHUNK_SIZE, c_bws_tab, 0},
    {"trailer field checked as a header field", NULL, HPE_INVALID_CONTENT_LENGTH, c_trailer, 0},
    {"trailer field checked as a header field", NULL, HPE_UNEXPECTED_CONTENT_LENGTH, c_trailer, 0},
    {"trailer field checked as a header field", NULL, HPE_INVALID_TRANSFER_ENCODING, c_trailer, 0},
};

#define NCHUNK (sizeof chunk_exemptions / sizeof chunk_exemptions[0])

static bool chunk_exempt(const char *why, int lib_err, const chunk_view *c) {
    for (size_t i = 0; i < NCHUNK; i++) {
        chunk_exemption *x = &chunk_exemptions[i];
        bool match = why ? x->why && !strcmp(x->why, why) : x->lib_err == lib_err;
        if (match && (!x->holds || x->holds(c))) {
            x->hits++;
            return true;
        }
    }
    return false;
}

/* Both parsed the head at buf[m->start, +rc): compare the bodies. true when
 * both ended the message at the same byte with the same data. */
static bool compare_body(const uint8_t *buf, size_t size, const view *v, const vx_http_request *q,
                         ssize_t rc, body *b) {
    const lib_msg *m = v->m;
    size_t at = m->start + (size_t)rc;
    our_body(q, buf + at, size - at, b);
    region lb = lib_str(v, m->body);
    bool lib_err = m->state == L_ERROR;
    if (b->verdict == V_ERROR) {
        if (lib_err)
            return false; /* both reject */
        /* what we decoded before the error, it decoded the same way */
        FUZZ_ASSERT(b->outn <= lb.n && memcmp(b->out, lb.p, b->outn) == 0);
        chunk_view c = {buf + at, chunk_error_at(buf + at, size - at)};
        if (!chunk_exempt(b->why, -1, &c))
            FUZZ_FAIL("we reject a body (%s) libhttp-parser accepts", b->why);
        return false;
    }
    if (lib_err) {
        chunk_view c = {buf + at, m->err_at - at};
        bool in_body = m->err_at >= at && m->err_at < size;
        if (!(in_body ? chunk_exempt(NULL, m->err, &c) : exempt(NULL, m->err, v)))
            FUZZ_FAIL("libhttp-parser rejects a body (%s) we accept", http_errno_name(m->err));
        return false;
    }
    FUZZ_ASSERT(b->outn == lb.n && memcmp(b->out, lb.p, lb.n) == 0);
    if ((b->verdict == V_DONE) != (m->state == L_DONE))
        FUZZ_FAIL("the body ends for %s only", b->verdict == V_DONE ? "us" : "libhttp-parser");
    if (b->verdict == V_DONE && at + b->used != m->end)
        FUZZ_FAIL("the message ends at %zu for us, %zu for libhttp-parser", at + b->used, m->end);
    return b->verdict == V_DONE;
}

static void print_stats(void) {
    for (size_t i = 0; i < NEXEMPT; i++)
        fprintf(stderr, "fuzz-http-diff: exemption \"%s\": %lu\n", head_exemptions[i].name,
                head_exemptions[i].hits);
    for (size_t i = 0; i < NCHUNK; i++)
        fprintf(stderr, "fuzz-http-diff: exemption \"%s\": %lu\n", chunk_exemptions[i].name,
                chunk_exemptions[i].hits);
    fprintf(stderr, "fuzz-http-diff: exemption \"%s\": %lu\n", keep_alive_10.name,
            keep_alive_10.hits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static lib_run lr;
    static vx_http_request q;
    static bool stats;
    if (!stats) {
        stats = true;
        if (getenv("VX_FUZZ_DIFF_STATS"))
            atexit(print_stats);
    }
    lr.arena = malloc(size + 1);
    FUZZ_ASSERT(lr.arena);
    lib_parse(&lr, (const char *)data, size);
    body b = {.out = malloc(size + 1)};
    FUZZ_ASSERT(b.out);
    for (int i = 0; i < lr.n; i++) {
        const lib_msg *m = &lr.msgs[i];
        ssize_t rc = compare_head(data, size, &lr, i, &q);
        view v = {{data + m->start, m->head_end - m->start}, &lr, m, m->err_at - m->start, false};
        if (rc < 0 || !compare_body(data, size, &v, &q, rc, &b))
            break;
        if (!q.keep_alive || !m->keep_alive || m->upgrade)
            break; /* the server closes, or libhttp-parser leaves HTTP */
    }
    free(b.out);
    free(lr.arena);
    return 0;
}
