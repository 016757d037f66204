/* Unit tests of apps/decimal.h, vx-http's number output: integers byte for
 * byte as printf gives them ("%llu", "%lld"); doubles as the shortest
 * decimal that strtod reads back as the same double, with the digits of the
 * shortest "%.*g" that does (the reference below). */
#include "../../apps/decimal.h"
#include "harness.h"
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* the double next to v away from zero (up) or towards it, without libm */
static double next_to(double v, bool up) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    b = up ? b + 1 : b - 1;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* v * 2^e for |e| < 1024, without libm */
static double scale2(double v, int e) {
    for (; e > 0; e--)
        v *= 2;
    for (; e < 0; e++)
        v /= 2;
    return v;
}

static void same_i64(long long v) {
    char want[32], got[32];
    int n = snprintf(want, sizeof want, "%lld", v);
    char *e = dec_i64(got, v);
    CHECK_EQ_INT(e - got, n);
    CHECK(!memcmp(got, want, (size_t)n));
}

/* Significant digits of a decimal string: without sign, point, exponent,
 * leading and trailing zeros ("0.0120" and "1.2e-02" both give "12"). */
static int sig_digits(const char *s, size_t n, char *out) {
    int k = 0;
    for (size_t i = 0; i < n && s[i] != 'e'; i++)
        if (s[i] >= '0' && s[i] <= '9' && (k || s[i] != '0'))
            out[k++] = s[i];
    while (k > 1 && out[k - 1] == '0')
        k--;
    out[k] = 0;
    return k;
}

/* dec_shortest(v) must read back as v and have the significant digits of
 * the shortest "%.*g" that reads back (correctly rounded, so the same
 * digits unless two shortest candidates tie, which the inputs avoid). */
static void same_shortest(double v) {
    char got[40], want[40], gd[40], wd[40];
    char *e = dec_shortest(got, v);
    if (!e || e - got >= 32) {
        fprintf(stderr, "dec_shortest(%.17g): %s\n", v, e ? "over 31 bytes" : "NULL");
        CHECK(false);
        return;
    }
    *e = 0;
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(want, sizeof want, "%.*g", prec, v);
        if (strtod(want, NULL) == v)
            break;
    }
    sig_digits(got, (size_t)(e - got), gd);
    sig_digits(want, (size_t)n, wd);
    if (strtod(got, NULL) != v || strcmp(gd, wd) || !signbit(v) != (got[0] != '-')) {
        fprintf(stderr, "dec_shortest(%.17g): '%s', shortest %%g: '%s'\n", v, got, want);
        CHECK(false);
    }
}

static void shortest_is(double v, const char *want) {
    char got[40];
    char *e = dec_shortest(got, v);
    CHECK(e != NULL);
    if (!e)
        return;
    *e = 0;
    if (strcmp(got, want)) {
        fprintf(stderr, "dec_shortest(%.17g): '%s', want '%s'\n", v, got, want);
        CHECK(false);
    }
}

TEST(decimal_integers_match_printf) {
    long long edge[] = {0,
                        1,
                        -1,
                        9,
                        10,
                        99,
                        100,
                        12345,
                        -12345,
                        INT_MAX,
                        INT_MIN,
                        LLONG_MAX,
                        LLONG_MIN,
                        LLONG_MAX - 1,
                        LLONG_MIN + 1};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        same_i64(edge[i]);
    rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < 100000; i++) {
        uint64_t u = rng_next(&r) >> rng_range(&r, 0, 63);
        same_i64((long long)u);
        same_i64(-(long long)(u >> 1));
        char want[32], got[32];
        int n = snprintf(want, sizeof want, "%llu", (unsigned long long)u);
        CHECK_EQ_INT(dec_u64(got, u) - got, n);
        CHECK(!memcmp(got, want, (size_t)n));
    }
}

TEST(decimal_shortest_reads_back) {
    /* as Python's repr and JavaScript print them (integers without ".0") */
    shortest_is(162.59 * 20 * 3, "9755.400000000001");
    shortest_is(162.59 * 20, "3251.8");
    shortest_is(37.15 * 69 * 2, "5126.7");
    shortest_is(10575.0, "10575");
    shortest_is(0.1 + 0.2, "0.30000000000000004");
    shortest_is(0.1, "0.1");
    shortest_is(0.05, "0.05");
    shortest_is(-2.5, "-2.5");
    shortest_is(0.0, "0");
    shortest_is(-0.0, "-0");
    shortest_is(1.0, "1");
    shortest_is(9007199254740991.0, "9007199254740991"); /* 2^53 - 1 */
    shortest_is(1e300, "1e+300");                        /* printf's form, valid JSON */
    shortest_is(5e-324, "5e-324");
    CHECK(dec_shortest((char[40]){0}, INFINITY) == NULL);
    CHECK(dec_shortest((char[40]){0}, -INFINITY) == NULL);
    CHECK(dec_shortest((char[40]){0}, NAN) == NULL);
    double edge[] = {0x1p-6,  0x1p-6 * 3,    0x1p52,     0x1p53,     0x1p-7,  1e-5,
                     DBL_MIN, DBL_MAX,       0.125,      0.015625,   1.005,   2.675,
                     99.995,  8589934591.99, 123456.785, 4.35 * 100, 1e15,    1e16,
                     1e17,    1e22,          1e23,       0.3,        2.0 / 3, 1.0 / 3};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) {
        same_shortest(edge[i]);
        same_shortest(-edge[i]);
        if (edge[i] < DBL_MAX)
            same_shortest(next_to(edge[i], true));
        same_shortest(next_to(edge[i], false));
    }
    rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < 100000; i++) {
        /* the dataset's kind: a cents price x quantity x m ... */
        double price = (double)rng_range(&r, 0, 100000) / 100, qty = rng_range(&r, 0, 1000);
        double m = (double)((int)rng_range(&r, 0, 200) - 100);
        same_shortest(price * qty * m);
        /* ... powers of two and the doubles beside them (the uneven gap) ... */
        double p2 = scale2(1, (int)rng_range(&r, 0, 70) - 10);
        same_shortest(p2);
        same_shortest(next_to(p2, false));
        /* ... and any magnitude, either sign */
        double x = scale2((double)(rng_next(&r) >> 11), (int)rng_range(&r, 0, 90) - 45 - 53);
        same_shortest(rng_next(&r) & 1 ? x : -x);
    }
}
