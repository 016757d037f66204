/* Backend choice: names, the VX_BACKEND override, and the fallback of `auto`
 * to epoll when io_uring cannot be used (forced with VX_URING_DISABLE=1, the
 * way a container that forbids io_uring would refuse it). */
#include "harness.h"
#include <stdlib.h>

static char logged[4096];
static void capture(int level, const char *msg, void *ud) {
    (void)level;
    (void)ud;
    strncat(logged, msg, sizeof logged - strlen(logged) - 2);
    strcat(logged, "\n");
}

TEST(auto_falls_back_to_epoll_when_uring_is_forbidden) {
    unsetenv("VX_BACKEND");
    setenv("VX_URING_DISABLE", "1", 1);
    vx_log_set(capture, NULL, VX_LOG_INFO);
    vx_loop *loop;
    REQUIRE_OK(vx_loop_new(&loop, NULL));
    CHECK_EQ_STR(vx_loop_backend(loop), "epoll");
    CHECK_MSG(strstr(logged, "io_uring unavailable") != NULL, "log was: %s", logged);
    vx_loop_free(loop);
    /* Asking for uring explicitly fails instead of silently using something else. */
    CHECK(vx_loop_new(&loop, &(vx_loop_opts){.backend = VX_BACKEND_URING}) < 0);
    vx_log_set(NULL, NULL, VX_LOG_INFO);
}

TEST(auto_prefers_uring_when_it_works) {
    unsetenv("VX_BACKEND");
    unsetenv("VX_URING_DISABLE");
    vx_loop *loop;
    if (vx_loop_new(&loop, &(vx_loop_opts){.backend = VX_BACKEND_URING}) < 0)
        SKIP("io_uring is not available on this machine");
    vx_loop_free(loop);
    REQUIRE_OK(vx_loop_new(&loop, NULL));
    CHECK_EQ_STR(vx_loop_backend(loop), "uring");
    vx_loop_free(loop);
}

TEST(env_override_names_the_backend) {
    static const char *const names[] = {"select", "poll", "epoll", "epoll-et", "uring"};
    unsetenv("VX_URING_DISABLE");
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        setenv("VX_BACKEND", names[i], 1);
        vx_loop *loop;
        int rc = vx_loop_new(&loop, NULL);
        if (rc < 0) {
            CHECK_MSG(!strcmp(names[i], "uring"), "%s: %s", names[i], vx_err_name(rc));
            continue;
        }
        CHECK_EQ_STR(vx_loop_backend(loop), names[i]);
        vx_loop_free(loop);
    }
    unsetenv("VX_BACKEND");
}
