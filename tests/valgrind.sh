#!/usr/bin/env bash
# valgrind.sh PROGRAM [ARGS...]: run one test program under valgrind memcheck.
# CMake registers every unit and integration test through this when
# configured with -DVX_MEMCHECK=ON (make memcheck).
#
# The harness forks a child per case, and some cases fork servers of their
# own (fork-per-conn, procs) whose exit status no one looks at; so every
# process writes its own log and the run fails if any log reports an error
# or a definite/indirect leak, whatever the exit status says. Those logs are
# printed in full. Processes killed with SIGKILL (the harness ends leftover
# servers that way) write no summary: they are counted, not judged.
#
# VX_HTTP_SCALAR=1: valgrind 3.19 cannot execute PCMPESTRI in range mode
# (SIGILL, "unhandled instruction"), which the SSE4.2 header scanner uses.
# The SIMD scanners are checked by ASan and the guard-page unit tests.
#
# VX_VALGRIND=1 lets a case skip what valgrind cannot model. Known: valgrind
# does not hand a lowered RLIMIT_NOFILE to the kernel, it only records it;
# an accept() the kernel completes above that limit is then closed by
# valgrind and reported as EMFILE, so that client loses its connection.
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: valgrind.sh PROGRAM [ARGS...]" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed" >&2; exit 1; }
logs=$(mktemp -d "${TMPDIR:-/tmp}/vx-memcheck.XXXXXX")
trap 'rm -rf "$logs"' EXIT

export VX_HTTP_SCALAR=1 VX_VALGRIND=1
export HARNESS_TIMEOUT=${HARNESS_TIMEOUT:-300} # valgrind runs code 10-50x slower

valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect --trace-children=yes --num-callers=30 \
    --suppressions="$here/valgrind.supp" --log-file="$logs/vg.%p" "$@"
rc=$?

checked=0 killed=0 bad=0
for f in "$logs"/vg.*; do
    [ -e "$f" ] || continue
    summary=$(grep -E '== ERROR SUMMARY: [0-9]+ errors' "$f")
    if [ -z "$summary" ]; then
        killed=$((killed + 1))
        continue
    fi
    checked=$((checked + 1))
    if ! grep -qE 'ERROR SUMMARY: 0 errors' <<<"$summary"; then
        bad=$((bad + 1))
        echo "---- valgrind: $(basename "$f") ----"
        cat "$f"
    fi
done
echo "valgrind.sh: $(basename "$1"): exit $rc, $checked processes checked, $bad with errors," \
    "$killed without a summary (killed)"
[ "$bad" -eq 0 ] || exit 1
[ "$rc" -eq 77 ] && exit 77 # the harness's "skipped"
[ "$checked" -gt 0 ] || exit 1
exit "$rc"
