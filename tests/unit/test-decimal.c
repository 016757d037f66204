/* Unit tests of apps/decimal.h, vx-http's number output: every result must
 * be byte for byte what printf gives ("%llu", "%lld", "%.2f"), or (cents
 * only) NULL, where the caller asks printf. */
#include "../../apps/decimal.h"
#include "harness.h"
#include <float.h>
#include <limits.h>
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

/* true when dec_cents answered (and then it must agree with printf) */
static bool same_cents(double v) {
    char want[400], got[32];
    int n = snprintf(want, sizeof want, "%.2f", v);
    char *e = dec_cents(got, v);
    if (!e)
        return false;
    if (e - got != n || memcmp(got, want, (size_t)n)) {
        fprintf(stderr, "dec_cents(%.17g): '%.*s', printf: '%s'\n", v, (int)(e - got), got, want);
        CHECK(false);
    }
    return true;
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

TEST(decimal_cents_match_printf) {
    double edge[] = {0.0,     -0.0,          0.001,          -0.001,     0.004,     0.005,
                     0.006,   0.015,         0.125,          0.375,      1.005,     2.675,
                     1.115,   99.995,        100.0,          0.1 + 0.2,  1e-300,    -1e-300,
                     DBL_MIN, 8589934591.99, -8589934591.99, 123456.785, 4.35 * 100};
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        same_cents(edge[i]);
    CHECK(same_cents(0.0) && same_cents(-0.0) && same_cents(12.5) && same_cents(-3.14159));
    /* printf's domain only */
    CHECK(!dec_cents((char[32]){0}, 0x1p33));
    CHECK(!dec_cents((char[32]){0}, -1e300));
    CHECK(!dec_cents((char[32]){0}, INFINITY));
    CHECK(!dec_cents((char[32]){0}, -INFINITY));
    CHECK(!dec_cents((char[32]){0}, NAN));
    rng r;
    rng_seed(&r, 11);
    int dataset_kind = 0;
    for (int i = 0; i < 200000; i++) {
        /* the dataset's kind: cents price x quantity x m, never near a half
         * cent, so always answered without printf ... */
        double price = (double)rng_range(&r, 0, 100000) / 100, qty = rng_range(&r, 0, 1000);
        double m = (double)((int)rng_range(&r, 0, 200) - 100);
        dataset_kind += same_cents(price * qty * m);
        /* ... exact half cents and the doubles beside them (printf's, mostly) ... */
        double k = (double)rng_range(&r, 0, 1u << 30) + 0.5; /* cents */
        same_cents(k / 100);
        same_cents(next_to(k / 100, false));
        same_cents(next_to(k / 100, true));
        /* ... and any magnitude, either sign */
        double x = scale2((double)(rng_next(&r) >> 11), (int)rng_range(&r, 0, 70) - 35 - 53);
        same_cents(rng_next(&r) & 1 ? x : -x);
    }
    CHECK_EQ_INT(dataset_kind, 200000);
}
