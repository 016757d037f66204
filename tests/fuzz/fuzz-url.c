/* libFuzzer target: percent-decoding and query lookup.
 *
 * Input: [flags][key length][key][bytes]. The bytes are decoded as a path and
 * as a form (into an exact-size buffer, so ASan catches a write past n, and
 * in place); both must agree with ref_decode(), written here from RFC 3986
 * 2.1 and the HTML form rule ('+' is a space). The bytes are then
 * percent-encoded (hex case and which bytes are escaped chosen by the
 * flags) and must decode back to themselves. vx_http_query_get() is checked
 * against a split-on-'&' reference for the key from the input, and
 * vx_http_accepts_coding() for properties of list syntax (check_accept). */
#define FUZZ_NAME "fuzz-url"
#include "fuzz.h"
#include "vortex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { F_UPPER = 1, F_ALL = 2, F_PLUS = 4, F_MIXED = 8 };

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* -1 when a '%' is not followed by two hex digits. */
static ssize_t ref_decode(uint8_t *dst, const uint8_t *s, size_t n, bool form) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            dst[w++] = form && s[i] == '+' ? ' ' : s[i];
            continue;
        }
        if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
            return -1;
        dst[w++] = (uint8_t)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
        i += 2;
    }
    return (ssize_t)w;
}

static void check_decode(const uint8_t *s, size_t n, bool form) {
    uint8_t *src = malloc(n), *dst = malloc(n), *inplace = malloc(n), *ref = malloc(n + 1);
    FUZZ_ASSERT((src && dst && inplace) || n == 0);
    FUZZ_ASSERT(ref);
    if (n) {
        memcpy(src, s, n);
        memcpy(inplace, s, n);
    }
    ssize_t want = ref_decode(ref, s, n, form);
    ssize_t got = vx_http_url_decode((char *)dst, (const char *)src, n, form);
    ssize_t got2 = vx_http_url_decode((char *)inplace, (const char *)inplace, n, form);
    FUZZ_ASSERT(got == want && got2 == want);
    FUZZ_ASSERT(n == 0 || memcmp(src, s, n) == 0); /* the source is read-only */
    if (want >= 0) {
        FUZZ_ASSERT((size_t)want <= n);
        FUZZ_ASSERT(memcmp(dst, ref, (size_t)want) == 0 && memcmp(inplace, ref, (size_t)want) == 0);
    }
    free(src);
    free(dst);
    free(inplace);
    free(ref);
}

static bool unreserved(int c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("-._~", c));
}

/* Percent-encode s; any byte may be escaped, '%' (and '+' for forms) must be. */
static size_t encode(char *out, const uint8_t *s, size_t n, unsigned flags, bool form) {
    static const char lower[] = "0123456789abcdef", upper[] = "0123456789ABCDEF";
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        bool up = flags & F_MIXED ? (i & 1) : (flags & F_UPPER);
        const char *hex = up ? upper : lower;
        if (form && s[i] == ' ' && (flags & F_PLUS)) {
            out[w++] = '+';
        } else if ((flags & F_ALL) || !unreserved(s[i])) {
            out[w++] = '%';
            out[w++] = hex[s[i] >> 4];
            out[w++] = hex[s[i] & 15];
        } else {
            out[w++] = (char)s[i];
        }
    }
    return w;
}

static void check_round_trip(const uint8_t *s, size_t n, unsigned flags, bool form) {
    char *enc = malloc(3 * n + 1);
    FUZZ_ASSERT(enc);
    size_t en = encode(enc, s, n, flags, form);
    char *dec = malloc(en + 1);
    FUZZ_ASSERT(dec);
    ssize_t got = vx_http_url_decode(dec, enc, en, form);
    FUZZ_ASSERT(got == (ssize_t)n && (n == 0 || memcmp(dec, s, n) == 0));
    free(dec);
    free(enc);
}

/* The first "key[=value]" element of the '&'-separated query whose key is key. */
static bool ref_query_get(const char *q, size_t n, const char *key, vx_http_slice *v) {
    size_t kn = strlen(key), i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && q[e] != '&')
            e++;
        size_t eq = i;
        while (eq < e && q[eq] != '=')
            eq++;
        if (eq - i == kn && memcmp(q + i, key, kn) == 0) {
            *v = eq < e ? (vx_http_slice){q + eq + 1, e - eq - 1} : (vx_http_slice){q + e, 0};
            return true;
        }
        i = e + 1;
    }
    return false;
}

static void check_query(const uint8_t *s, size_t n, const char *key) {
    char *q = malloc(n ? n : 1);
    FUZZ_ASSERT(q);
    memcpy(q, s, n);
    vx_http_slice got = {NULL, 0}, want = {NULL, 0};
    bool found = vx_http_query_get((vx_http_slice){q, n}, key, &got);
    FUZZ_ASSERT(found == ref_query_get(q, n, key, &want));
    if (found)
        FUZZ_ASSERT(got.p == want.p && got.n == want.n && got.p >= q && got.p + got.n <= q + n);
    free(q);
}

/* The bytes as an Accept-Encoding value, from an exact-size copy: the answer
 * for gzip must not change with a list element added before or after it, nor
 * with the case of the letters. */
static bool accepts(const char *v, size_t n) {
    char *copy = malloc(n ? n : 1);
    FUZZ_ASSERT(copy);
    memcpy(copy, v, n);
    bool yes = vx_http_accepts_coding(copy, n, "gzip");
    free(copy);
    return yes;
}

static void check_accept(const uint8_t *s, size_t n) {
    char *v = malloc(n + 16);
    FUZZ_ASSERT(v);
    memcpy(v, "br, ", 4);
    memcpy(v + 4, s, n);
    bool yes = accepts(v + 4, n);
    FUZZ_ASSERT(accepts(v, n + 4) == yes);
    memcpy(v + 4 + n, ", identity", 10);
    FUZZ_ASSERT(accepts(v + 4, n + 10) == yes);
    for (size_t i = 0; i < n; i++)
        v[4 + i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
    FUZZ_ASSERT(accepts(v + 4, n) == yes);
    free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    unsigned flags = data[0];
    size_t kn = data[1] % 16 < size - 2 ? data[1] % 16 : size - 2;
    char key[17];
    memcpy(key, data + 2, kn);
    key[kn] = 0;
    /* A key stops at a NUL, as a C string does; "" is no key. */
    if (strlen(key) == 0)
        strcpy(key, "a");
    const uint8_t *s = data + 2 + kn;
    size_t n = size - 2 - kn;
    check_decode(s, n, false);
    check_decode(s, n, true);
    check_round_trip(s, n, flags, false);
    check_round_trip(s, n, flags, true);
    check_query(s, n, key);
    check_accept(s, n);
    return 0;
}
