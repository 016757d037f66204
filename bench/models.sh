#!/usr/bin/env bash
# bench/models.sh: vx-echo under every server model (vx-echo --model M) with
# the same ping-pong load, in interleaved rounds: msg/s, server CPU per
# message and context switches per message of the server's whole process
# tree (threads and child processes). See bench/README.md, "Server models".
#
# Knobs (environment, or KEY=VALUE arguments):
#   MODELS="single reuseport:2 handoff:2 shared:2 procs:2 thread-per-conn fork-per-conn"
#   CONNS_LIST="64 1000"  SIZE=64  ROUNDS=3  DURATION=5 (s)  WARMUP=1 (s)
#   BACKEND=epoll  SERVER_CPU=0  CLIENT_CPU=1  PORT_BASE=29500
#   DRY_RUN=1: build pingpong, print the plan and the commands, run nothing
# Writes bench/results/models-<UTC stamp>/{env.txt,raw.txt,summary.md};
# prints summary.md on stdout, progress on stderr.
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # note, die, kv, ports, the tree, start/stop by PID, /proc counters
bench_args 14 "$@"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
MODELS=${MODELS:-single reuseport:2 handoff:2 shared:2 procs:2 thread-per-conn fork-per-conn}
CONNS_LIST=${CONNS_LIST:-64 1000}
SIZE=${SIZE:-64}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
BACKEND=${BACKEND:-epoll}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-29500}
DRY_RUN=${DRY_RUN:-0}
VX_ECHO=${VX_ECHO:-build/bin/vx-echo}
OUT=build/bench
CC=${CC:-cc}
BENCH_CFLAGS=(-O2 -g -std=c11 -Wall -Wextra)

SRV_PID='' CLIENT_PID='' TMP=''

bench_traps

# --------------------------------------------------------------- servers
server_cmd() { # model port
    echo "$VX_ECHO --model $1 --backend $BACKEND --host 127.0.0.1 --port $2"
}

# start_server MODEL PORT: the whole tree on SERVER_CPU (affinity is
# inherited by threads and children); up once vx-echo printed its listening
# line for PORT and the port listens. Sets SRV_PID.
start_server() {
    local model=$1 port=$2
    : > "$TMP/srv.out"; : > "$TMP/srv.err"
    # shellcheck disable=SC2046
    taskset -c "$SERVER_CPU" $(server_cmd "$model" "$port") > "$TMP/srv.out" 2> "$TMP/srv.err" &
    SRV_PID=$!
    await_server "$port" "^listening .*:$port\b"
}

# ------------------------------------------------------------ accounting
# snapshot PID -> "ticks vcsw ivcsw nproc ntasks busy_all total_all busy_core total_core t_us sched_ns"
# over the server's whole tree (lib.sh: tree_counters, host_counters).
# sched_ns (schedstat) is the CPU figure; ticks only a cross-check, since
# the kernel truncates each process's time to whole 10 ms ticks and 1000
# processes that each ran 5 ms in the window (fork-per-conn) would add up
# to nothing. In this benchmark every connection, and so every
# per-connection thread or process, lives across the whole window.
snapshot() {
    local c
    c=$(tree_counters "$1") || return 1
    # shellcheck disable=SC2046,SC2086
    set -- $c $(host_counters) # ticks v iv nproc ntasks sched, ba ta bc tc st t
    echo "$1 $2 $3 $4 $5 $7 $8 $9 ${10} ${12} $6"
}

# account S0 S1 RESULT -> computed key=value fields
account() {
    awk -v s0="$1" -v s1="$2" -v res="$3" -v hz="$HZ" '
    function f(line, k,   n, i, a, kv) {
        n = split(line, a, " ")
        for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) return kv[2] }
        return ""
    }
    BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        msgs = f(res, "msgs") + 0; secs = f(res, "secs") + 0; cli = f(res, "cli_cpu_pct") + 0
        win = (b[10] - a[10]) / 1e6
        ticks = b[1] - a[1]; cpu = (b[11] - a[11]) / 1e9
        v = b[2] - a[2]; iv = b[3] - a[3]
        printf "win_s=%.3f srv_cpu_s=%.4f srv_cpu_pct=%.1f", win, cpu, 100 * cpu / win
        printf " cpu_us_per_msg=%.4f", msgs ? 1e6 * cpu / msgs : 0
        printf " srv_ticks=%d tick_us_per_msg=%.4f", ticks, msgs ? 1e6 * ticks / hz / msgs : 0
        printf " vcsw=%d ivcsw=%d csw_per_msg=%.4f vcsw_per_msg=%.4f ivcsw_per_msg=%.4f", v, iv,
            msgs ? (v + iv) / msgs : 0, msgs ? v / msgs : 0, msgs ? iv / msgs : 0
        printf " procs=%d tasks=%d", b[4], b[5]
        cb = b[8] - a[8]; ct = b[9] - a[9]
        printf " core_busy_pct=%.1f", ct ? 100 * cb / ct : 0
        other = (b[6] - a[6]) / hz - cpu - cli / 100 * secs
        if (other < 0) other = 0
        printf " foreign_pct=%.1f", 100 * other / win
    }'
}

# run_one ROUND MODEL CONNS
run_one() {
    local round=$1 model=$2 conns=$3 port line s0 s1 res rc tries=0 tag
    tag="round=$round model=$model conns=$conns"
    while :; do
        port=$(free_port)
        start_server "$model" "$port" && break
        tries=$((tries + 1))
        if [ $tries -ge 3 ] || ! grep -qi "in use" "$TMP/srv.err"; then
            echo "fail $tag reason=start:$(head -1 "$TMP/srv.err" | tr ' ' '_')" >> "$RAW"
            note "$model conns $conns: server did not start"
            return
        fi
    done
    coproc PP { exec taskset -c "$CLIENT_CPU" "$OUT/pingpong" --sync --port "$port" \
        --size "$SIZE" --conns "$conns" --warmup "$WARMUP" --duration "$DURATION" \
        2> "$TMP/pp.err"; }
    CLIENT_PID=$PP_PID
    local pin=${PP[0]} pout=${PP[1]}
    if read -r -t $((WARMUP + 30)) -u "$pin" line && [ "$line" = warm ] &&
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
    if [ -z "$res" ]; then
        echo "fail $tag reason=pingpong:$(head -1 "$TMP/pp.err" | tr ' ' '_')" >> "$RAW"
        note "$model conns $conns: pingpong gave no result ($(head -1 "$TMP/pp.err"))"
        return
    fi
    [ -s "$TMP/pp.err" ] && sed "s/^/# $model $conns: /" "$TMP/pp.err" | head -5 >> "$RAW"
    line="run $tag port=$port pp_rc=$rc $res $(account "$s0" "$s1" "$res")"
    echo "$line" >> "$RAW"
    note "$(printf '%-16s %5s conns %8s msg/s %8s us/msg %7s csw/msg (vol %s) procs=%s tasks=%s errors=%s' \
        "$model" "$conns" "$(kv msg_per_s "$line")" "$(kv cpu_us_per_msg "$line")" \
        "$(kv csw_per_msg "$line")" "$(kv vcsw_per_msg "$line")" "$(kv procs "$line")" \
        "$(kv tasks "$line")" "$(kv errors "$line")")"
}

# raw.txt -> markdown table: medians over rounds, [min–max] for CPU/msg.
table() {
    awk '
    function val(line, k,   n, i, a, kv) {
        n = split(line, a, " ")
        for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) return kv[2] }
        return ""
    }
    function add(key, v) { if (v == "") return; L[key, ++N[key]] = v + 0 }
    function stat(key, what,   n, i, j, t, a) {
        n = N[key]; if (!n) return ""
        for (i = 1; i <= n; i++) a[i] = L[key, i]
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        if (what == "min") return a[1]
        if (what == "max") return a[n]
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function med(key, fmt) { return N[key] ? sprintf(fmt, stat(key, "med")) : "-" }
    function mmm(key, fmt) {
        if (!N[key]) return "-"
        if (N[key] == 1) return sprintf(fmt, stat(key, "med"))
        return sprintf(fmt " [" fmt "–" fmt "]", stat(key, "med"), stat(key, "min"), stat(key, "max"))
    }
    $1 == "run" || $1 == "fail" {
        g = val($0, "conns") SUBSEP val($0, "model")
        if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    }
    $1 == "fail" { fails[g]++ }
    $1 == "run" {
        runs[g]++
        add(g SUBSEP "mps", val($0, "msg_per_s")); add(g SUBSEP "cpu", val($0, "cpu_us_per_msg"))
        add(g SUBSEP "csw", val($0, "csw_per_msg")); add(g SUBSEP "v", val($0, "vcsw_per_msg"))
        add(g SUBSEP "iv", val($0, "ivcsw_per_msg")); add(g SUBSEP "pct", val($0, "srv_cpu_pct"))
        add(g SUBSEP "p99", val($0, "p99_us")); add(g SUBSEP "procs", val($0, "procs"))
        add(g SUBSEP "tasks", val($0, "tasks")); add(g SUBSEP "for", val($0, "foreign_pct"))
        errs[g] += val($0, "errors")
    }
    END {
        print "| conns | model | runs | msg/s | server CPU µs/msg | ctx switches/msg | voluntary/msg | involuntary/msg | server CPU % | p99 µs | procs / tasks | foreign CPU % (max) | errors | failed |"
        print "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        for (k = 1; k <= ng; k++) {
            g = order[k]; split(g, p, SUBSEP)
            printf "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %d | %d |\n",
                p[1], p[2], runs[g], med(g SUBSEP "mps", "%.0f"), mmm(g SUBSEP "cpu", "%.2f"),
                mmm(g SUBSEP "csw", "%.3f"), med(g SUBSEP "v", "%.3f"), med(g SUBSEP "iv", "%.3f"),
                med(g SUBSEP "pct", "%.0f"), med(g SUBSEP "p99", "%.0f"),
                med(g SUBSEP "procs", "%d"), med(g SUBSEP "tasks", "%d"),
                N[g SUBSEP "for"] ? sprintf("%.1f", stat(g SUBSEP "for", "max")) : "-",
                errs[g], fails[g]
        }
    }' "$1"
}

environment() {
    env_date
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
    echo "kernel: $(uname -r)"
    echo "compiler: $($CC --version | head -1)"
    echo "vx-echo: $VX_ECHO --model M --backend $BACKEND, flags: $(sed -n 's/^C_FLAGS = //p' build/CMakeFiles/vx-echo.dir/flags.make 2>/dev/null)"
    echo "pingpong: $CC ${BENCH_CFLAGS[*]} bench/pingpong.c; fd limit $(ulimit -n)"
    env_git
    echo "settings: MODELS=\"$MODELS\" CONNS_LIST=\"$CONNS_LIST\" SIZE=$SIZE ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
    echo "models: $RUN_MODELS"
    [ -n "$SKIPPED" ] && echo "skipped: $SKIPPED"
    echo "host at start: $(host_noise)"
}

# ------------------------------------------------------------------ main
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vx-models.XXXXXX")
[ -x "$VX_ECHO" ] || die "$VX_ECHO missing: run make -C $ROOT first"
mkdir -p "$OUT"
$CC "${BENCH_CFLAGS[@]}" -o "$OUT/pingpong" bench/pingpong.c || die "pingpong build failed"
max_conns=0
for c in $CONNS_LIST; do [ "$c" -gt "$max_conns" ] && max_conns=$c; done
[ "$(ulimit -n)" -gt $((max_conns + 64)) ] || die "fd limit $(ulimit -n) too low for $max_conns connections"

if [ "$DRY_RUN" = 1 ]; then
    echo "plan: $ROUNDS rounds x models ($MODELS) x conns ($CONNS_LIST), ${WARMUP}+${DURATION} s each"
    for m in $MODELS; do
        echo "server:  taskset -c $SERVER_CPU $(server_cmd "$m" PORT)"
    done
    for c in $CONNS_LIST; do
        echo "client:  taskset -c $CLIENT_CPU $OUT/pingpong --sync --port PORT --size $SIZE --conns $c --warmup $WARMUP --duration $DURATION"
    done
    echo "accounting (this shell): tree of PID = $(tree_pids $$ | wc -w) pids; snapshot: $(snapshot $$)"
    exit 0
fi

# Which models start at all; the others are skipped with a note.
RUN_MODELS='' SKIPPED=''
for m in $MODELS; do
    port=$(free_port)
    if start_server "$m" "$port"; then
        stop_server "$port"
        RUN_MODELS+="$m "
    else
        SKIPPED+="$m ($(head -c 200 "$TMP/srv.err" | tr '\n' ' ')); "
        note "skipping $m: $(head -1 "$TMP/srv.err")"
    fi
done
[ -n "$RUN_MODELS" ] || die "no model could start"

open_results models-
note "models: $RUN_MODELS; conns: $CONNS_LIST; $ROUNDS rounds of ${WARMUP}+${DURATION} s -> $RESDIR"
for round in $(seq "$ROUNDS"); do
    echo "# round $round $(host_noise)" | tee -a "$RAW" >&2
    for conns in $CONNS_LIST; do
        for m in $RUN_MODELS; do run_one "$round" "$m" "$conns"; done
    done
done
write_summary table
