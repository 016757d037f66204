/* Decimal output for vx-http's handlers without snprintf, whose "%.2f"
 * alone cost ~2,600 instructions (~170 ns here) a number: ten totals were
 * most of a /json/10 answer's user time. Header-only, like the other helpers
 * of apps/; tested against printf and strtod by tests/unit/test-decimal.c. */
#ifndef VX_APP_DECIMAL_H
#define VX_APP_DECIMAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dec_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static const uint64_t dec_pow10[20] = {1ull,
                                       10ull,
                                       100ull,
                                       1000ull,
                                       10000ull,
                                       100000ull,
                                       1000000ull,
                                       10000000ull,
                                       100000000ull,
                                       1000000000ull,
                                       10000000000ull,
                                       100000000000ull,
                                       1000000000000ull,
                                       10000000000000ull,
                                       100000000000000ull,
                                       1000000000000000ull,
                                       10000000000000000ull,
                                       100000000000000000ull,
                                       1000000000000000000ull,
                                       10000000000000000000ull};

/* Decimal digits of v (1 for 0): log10 from the bit length, one compare. */
static inline int dec_count(uint64_t v) {
    v |= 1; /* the same count, and 0 counts as 1 */
    int t = (64 - __builtin_clzll(v)) * 1233 >> 12; /* 1233 / 4096 ~ log10(2) */
    return t + (v >= dec_pow10[t]);
}

/* The last n digits of *v (leading zeros kept) written backwards ending at
 * end, two a division; *v loses them. Returns where they start. */
static inline char *dec_put(char *end, uint64_t *v, int n) {
    for (; n >= 2; n -= 2, *v /= 100)
        end -= 2, memcpy(end, dec_pairs + 2 * (*v % 100), 2);
    if (n)
        *--end = (char)('0' + *v % 10), *v /= 10;
    return end;
}

/* v in decimal at p (room for 20 bytes); returns the end. */
static char *dec_u64(char *p, uint64_t v) {
    char *e = p + dec_count(v);
    dec_put(e, &v, (int)(e - p));
    return e;
}

/* v as "%lld" prints it, at p (room for 20 bytes); returns the end. */
static char *dec_i64(char *p, long long v) {
    if (v < 0) {
        *p++ = '-';
        return dec_u64(p, 0 - (uint64_t)v); /* LLONG_MIN too */
    }
    return dec_u64(p, (uint64_t)v);
}

/* The shortest decimal that reads back as v, at p (room for 32 bytes);
 * returns the end, or NULL for infinities and NaN (JSON has neither). The
 * digits are those of Python's repr and JavaScript's String(v), which is what
 * a client that recomputes price * quantity * m compares against; integers
 * come without ".0" (10575, as JavaScript prints it). */
static char *dec_shortest_slow(char *p, double v);

/* For v = mant * 2^-s (1 <= s <= 58): the k-decimal number nearest v, as
 * c / 10^k (a tie to even c, as printf and repr round), and whether it reads
 * back as v, i.e. lies within half an ulp of it (ulp = 2^-s; at a tie strtod
 * picks the even mantissa). In units of 2^-s * 10^-k the distance is
 * |c * 2^s - mant * 10^k| and half an ulp is 10^k / 2; just below a power of
 * two the next double down is half as far, so a quarter there. Exact: every
 * term fits in 128 bits. */
static inline bool dec_probe(uint64_t mant, int s, int k, uint64_t *c) {
    unsigned __int128 x = (unsigned __int128)mant * dec_pow10[k];
    unsigned __int128 half = (unsigned __int128)1 << (s - 1), rem = x & (2 * half - 1);
    *c = (uint64_t)(x >> s);
    *c += rem > half || (rem == half && (*c & 1));
    unsigned __int128 y = (unsigned __int128)*c << s, ten = dec_pow10[k];
    unsigned __int128 d2 = 2 * (y > x ? y - x : x - y);
    if (y < x && mant == 1ull << 52)
        return 2 * d2 <= ten; /* a tie goes to mant, the even one */
    return d2 < ten || (d2 == ten && !(mant & 1));
}

/* c / 10^k with k decimals at p ("0.05" for 5, 2), written from the end. */
static char *dec_fixed(char *p, uint64_t c, int k) {
    int n = dec_count(c), ni = n > k ? n - k : 1; /* integer digits, "0" at least */
    char *e = p + ni + (k ? k + 1 : 0), *q = e;
    if (k) {
        q = dec_put(q, &c, k);
        *--q = '.';
    }
    dec_put(q, &c, ni);
    return e;
}

static char *dec_shortest(char *p, double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)(bits >> 52 & 0x7ff);
    if (be == 0x7ff)
        return NULL;
    if (bits << 1 == 0) { /* +0 and -0 */
        if (bits)
            *p++ = '-';
        *p++ = '0';
        return p;
    }
    /* The fast path covers 2^-6 <= |v| < 2^53, every total a sane dataset
     * gives: no printf, no strtod, and the same digits. 17 significant digits
     * always read back, so some k <= 18 does; reading back only gets easier
     * as k grows, so the fewest is found by bisection, after a first probe at
     * 2 (prices in cents give such totals, or ones that need 15-17 digits). */
    int s = 1075 - be;
    if (s <= 0 || s > 58)
        return dec_shortest_slow(p, v);
    uint64_t mant = (bits & ((1ull << 52) - 1)) | 1ull << 52, c, ck;
    int lo, hi; /* k = lo fails (or lo = -1), k = hi reads back as c */
    if (dec_probe(mant, s, 2, &c)) {
        lo = -1, hi = 2;
        if (s >= 7) { /* ulp < 0.01: c is the only 2-decimal that reads back */
            for (; hi && c % 10 == 0; hi--)
                c /= 10;
            lo = hi - 1;
        }
    } else { /* k for 17 significant digits: c < 10^17 */
        uint64_t ip = mant >> s;
        int ndig = ip ? dec_count(ip) : 0;
        int k17 = ndig ? 17 - ndig : v > 0.1 || v < -0.1 ? 17 : 18;
        /* most such totals need 15 to 17 digits: probe those first (a k
         * up to 2 fails, as 2 did) */
        if (k17 - 2 > 2 && dec_probe(mant, s, k17 - 2, &c)) {
            lo = 2, hi = k17 - 2;
        } else if (k17 - 1 > 2 && dec_probe(mant, s, k17 - 1, &c)) {
            lo = hi = k17 - 1;
        } else {
            lo = hi = k17;
            dec_probe(mant, s, k17, &c);
        }
    }
    while (hi - lo > 1) {
        int k = (lo + hi) / 2;
        if (dec_probe(mant, s, k, &ck))
            hi = k, c = ck;
        else
            lo = k;
    }
    if (bits >> 63)
        *p++ = '-';
    return dec_fixed(p, c, hi);
}

/* Outside the fast path: the fewest significant digits ("%.17g" always
 * reads back) that strtod reads as v, printf's exponent form included
 * ("1e+300", valid JSON). Up to 17 printf calls: huge or tiny totals only. */
static char *dec_shortest_slow(char *p, double v) {
    char t[32];
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    memcpy(p, t, (size_t)n);
    return p + n;
}

#endif
