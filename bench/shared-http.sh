#!/usr/bin/env bash
# bench/shared-http.sh: the shared harness's own HTTP measurement
# ($PEERS_DIR/http.sh: TechEmpower plaintext, 64 connections plain and 256
# 16-deep pipelined) of vx-http and the peers, in interleaved rounds, so
# that vortex is measured exactly as the peers were and next to them in
# time. Its figures are the harness's (CPU shares in whole percents);
# bench/http.sh is the finer instrument. See bench/README.md.
#
# Knobs (environment, or KEY=VALUE arguments):
#   SERVERS="raw-epoll vx-epoll vx-epoll-et raw-uring vx-uring nginx"
#     (vx-BACKEND: build/bin/vx-http --backend BACKEND; others: the harness's peers)
#   ROUNDS=5  PEERS_DIR=../shared/bench  (DURATION, WARMUP, MODES: the harness's)
# Writes bench/results/shared-http-<UTC stamp>/{env.txt,raw.txt,summary.md}
# (raw.txt in bench/http.sh's "run key=value" form, the harness's line
# after "# "); prints summary.md.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_args 15 "$@"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVERS=${SERVERS:-raw-epoll vx-epoll vx-epoll-et raw-uring vx-uring nginx}
ROUNDS=${ROUNDS:-5}
PEERS_DIR=${PEERS_DIR:-../shared/bench}
VX_HTTP=${VX_HTTP:-build/bin/vx-http}
[ -x "$PEERS_DIR/http.sh" ] || die "no $PEERS_DIR/http.sh (the shared harness)"
[ -x "$VX_HTTP" ] || make build >&2 || die "make build failed"

environment() {
    env_date
    echo "kernel: $(uname -r); $(nproc) CPUs"
    echo "harness: $PEERS_DIR/http.sh, DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} MODES=\"${MODES:-plain pipe16}\""
    env_git
    echo "servers: $SERVERS; rounds: $ROUNDS"
}

# One harness line -> a run line. Its fields: http NAME MODE req/s p99_ms
# p50_ms errors server_cpu% foreign_cpu% server_core_busy%.
to_run() { # ROUND SERVER LINE
    awk -v r="$1" -v s="$2" '$1 == "http" {
        core = $8 > 0 ? $4 / ($8 / 100) : 0
        printf "run round=%s server=%s test=plaintext-%s rps=%s p99_ms=%s p50_ms=%s errors=%s non2xx=0 srv_cpu_pct=%s req_per_core_s=%.0f foreign_pct=%s core_busy_pct=%s\n",
            r, s, $3, $4, $5, $6, $7, $8, core, $9, $10
        printf "# %s\n", $0 }' <<< "$3"
}

open_results shared-http-
note "servers: $SERVERS; $ROUNDS rounds -> $RESDIR"
for ((r = 1; r <= ROUNDS; r++)); do
    echo "# round $r $(host_noise)" | tee -a "$RAW" >&2
    for s in $SERVERS; do
        case $s in
        vx-*) cmd=("$PEERS_DIR/http.sh" "$s" "$VX_HTTP" --port '{port}' --backend "${s#vx-}") ;;
        *) cmd=("$PEERS_DIR/http.sh" "$s") ;;
        esac
        if out=$("${cmd[@]}" 2> "$RESDIR/last.err") && [ -n "$out" ]; then
            to_run "$r" "$s" "$out" | tee -a "$RAW" | grep -v '^#' | sed "s/^/$BENCH_PROG: /" >&2
        else # the harness stops at its first failure: every mode of the call failed
            msg=$(tail -1 "$RESDIR/last.err")
            msg=${msg:-no output}
            for m in ${MODES:-plain pipe16}; do
                echo "fail round=$r server=$s test=plaintext-$m reason=$(tr ' |' '_/' <<< "$msg")" >> "$RAW"
            done
            note "$s round $r failed: $msg"
        fi
    done
done
rm -f "$RESDIR/last.err"
write_summary awk -f bench/stats.awk -f bench/http-table.awk
