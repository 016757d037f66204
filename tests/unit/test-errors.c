/* Error names and messages, backend names: pure functions of the public API. */
#include "harness.h"

#include <errno.h>
#include <limits.h>

TEST(err_names) {
    CHECK_EQ_STR(vx_err_name(-ECONNRESET), "ECONNRESET");
    CHECK_EQ_STR(vx_err_name(-EAGAIN), "EAGAIN");
    CHECK_EQ_STR(vx_err_name(-EMFILE), "EMFILE");
    CHECK_EQ_STR(vx_err_name(-ETIMEDOUT), "ETIMEDOUT");
    CHECK_EQ_STR(vx_err_name(-ECONNREFUSED), "ECONNREFUSED");
    CHECK_EQ_STR(vx_err_name(-ENOENT), "ENOENT");
    CHECK_EQ_STR(vx_err_name(-EINVAL), "EINVAL");
    CHECK_EQ_STR(vx_err_name(-ENOMEM), "ENOMEM");
    CHECK_EQ_STR(vx_err_name(-EPIPE), "EPIPE");
    CHECK_EQ_STR(vx_err_name(-ENOSYS), "ENOSYS");
    CHECK_EQ_STR(vx_err_name(-EADDRINUSE), "EADDRINUSE");
}

TEST(messages_never_null) {
    static const int odd[] = {0, 1, INT_MIN, INT_MAX, -INT_MAX, -4095, -4096, -100000, 77};
    int nulls = 0, empty = 0;
    for (int e = -300; e <= 300; e++) {
        const char *n = vx_err_name(e), *m = vx_strerror(e);
        nulls += !n || !m;
        empty += (n && !*n) || (m && !*m);
    }
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        const char *n = vx_err_name(odd[i]), *m = vx_strerror(odd[i]);
        nulls += !n || !m;
        empty += (n && !*n) || (m && !*m);
    }
    CHECK_EQ_INT(nulls, 0);
    CHECK_EQ_INT(empty, 0);
    /* a real message, not the name again */
    const char *m = vx_strerror(-ECONNRESET);
    CHECK(m && strcmp(m, "ECONNRESET") != 0 && strlen(m) > 5);
    CHECK(strcmp(vx_strerror(-ECONNRESET), vx_strerror(-ETIMEDOUT)) != 0);
}

TEST(backend_names_round_trip) {
    static const char *names[] = {"auto", "select", "poll", "epoll", "epoll-et", "uring"};
    CHECK_EQ_INT(sizeof names / sizeof names[0], VX_BACKEND__COUNT);
    for (int b = 0; b < VX_BACKEND__COUNT; b++) {
        const char *n = vx_backend_name((vx_backend)b);
        CHECK_EQ_STR(n, names[b]);
        CHECK_EQ_INT(vx_backend_parse(names[b]), b);
        if (n)
            CHECK_EQ_INT(vx_backend_parse(n), b);
    }
    CHECK_EQ_INT(vx_backend_parse("epoll"), VX_BACKEND_EPOLL);
    CHECK_EQ_INT(vx_backend_parse("epoll-et"), VX_BACKEND_EPOLL_ET);
    CHECK_EQ_INT(vx_backend_parse("uring"), VX_BACKEND_URING);
}

TEST(backend_parse_junk) {
    static const char *junk[] = {"",       "junk",   "epol",     "epoll-",  "epoll-etx", "kqueue",
                                 " epoll", "epoll ", "io_uring", "uring\n", "sel"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        CHECK_MSG(vx_backend_parse(junk[i]) == -EINVAL, "vx_backend_parse(\"%s\") = %d", junk[i],
                  vx_backend_parse(junk[i]));
}
