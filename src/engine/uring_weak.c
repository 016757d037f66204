/* TEMPORARY (deleted before commit): placeholders until the real files land. */
#include "poller/poller.h"
static int unavailable(vx_loop *loop) { (void)loop; return -ENOSYS; }
__attribute__((weak)) const vx__engine vx__uring_engine = {.name = "uring", .init = unavailable};
