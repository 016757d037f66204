/* Unit tests of how static files are opened beneath their root: openat2
 * (RESOLVE_BENEATH) and the component walk used when the kernel lacks it,
 * side by side over one tree. The walk refuses every symbolic link; neither
 * ever opens something outside the root; a FIFO opens without blocking. */
#include "harness.h"
#include "http/server.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[64], root[96];
static int root_fd = -1;

static void put(const char *dir, const char *name, const char *text) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

/* top/outside.txt, and root = top/www holding:
 *   a.txt  sub/b.txt  fifo  in-link -> a.txt  sub/up-link -> ../a.txt
 *   abs-out -> top/outside.txt  rel-out -> ../outside.txt  dir-out -> top */
static void make_tree(void) {
    snprintf(top, sizeof top, "/tmp/vx-static-open-XXXXXX");
    REQUIRE(mkdtemp(top));
    snprintf(root, sizeof root, "%s/www", top);
    REQUIRE(mkdir(root, 0755) == 0);
    root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(root_fd >= 0);
    put(top, "outside.txt", "outside");
    put(root, "a.txt", "a");
    REQUIRE(mkdirat(root_fd, "sub", 0755) == 0);
    char sub[128], out[128];
    snprintf(sub, sizeof sub, "%s/sub", root);
    put(sub, "b.txt", "b");
    REQUIRE(mkfifoat(root_fd, "fifo", 0644) == 0);
    REQUIRE(symlinkat("a.txt", root_fd, "in-link") == 0);
    REQUIRE(symlinkat("../a.txt", root_fd, "sub/up-link") == 0);
    snprintf(out, sizeof out, "%s/outside.txt", top);
    REQUIRE(symlinkat(out, root_fd, "abs-out") == 0);
    REQUIRE(symlinkat("../outside.txt", root_fd, "rel-out") == 0);
    REQUIRE(symlinkat(top, root_fd, "dir-out") == 0);
}

static void remove_tree(void) {
    static const char *const names[] = {"a.txt",       "sub/b.txt", "fifo",    "in-link",
                                        "sub/up-link", "abs-out",   "rel-out", "dir-out"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        unlinkat(root_fd, names[i], 0);
    unlinkat(root_fd, "sub", AT_REMOVEDIR);
    close(root_fd);
    rmdir(root);
    char out[128];
    snprintf(out, sizeof out, "%s/outside.txt", top);
    unlink(out);
    rmdir(top);
}

/* What opening name gives: the file's first byte, 'F' for a FIFO, 'D' for a
 * directory, or '-' when refused. */
static char what(int (*open_fn)(int, const char *), const char *name) {
    int fd = open_fn(root_fd, name);
    if (fd < 0)
        return '-';
    struct stat st;
    char c = '?';
    if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
        c = 'F';
    else if (S_ISDIR(st.st_mode))
        c = 'D';
    else if (read(fd, &c, 1) != 1)
        c = '?';
    close(fd);
    return c;
}

static const struct {
    const char *name;
    char beneath, walk;
} cases[] = {
    {"a.txt", 'a', 'a'},       {"sub/b.txt", 'b', 'b'},
    {"fifo", 'F', 'F'},        {"sub", 'D', 'D'},
    {"missing", '-', '-'},     {"sub/missing", '-', '-'},
    {"in-link", 'a', '-'}, /* a link inside: followed, or refused by the walk */
    {"sub/up-link", 'a', '-'}, {"abs-out", '-', '-'}, /* links out: never */
    {"rel-out", '-', '-'},     {"dir-out/outside.txt", '-', '-'},
    {"sub//b.txt", 'b', '-'}, /* an empty segment: the walk refuses it */
};

TEST(open_beneath_and_walk_agree_on_the_root) {
    make_tree();
    bool o2 = have_openat2(); /* without (valgrind has none), open_beneath is the walk */
    harness_log("openat2 %s", o2 ? "available" : "missing: open_beneath walks");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char b = what(vx__http_open_beneath, cases[i].name);
        char w = what(vx__http_open_walk, cases[i].name);
        char want = o2 ? cases[i].beneath : cases[i].walk;
        CHECK_MSG(b == want, "beneath %s: got '%c', want '%c'", cases[i].name, b, want);
        CHECK_MSG(w == cases[i].walk, "walk %s: got '%c', want '%c'", cases[i].name, w,
                  cases[i].walk);
    }
    remove_tree();
}

/* The walk's errors say why: a link is ELOOP (last) or ENOTDIR (inside the
 * path), a missing file ENOENT, a component past NAME_MAX ENAMETOOLONG. */
TEST(open_walk_errors) {
    make_tree();
    errno = 0;
    CHECK(vx__http_open_walk(root_fd, "in-link") < 0 && errno == ELOOP);
    CHECK(vx__http_open_walk(root_fd, "dir-out/outside.txt") < 0 && errno == ENOTDIR);
    CHECK(vx__http_open_walk(root_fd, "sub/missing") < 0 && errno == ENOENT);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK(vx__http_open_walk(root_fd, longname) < 0 && errno == ENAMETOOLONG);
    int before = count_open_fds();
    for (int i = 0; i < 100; i++) /* intermediate directory fds are closed on every path */
        CHECK(vx__http_open_walk(root_fd, "sub/missing") < 0);
    CHECK_EQ_INT(count_open_fds(), before);
    remove_tree();
}
