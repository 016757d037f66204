#!/usr/bin/env bash
# bench/run.sh: vx-echo on every backend (and, when available, the raw-epoll
# and raw-uring echo peers) under the same ping-pong load, in interleaved
# rounds, with the server's CPU time, context switches and loop counters per
# message. See bench/README.md for the method and the meaning of each column.
#
# Knobs (environment, or KEY=VALUE arguments: make bench BENCH_ARGS="ROUNDS=5"):
#   BACKENDS="epoll epoll-et poll select uring"  SIZES="64 4096"  ROUNDS=3
#   DURATION=5 (measured s)  WARMUP=1 (s)  CONNS=64  SERVER_CPU=0  CLIENT_CPU=1
#   PEERS=1|0 (default 1 when PEERS_DIR has the peer sources)
#   PEERS_DIR=../shared/bench (relative to the repository)  PORT_BASE=29000
# Writes bench/results/<UTC timestamp>/{env.txt,raw.txt,summary.md}; prints
# env.txt and summary.md on stdout, progress on stderr.
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # note, die, kv, ports, the tree, start/stop by PID, /proc counters
bench_args 14 "$@"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
BACKENDS=${BACKENDS:-epoll epoll-et poll select uring}
SIZES=${SIZES:-64 4096}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PEERS_DIR=${PEERS_DIR:-../shared/bench}
PORT_BASE=${PORT_BASE:-29000}
VX_ECHO=${VX_ECHO:-build/bin/vx-echo}
OUT=build/bench
CC=${CC:-cc}
BENCH_CFLAGS=(-O2 -g -std=c11 -Wall -Wextra)
PEER_CFLAGS=(-O2 -g)

SRV_PID='' CLIENT_PID='' TMP=''

bench_traps

# ---------------------------------------------------------------- build
build() {
    [ -x "$VX_ECHO" ] || die "$VX_ECHO missing: run make -C $ROOT first"
    mkdir -p "$OUT"
    $CC "${BENCH_CFLAGS[@]}" -o "$OUT/pingpong" bench/pingpong.c || die "pingpong build failed"
    PEER_NOTE=
    if [ "${PEERS:-auto}" = auto ]; then
        if [ -f "$PEERS_DIR/peers/echo-epoll.c" ] && [ -f "$PEERS_DIR/peers/echo-uring.c" ]; then
            PEERS=1
        else
            PEERS=0 PEER_NOTE="peers: $PEERS_DIR/peers not found, no raw-* rows"
        fi
    fi
    RAW_PEERS=
    [ "$PEERS" = 1 ] || return 0
    local p=$PEERS_DIR/peers
    if $CC "${PEER_CFLAGS[@]}" -I "$p" -o "$OUT/echo-epoll" "$p/echo-epoll.c"; then
        RAW_PEERS="raw-epoll"
    else
        PEER_NOTE+="raw-epoll: build failed; "
    fi
    if $CC "${PEER_CFLAGS[@]}" -I "$p" -o "$OUT/echo-uring" "$p/echo-uring.c" -luring; then
        RAW_PEERS+=" raw-uring"
    else
        PEER_NOTE+="raw-uring: build failed (liburing-dev?); "
    fi
}

# --------------------------------------------------------------- servers
server_cmd() {  # label port -> command line
    case $1 in
    raw-epoll) echo "$OUT/echo-epoll $2" ;;
    raw-uring) echo "$OUT/echo-uring $2" ;;
    vx-*) echo "$VX_ECHO --host 127.0.0.1 --port $2 --backend ${1#vx-} --stats" ;;
    esac
}

# start_server LABEL PORT: pinned to SERVER_CPU; sets SRV_PID. Up once the
# port listens and, for vx-echo, it printed its listening line.
start_server() {
    local label=$1 port=$2 pattern=
    : > "$TMP/srv.out"; : > "$TMP/srv.err"
    # shellcheck disable=SC2046  # the command line is split on purpose
    taskset -c "$SERVER_CPU" $(server_cmd "$label" "$port") > "$TMP/srv.out" 2> "$TMP/srv.err" &
    SRV_PID=$!
    # the backend asked for, followed by the end of the line or " model=..."
    case $label in vx-*) pattern="^listening 127.0.0.1:$port backend=${label#vx-}\( \|\$\)" ;; esac
    await_server "$port" "$pattern"
}

# Which of the wanted servers start at all; the others are skipped with a note.
preflight() {
    SERVERS='' SKIPPED=''
    local label port b order=
    # raw-epoll first (the ratios refer to it), raw-uring right before vx-uring,
    # so that each comparison is between neighbours in time
    [[ " $RAW_PEERS " = *" raw-epoll "* ]] && order="raw-epoll "
    for b in $BACKENDS; do
        [ "$b" = uring ] && [[ " $RAW_PEERS " = *" raw-uring "* ]] && order+="raw-uring "
        order+="vx-$b "
    done
    [[ " $RAW_PEERS " = *" raw-uring "* && " $order " != *" raw-uring "* ]] && order+="raw-uring"
    for label in $order; do
        port=$(free_port)
        if start_server "$label" "$port"; then
            stop_server "$port"
            SERVERS+="$label "
        else
            SKIPPED+="$label ($(head -c 200 "$TMP/srv.err" | tr '\n' ' ')); "
            note "skipping $label: $(head -1 "$TMP/srv.err")"
        fi
    done
    [ -n "$SERVERS" ] || die "no server could start"
}

# ------------------------------------------------------------ accounting
# snapshot PID: "ticks csw sched_ns busy_all total_all busy_core total_core steal_all t_us"
# ticks = utime+stime of the process (all threads, incl. io_uring workers);
# csw = voluntary+involuntary switches over its threads; sched_ns = on-CPU
# time from schedstat (ns, cross-check); the rest from /proc/stat (lib.sh).
snapshot() {
    local c
    c=$(tree_counters "$1") || return 1
    # shellcheck disable=SC2046,SC2086
    set -- $c $(host_counters) # ticks v iv nproc ntasks sched, ba ta bc tc st t
    echo "$1 $(($2 + $3)) $6 $7 $8 $9 ${10} ${11} ${12}"
}

# account S0 S1 RESULT STATS SIZE -> the computed key=value fields
account() {
    awk -v s0="$1" -v s1="$2" -v res="$3" -v stats="$4" -v size="$5" -v hz="$HZ" '
    function f(line, k,   n, i, a, kv) {
        n = split(line, a, " ")
        for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) return kv[2] }
        return ""
    }
    BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        msgs = f(res, "msgs") + 0; secs = f(res, "secs") + 0; cli = f(res, "cli_cpu_pct") + 0
        win = (b[9] - a[9]) / 1e6                # snapshot to snapshot, s
        ticks = b[1] - a[1]; cpu = ticks / hz
        printf "win_s=%.3f srv_ticks=%d srv_cpu_s=%.3f srv_cpu_pct=%.1f", win, ticks, cpu, 100 * cpu / win
        printf " cpu_us_per_msg=%.4f", msgs ? 1e6 * cpu / msgs : 0
        printf " sched_us_per_msg=%.4f", msgs ? (b[3] - a[3]) / 1e3 / msgs : 0
        printf " csw=%d csw_per_msg=%.5f", b[2] - a[2], msgs ? (b[2] - a[2]) / msgs : 0
        cb = b[6] - a[6]; ct = b[7] - a[7]
        printf " core_busy_pct=%.1f", ct ? 100 * cb / ct : 0
        # everything else that ran anywhere on the host (other sessions,
        # kernel threads), in % of one CPU; steal = taken by the hypervisor
        other = (b[4] - a[4]) / hz - cpu - cli / 100 * secs
        if (other < 0) other = 0                 # tick rounding
        printf " foreign_pct=%.1f steal_pct=%.1f", 100 * other / win, 100 * (b[8] - a[8]) / hz / win
        if (stats != "") {
            bin = f(stats, "bytes_in") + 0; tm = bin / size
            printf " st_msgs=%.0f st_syscalls=%s st_wakeups=%s", tm, f(stats, "syscalls"), f(stats, "wakeups")
            printf " sys_per_msg=%.4f wake_per_msg=%.4f", tm ? f(stats, "syscalls") / tm : 0, tm ? f(stats, "wakeups") / tm : 0
        }
    }'
}

# run_one ROUND LABEL SIZE: one server start, one pingpong, one raw line.
run_one() {
    local round=$1 label=$2 size=$3 port line s0 s1 res stats rc tries=0 tag
    tag="round=$round server=$label size=$size"
    while :; do
        port=$(free_port)
        start_server "$label" "$port" && break
        tries=$((tries + 1))
        if [ $tries -ge 3 ] || ! grep -qi "in use" "$TMP/srv.err"; then
            echo "fail $tag reason=start:$(head -1 "$TMP/srv.err" | tr ' ' '_')" >> "$RAW"
            note "$label size $size: server did not start"
            return
        fi
    done
    coproc PP { exec taskset -c "$CLIENT_CPU" "$OUT/pingpong" --sync --port "$port" \
        --size "$size" --conns "$CONNS" --warmup "$WARMUP" --duration "$DURATION" \
        2> "$TMP/pp.err"; }
    CLIENT_PID=$PP_PID
    local pin=${PP[0]} pout=${PP[1]}
    # connect + warm-up + drain, then the window + drain: bounded waits
    if read -r -t $((WARMUP + 20)) -u "$pin" line && [ "$line" = warm ] &&
        s0=$(snapshot "$SRV_PID") && echo go >&"$pout" &&
        read -r -t $((DURATION + 20)) -u "$pin" res && s1=$(snapshot "$SRV_PID"); then
        :
    else
        res=
    fi
    eval "exec $pout>&-"
    for _ in $(seq 100); do kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$CLIENT_PID" 2>/dev/null && kill -KILL "$CLIENT_PID"
    wait "$CLIENT_PID" 2>/dev/null; rc=$?
    CLIENT_PID=
    stop_server "$port"
    stats=$(grep '^backend=' "$TMP/srv.err" | tail -1)
    if [ -z "$res" ]; then
        echo "fail $tag reason=pingpong:$(head -1 "$TMP/pp.err" | tr ' ' '_')" >> "$RAW"
        note "$label size $size: pingpong gave no result ($(head -1 "$TMP/pp.err"))"
        return
    fi
    [ -s "$TMP/pp.err" ] && sed "s/^/# $label $size: /" "$TMP/pp.err" | head -5 >> "$RAW"
    line="run $tag port=$port pp_rc=$rc $res $(account "$s0" "$s1" "$res" "$stats" "$size")"
    echo "$line" >> "$RAW"
    [ -n "$stats" ] && echo "stats $tag $stats" >> "$RAW"
    note "$(printf '%-12s %5s B  %7s msg/s  %s us/msg  %s sys/msg  errors=%s' "$label" "$size" \
        "$(kv msg_per_s "$line")" "$(kv cpu_us_per_msg "$line")" \
        "$(kv sys_per_msg "$line")" "$(kv errors "$line")")"
}

environment() {
    env_date
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(lscpu | sed -n 's/^Hypervisor vendor: *//p') guest"
    echo "kernel: $(uname -r)"
    echo "compiler: $($CC --version | head -1)"
    echo "vx-echo: $VX_ECHO, flags: $(sed -n 's/^C_FLAGS = //p' build/CMakeFiles/vx-echo.dir/flags.make 2>/dev/null)"
    echo "pingpong: $CC ${BENCH_CFLAGS[*]}; peers: $CC ${PEER_CFLAGS[*]} -I $PEERS_DIR/peers (liburing $(dpkg-query -W -f '${Version}' liburing-dev 2>/dev/null))"
    env_git
    echo "settings: SIZES=\"$SIZES\" ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU PEERS=$PEERS"
    echo "servers: $SERVERS"
    [ -n "$SKIPPED" ] && echo "skipped: $SKIPPED"
    [ -n "$PEER_NOTE" ] && echo "note: $PEER_NOTE"
    echo "host at start: $(host_noise)"
}

# ------------------------------------------------------------------ main
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vx-bench.XXXXXX")
build
preflight
open_results ""
note "servers: $SERVERS; sizes: $SIZES; $ROUNDS rounds of ${WARMUP}+${DURATION} s runs -> $RESDIR"
for round in $(seq "$ROUNDS"); do
    echo "# round $round $(host_noise)" | tee -a "$RAW" >&2
    for size in $SIZES; do
        for label in $SERVERS; do run_one "$round" "$label" "$size"; done
    done
done
write_summary awk -f bench/stats.awk -f bench/table.awk
