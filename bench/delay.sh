#!/usr/bin/env bash
# bench/delay.sh: HttpArena's async profile on this machine. vx-http answers
# GET /delay/MS after MS milliseconds; N held keep-alive connections (vx-load,
# one request in flight each) can then get at most N / MS*1000 answers a
# second, whatever the server. What differs is what waiting costs: server
# CPU per request, context switches per request, tasks, and the memory of
# the whole server tree (Pss, so that fork-per-conn's shared pages count
# once), for the reactor on each backend and the blocking baselines.
#
# Knobs (environment, or KEY=VALUE arguments):
#   VARIANTS="epoll:single uring:single epoll:thread-per-conn epoll:fork-per-conn"
#            (BACKEND:MODEL; the blocking models ignore the backend)
#   CONNS_LIST="100 1000 4000"  DELAY_MS=15  ROUNDS=3  DURATION=5 (s)  WARMUP=2 (s)
#   SERVER_CPU=0  CLIENT_CPU=1  PORT_BASE=29700
# Writes bench/results/delay-<UTC stamp>/{env.txt,raw.txt,summary.md};
# prints summary.md on stdout, progress on stderr.
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_args 16 "$@"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
VARIANTS=${VARIANTS:-epoll:single uring:single epoll:thread-per-conn epoll:fork-per-conn}
CONNS_LIST=${CONNS_LIST:-100 1000 4000}
DELAY_MS=${DELAY_MS:-15}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-2}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-29700}
VX_HTTP=${VX_HTTP:-build/bin/vx-http}
VX_LOAD=${VX_LOAD:-build/bin/vx-load}

SRV_PID='' CLIENT_PID='' TMP=''
bench_traps

# start_server BACKEND MODEL PORT (the tree on SERVER_CPU); sets SRV_PID.
start_server() {
    : > "$TMP/srv.out"; : > "$TMP/srv.err"
    taskset -c "$SERVER_CPU" "$VX_HTTP" --backend "$1" --model "$2" --port "$3" \
        > "$TMP/srv.out" 2> "$TMP/srv.err" &
    SRV_PID=$!
    await_server "$3" "^listening .*:$3\b"
}

# The server tree's proportional set size, KiB.
tree_pss() {
    local p files=()
    for p in $(tree_pids "$1"); do files+=("/proc/$p/smaps_rollup"); done
    cat "${files[@]}" 2>/dev/null | awk '/^Pss:/ { s += $2 } END { print s + 0 }'
}

# run_one ROUND VARIANT CONNS
run_one() {
    local round=$1 v=$2 conns=$3 be=${2%%:*} model=${2#*:} port c0 c1 pss res tag
    tag="round=$round variant=$v conns=$conns"
    port=$(free_port)
    if ! start_server "$be" "$model" "$port"; then
        echo "fail $tag reason=start:$(head -1 "$TMP/srv.err" | tr ' ' '_')" >> "$RAW"
        note "$v: server did not start"
        return
    fi
    taskset -c "$CLIENT_CPU" "$VX_LOAD" --port "$port" --conns "$conns" --path "/delay/$DELAY_MS" \
        --expect "$DELAY_MS" --duration $((WARMUP + DURATION + 2)) > "$TMP/load.out" 2> "$TMP/load.err" &
    CLIENT_PID=$!
    sleep "$WARMUP"
    c0="$(tree_counters "$SRV_PID") ${EPOCHREALTIME/./}"
    sleep "$DURATION"
    c1="$(tree_counters "$SRV_PID") ${EPOCHREALTIME/./}"
    pss=$(tree_pss "$SRV_PID")
    wait "$CLIENT_PID"; local rc=$?
    CLIENT_PID=
    stop_server "$port"
    res=$(cat "$TMP/load.out")
    if [ -z "$res" ]; then
        echo "fail $tag reason=load:$(head -1 "$TMP/load.err" | tr ' ' '_')" >> "$RAW"
        note "$v $conns: vx-load gave no result ($(head -1 "$TMP/load.err"))"
        return
    fi
    # The window ends 2 s before vx-load does (so that no connection, thread or
    # process has ended in it). rps is vx-load's over its whole run: the
    # window's requests are taken as rps x window, the load being steady.
    local acct
    acct=$(awk -v a="$c0" -v b="$c1" -v rps="$(kv rps "$res")" -v pss="$pss" -v conns="$conns" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        win = (y[7] - x[7]) / 1e6; cpu = (y[6] - x[6]) / 1e9; req = rps * win
        csw = (y[2] - x[2]) + (y[3] - x[3])
        printf "win_s=%.3f srv_cpu_pct=%.1f cpu_us_per_req=%.2f csw_per_req=%.3f tasks=%d procs=%d pss_kib=%d pss_per_conn=%.0f",
            win, 100 * cpu / win, req ? 1e6 * cpu / req : 0, req ? csw / req : 0, y[5], y[4], pss, 1024 * pss / conns }')
    echo "run $tag load_rc=$rc $res $acct" >> "$RAW"
    note "$(printf '%-22s %5s conns %8s req/s (ceiling %s) %7s us/req %6s csw/req pss %s KiB tasks %s' "$v" "$conns" \
        "$(kv rps "$res")" "$((conns * 1000 / DELAY_MS))" "$(kv cpu_us_per_req "$acct")" \
        "$(kv csw_per_req "$acct")" "$(kv pss_kib "$acct")" "$(kv tasks "$acct")")"
}

environment() {
    env_date
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
    echo "kernel: $(uname -r)"
    echo "server: $VX_HTTP --backend B --model M; client: $VX_LOAD --path /delay/$DELAY_MS --expect $DELAY_MS"
    env_git
    echo "settings: VARIANTS=\"$VARIANTS\" CONNS_LIST=\"$CONNS_LIST\" DELAY_MS=$DELAY_MS ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
    echo "host at start: $(host_noise)"
}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vx-delay.XXXXXX")
[ -x "$VX_HTTP" ] && [ -x "$VX_LOAD" ] || die "$VX_HTTP or $VX_LOAD missing: run make first"
open_results delay-
note "variants: $VARIANTS; conns: $CONNS_LIST; /delay/$DELAY_MS; $ROUNDS rounds of ${WARMUP}+${DURATION} s -> $RESDIR"
for round in $(seq "$ROUNDS"); do
    echo "# round $round $(host_noise)" | tee -a "$RAW" >&2
    for conns in $CONNS_LIST; do
        for v in $VARIANTS; do run_one "$round" "$v" "$conns"; done
    done
done
write_summary awk -v delay="$DELAY_MS" -f bench/stats.awk -f bench/delay-table.awk
