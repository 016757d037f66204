/* The Date header, formatted at most once a second per thread: the loop's
 * cached monotonic clock tells when the next second of CLOCK_REALTIME may
 * have begun, so a request costs a compare, not a syscall. */
#include "http/server.h"
#include <time.h>

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static void put2(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

size_t vx__http_fmt_date(char *buf, int64_t t) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    memcpy(buf, wdays[tm.tm_wday], 3);
    memcpy(buf + 3, ", ", 2);
    put2(buf + 5, tm.tm_mday);
    buf[7] = ' ';
    memcpy(buf + 8, months[tm.tm_mon], 3);
    buf[11] = ' ';
    int y = tm.tm_year + 1900;
    put2(buf + 12, y / 100 % 100);
    put2(buf + 14, y % 100);
    buf[16] = ' ';
    put2(buf + 17, tm.tm_hour);
    buf[19] = ':';
    put2(buf + 20, tm.tm_min);
    buf[22] = ':';
    put2(buf + 23, tm.tm_sec);
    memcpy(buf + 25, " GMT", 4);
    buf[29] = 0;
    return 29;
}

static int num(const char *p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

int64_t vx__http_parse_date(const char *p, size_t n) {
    /* "Sun, 06 Nov 1994 08:49:37 GMT" only (the other two forms are obsolete). */
    if (n != 29 || p[3] != ',' || memcmp(p + 25, " GMT", 4) != 0)
        return -1;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (!memcmp(p + 8, months[i], 3))
            mon = i;
    struct tm tm = {.tm_mday = num(p + 5, 2),
                    .tm_mon = mon,
                    .tm_year = num(p + 12, 4) - 1900,
                    .tm_hour = num(p + 17, 2),
                    .tm_min = num(p + 20, 2),
                    .tm_sec = num(p + 23, 2)};
    if (mon < 0 || tm.tm_mday < 1 || tm.tm_year < 0 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0)
        return -1;
    return (int64_t)timegm(&tm);
}

static _Thread_local struct {
    uint64_t next_ms; /* loop time at which the second may have changed */
    size_t len;
    char line[40];
} cache;

const char *vx__http_date_line(vx_loop *loop, size_t *len) {
    uint64_t now = vx_loop_now(loop);
    if (VX__UNLIKELY(now >= cache.next_ms || cache.len == 0)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(cache.line, "Date: ", 6);
        vx__http_fmt_date(cache.line + 6, ts.tv_sec);
        memcpy(cache.line + 35, "\r\n", 2);
        cache.len = 37;
        /* The loop clock is at most a turn stale: recheck at the boundary. */
        cache.next_ms = now + (uint64_t)(1000 - ts.tv_nsec / 1000000);
    }
    *len = cache.len;
    return cache.line;
}
