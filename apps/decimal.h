/* Decimal output for vx-http's handlers without snprintf, whose "%.2f"
 * costs ~2,600 instructions (~170 ns here) a number: ten totals were most of
 * a /json/10 answer's user time. Header-only, like the other helpers of
 * apps/; tested against printf by tests/unit/test-decimal.c. */
#ifndef VX_APP_DECIMAL_H
#define VX_APP_DECIMAL_H

#include <math.h> /* signbit */
#include <stddef.h>
#include <stdint.h>

/* v in decimal at p (room for 20 bytes); returns the end. */
static char *dec_u64(char *p, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* v as "%lld" prints it, at p (room for 20 bytes); returns the end. */
static char *dec_i64(char *p, long long v) {
    if (v < 0) {
        *p++ = '-';
        return dec_u64(p, 0 - (uint64_t)v); /* LLONG_MIN too */
    }
    return dec_u64(p, (uint64_t)v);
}

/* v as "%.2f" prints it, at p (room for 16 bytes); returns the end, or NULL
 * where that could differ and the caller must ask printf. printf rounds the
 * exact binary value; v * 100 is off by at most half an ulp, under 2^-12
 * below 2^40, so rounding it to an integer gives printf's digits unless its
 * fraction is within 2^-10 of one half (1.005 is 1.00499999999999989...):
 * those, infinities, NaN and |v| from 2^33 on go to printf. */
static char *dec_cents(char *p, double v) {
    double a = v < 0 ? -v : v; /* no libm; NaN fails the next test */
    if (!(a < 0x1p33))
        return NULL;
    double s = a * 100;
    uint64_t c = (uint64_t)s;
    double off_half = s - (double)c - 0.5; /* exact: c <= s < c + 1 */
    if (off_half <= 0x1p-10 && off_half >= -0x1p-10)
        return NULL;
    c += off_half > 0;
    if (signbit(v))
        *p++ = '-'; /* as printf: -0.001 is "-0.00" */
    p = dec_u64(p, c / 100);
    *p++ = '.';
    *p++ = (char)('0' + c % 100 / 10);
    *p++ = (char)('0' + c % 10);
    return p;
}

#endif
