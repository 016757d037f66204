#!/usr/bin/env bash
# soak.sh: vx-http under vx-load's mix of valid, invalid, slow and resetting
# clients (plus a few pipelining ones) for SOAK_SECONDS, sampling the server's
# RSS (VmRSS) and open fds every second. It fails when
#   - RSS grows by more than SOAK_RSS_BOUND_KIB after the warm-up,
#   - the fds are not back to their baseline (counted before the first
#     connection) within SOAK_FD_SETTLE seconds after the load stops,
#   - any valid request failed, or an invalid/slow/reset client saw a wrong
#     answer (vx-load's exit status and counters),
#   - the server does not answer afterwards, or does not exit 0 on SIGTERM.
# The last line is the summary, grep-able: "soak: PASS ..." or "soak: FAIL ...".
#
# Env: VX_BIN (directory with vx-http and vx-load; default build/bin),
#   SOAK_SECONDS (300), SOAK_WARMUP (10), SOAK_BACKEND (auto: the server),
#   SOAK_MODEL (single: the server's --model; RSS and fds are summed over
#   the server and its child processes, procs:N's workers; fork-per-conn's
#   children count in the fds only),
#   SOAK_LOAD_BACKEND (auto: the clients), SOAK_CONNS (100), SOAK_MIX
#   (valid=88,invalid=4,slow=4,reset=4), SOAK_PIPELINE_CONNS (8, pipelining 16
#   deep; 0: none), SOAK_RSS_BOUND_KIB (4096), SOAK_FD_SETTLE (5),
#   SOAK_LOG (directory for the samples and outputs; default a temporary one,
#   kept and named when the soak fails).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
bin=${VX_BIN:-$top/build/bin}
secs=${SOAK_SECONDS:-300}
warmup=${SOAK_WARMUP:-10}
backend=${SOAK_BACKEND:-auto}
model=${SOAK_MODEL:-single}
load_backend=${SOAK_LOAD_BACKEND:-auto}
conns=${SOAK_CONNS:-100}
mix=${SOAK_MIX:-valid=88,invalid=4,slow=4,reset=4}
pconns=${SOAK_PIPELINE_CONNS:-8}
bound=${SOAK_RSS_BOUND_KIB:-4096}
settle=${SOAK_FD_SETTLE:-5}
header_ms=1000 # the server's header timeout: each slow client gets its 408 after ~1 s

for x in vx-http vx-load; do
    [ -x "$bin/$x" ] || { echo "soak: FAIL: no $bin/$x (build first)"; exit 1; }
done
if [ "$warmup" -ge "$secs" ]; then
    echo "soak: FAIL: SOAK_WARMUP ($warmup) must be shorter than SOAK_SECONDS ($secs)"
    exit 1
fi
if [ -n "${SOAK_LOG:-}" ]; then
    log=$SOAK_LOG
    mkdir -p "$log" && rm -f "$log"/*.txt "$log"/*.log
else
    log=$(mktemp -d "${TMPDIR:-/tmp}/vx-soak.XXXXXX")
fi
srv='' loads=()
# shellcheck disable=SC2317 # run by the trap
cleanup() {
    [ -n "$srv" ] && pkill -9 -P "$srv" 2>/dev/null
    for p in "${loads[@]}" $srv; do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT

# ------------------------------------------------------------ the server

# A 1 MiB file: the mid-response resets land in the middle of its body,
# while the server still holds the file open and has output queued.
mkdir -p "$log/www"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$log/www/big.bin"
"$bin/vx-http" --port 0 --backend "$backend" --model "$model" --root "$log/www" \
    --header-timeout "$header_ms" >"$log/server.txt" 2>"$log/server-err.txt" &
srv=$!
for _ in $(seq 100); do grep -q '^listening' "$log/server.txt" && break; sleep 0.05; done
if ! grep -q '^listening' "$log/server.txt"; then
    echo "soak: FAIL: vx-http did not start: $(tail -3 "$log/server-err.txt")"
    exit 1
fi
port=$(sed -n 's/^listening [^:]*:\([0-9]*\) .*/\1/p' "$log/server.txt")
srv_backend=$(sed -n 's/^listening .* backend=\([^ ]*\) .*/\1/p' "$log/server.txt")

srv_model=$(sed -n 's/^listening .* model=\([^ ]*\).*/\1/p' "$log/server.txt")

# The server and its children (procs:N workers, fork-per-conn's children):
# empty once the server is gone, so a dead server reads as "no sample".
# RSS leaves out fork-per-conn's children: each lives one connection and its
# memory goes back when it exits, so their sum follows how many connections
# are open, not a leak (what can leak is the acceptor). Their fds still count:
# a child that never exits keeps the fds from returning to the baseline.
tree() {
    [ -d "/proc/$srv" ] || return 1
    echo "$srv"
    [ "${1:-}" = rss ] && [ "$srv_model" = fork-per-conn ] && return 0
    pgrep -P "$srv" || true
}
# One pass over /proc per sample, however many processes (a child that
# exits meanwhile is skipped).
rss() {
    local pids p files=()
    pids=$(tree rss) || return 0
    for p in $pids; do files+=("/proc/$p/status"); done
    cat "${files[@]}" 2>/dev/null | awk '/^VmRSS:/ { n += $2; seen = 1 } END { if (seen) print n }'
}
fds() {
    local pids p dirs=()
    pids=$(tree) || return 0
    for p in $pids; do dirs+=("/proc/$p/fd"); done
    find "${dirs[@]}" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

sleep 0.5 # the listening line comes before the loop threads' (and workers') last fds
fd_base=$(fds)
rss_start=$(rss)
echo "# t_s rss_kib fds phase (server pid $srv, port $port, backend $srv_backend, model $srv_model)" >"$log/soak.log"

# ------------------------------------------------------------ the load

common=(--port "$port" --backend "$load_backend" --duration "$secs" --path /plaintext
    --expect 'Hello, World!' --timeout 10000)
"$bin/vx-load" "${common[@]}" --conns "$conns" --mix "$mix" --reset-path /static/big.bin \
    --slow-interval 100 --slow-timeout 5000 >"$log/load-mix.txt" 2>"$log/load-mix-err.txt" &
loads+=($!)
if [ "$pconns" -gt 0 ]; then
    "$bin/vx-load" "${common[@]}" --conns "$pconns" --pipeline 16 \
        >"$log/load-pipeline.txt" 2>"$log/load-pipeline-err.txt" &
    loads+=($!)
fi

# One sample a second until the loads end (bounded: they stop at $secs plus
# their drain timeout).
ms() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms) t=0
rss_warm='' rss_min='' rss_max=0 fd_peak=$fd_base
running() { for p in "${loads[@]}"; do kill -0 "$p" 2>/dev/null && return 0; done; return 1; }
while running && [ "$t" -le $((secs + 30)) ]; do
    t=$((t + 1))
    left=$((t0 + t * 1000 - $(ms))) # on the second, however long a sample took
    [ "$left" -gt 0 ] && sleep "$((left / 1000)).$(printf %03d $((left % 1000)))"
    r=$(rss) f=$(fds)
    [ -n "$r" ] || break
    phase=load
    if [ "$t" -le "$warmup" ]; then
        phase=warmup
    else
        [ -n "$rss_warm" ] || rss_warm=$r
        [ "$r" -gt "$rss_max" ] && rss_max=$r
        { [ -z "$rss_min" ] || [ "$r" -lt "$rss_min" ]; } && rss_min=$r
    fi
    [ "$f" -gt "$fd_peak" ] && fd_peak=$f
    echo "$t $r $f $phase" >>"$log/soak.log"
done
load_rc=()
for p in "${loads[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -INT "$p" # past its bound: say so below
    wait "$p"
    load_rc+=($?)
done
loads=()

# ------------------------------------------------------------ afterwards

# Connections close with a FIN handshake (up to 2 s of linger): allow a few
# seconds for the fds to come back.
fd_final=$(fds)
deadline=$(($(ms) + settle * 1000))
while [ "$fd_final" -ne "$fd_base" ] && [ "$(ms)" -lt "$deadline" ]; do
    sleep 0.2
    fd_final=$(fds)
done
fd_settle_ms=$(($(ms) - deadline + settle * 1000))
echo "$((($(ms) - t0) / 1000)) $(rss) $fd_final after" >>"$log/soak.log"

"$bin/vx-load" --port "$port" --backend "$load_backend" --conns 2 --requests 100 \
    --duration 10 --expect 'Hello, World!' >"$log/after.txt" 2>&1
after_rc=$?
kill -TERM "$srv"
srv_rc=124
for _ in $(seq 100); do
    if ! kill -0 "$srv" 2>/dev/null; then
        wait "$srv"
        srv_rc=$?
        break
    fi
    sleep 0.1
done
[ "$srv_rc" -eq 124 ] || srv=

# ------------------------------------------------------------ the verdict

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" "$1" | head -1; }
sum() {
    local n=0 v
    for f in "$log"/load-*.txt; do
        case $f in *-err.txt) continue ;; esac
        v=$(field "$f" "$1")
        n=$((n + ${v:-0}))
    done
    echo $n
}
fails=()
for i in "${!load_rc[@]}"; do
    [ "${load_rc[$i]}" -eq 0 ] || fails+=("vx-load #$i exited ${load_rc[$i]}")
done
grep -q '^vx-load ' "$log/load-mix.txt" || fails+=("no summary from vx-load (mix)")
[ "$(sum failed)" -eq 0 ] || fails+=("$(sum failed) valid requests failed")
[ "$(sum ok)" -gt 0 ] || fails+=("no valid request succeeded")
[ "$after_rc" -eq 0 ] || fails+=("the server did not answer after the load: $(tail -1 "$log/after.txt")")
[ "$srv_rc" -eq 0 ] || fails+=("vx-http exited $srv_rc on SIGTERM")
[ "$fd_final" -eq "$fd_base" ] || fails+=("fds $fd_final, not back to $fd_base within ${settle}s")
growth=$((rss_max - ${rss_warm:-0}))
if [ -z "$rss_warm" ]; then
    fails+=("no RSS sample after the warm-up")
elif [ "$growth" -gt "$bound" ]; then
    fails+=("RSS grew ${growth} KiB after the warm-up (bound ${bound} KiB)")
fi

summary="secs=$secs warmup=$warmup backend=$srv_backend model=$srv_model requests=$(sum requests) ok=$(sum ok)"
summary+=" failed=$(sum failed) errors=$(sum errors) rps=$(sum rps)"
for c in invalid slow reset; do
    summary+=" $c=$(sum $c) ${c}_ok=$(sum ${c}_ok) ${c}_bad=$(sum ${c}_bad)"
done
summary+=" rss_kib_start=$rss_start rss_kib_warm=${rss_warm:-0} rss_kib_min=${rss_min:-0}"
summary+=" rss_kib_max=$rss_max rss_growth_kib=$growth rss_bound_kib=$bound"
summary+=" fd_base=$fd_base fd_peak=$fd_peak fd_final=$fd_final fd_settle_ms=$fd_settle_ms"
for f in "$log"/load-mix.txt "$log"/load-pipeline.txt; do
    [ -e "$f" ] && echo "soak: $(basename "$f" .txt): $(cat "$f")"
done
if [ ${#fails[@]} -eq 0 ]; then
    [ -n "${SOAK_LOG:-}" ] || rm -rf "$log"
    echo "soak: PASS $summary"
    exit 0
fi
for f in "${fails[@]}"; do echo "soak: FAIL: $f"; done
tail -5 "$log"/load-*-err.txt "$log/server-err.txt" 2>/dev/null
echo "soak: samples and outputs kept in $log"
echo "soak: FAIL $summary"
exit 1
