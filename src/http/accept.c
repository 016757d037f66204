/* Content-coding negotiation: does an Accept-Encoding value (RFC 9110
 * 12.5.3) accept a coding? A list of `coding *( OWS ";" OWS param )`, where
 * the weight `q=` is a qvalue (RFC 9110 12.4.2): "0" to "0.000" refuse. */
#include "core/common.h"
#include "http/parse.h"
#include <strings.h>

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

static bool is_tchar(char c) { return vx__http_is_tchar((unsigned char)c); }

/* qvalue at *p: thousandths (0..1000) or -1 when malformed; *p moves past it. */
static int qvalue(const char **p, const char *end) {
    const char *s = *p;
    if (s == end || (*s != '0' && *s != '1'))
        return -1;
    int q = (*s++ - '0') * 1000, scale = 100;
    if (s < end && *s == '.')
        for (s++; s < end && *s >= '0' && *s <= '9' && scale; s++, scale /= 10)
            q += (*s - '0') * scale;
    *p = s;
    return q <= 1000 ? q : -1;
}

/* Past one parameter's value: a token or a quoted-string; NULL when the
 * quoted-string does not end. */
static const char *skip_value(const char *p, const char *end) {
    if (p < end && *p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\' && p + 1 < end)
                p++;
        return p < end ? p + 1 : NULL;
    }
    while (p < end && is_tchar(*p))
        p++;
    return p;
}

/* The coding named t[0..n): coding itself, or "x-" + coding for gzip and
 * compress (RFC 9110 8.4.1: recipients treat them as the same). */
static bool names(const char *t, size_t n, const char *coding, size_t cl) {
    if (n == cl && !strncasecmp(t, coding, cl))
        return true;
    bool aliased = !strcasecmp(coding, "gzip") || !strcasecmp(coding, "compress");
    return aliased && n == cl + 2 && !strncasecmp(t, "x-", 2) && !strncasecmp(t + 2, coding, cl);
}

bool vx_http_accepts_coding(const char *v, size_t n, const char *coding) {
    const char *p = v, *end = v + n;
    size_t cl = strlen(coding);
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        const char *t = p;
        while (p < end && is_tchar(*p))
            p++;
        bool match = p > t && names(t, (size_t)(p - t), coding, cl), bad = p == t;
        int q = 1000;
        for (;;) {
            while (p < end && is_ows(*p))
                p++;
            if (p == end || *p != ';')
                break;
            for (p++; p < end && is_ows(*p);)
                p++;
            if (end - p >= 2 && (*p | 0x20) == 'q' && p[1] == '=') {
                p += 2;
                q = qvalue(&p, end);
                bad |= q < 0;
                continue;
            }
            const char *name = p;
            while (p < end && is_tchar(*p))
                p++;
            bad |= p == name || p == end || *p != '=';
            const char *after = p < end && *p == '=' ? skip_value(p + 1, end) : p;
            bad |= !after;
            p = after ? after : end;
        }
        if (p < end && *p != ',') { /* garbage: the element counts for nothing */
            bad = true;
            while (p < end && *p != ',')
                p++;
        }
        if (match && !bad)
            return q > 0;
    }
    return false;
}
