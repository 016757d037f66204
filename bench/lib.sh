# bench/lib.sh: what run.sh, models.sh and http.sh share: messages, ports,
# the server's process tree, starting and stopping it by PID, and the CPU
# counters read from /proc. Sourced, never run. Callers set SERVER_CPU,
# PORT_BASE and TMP (a private temp dir) and keep the server's PID in
# SRV_PID. Every function returns 0 on success, so it works under `set -e`
# (http.sh) as under plain `set -u` (run.sh, models.sh).
# shellcheck shell=bash

# shellcheck disable=SC2034  # used by the scripts that source this
HZ=$(getconf CLK_TCK)
BENCH_PROG=$(basename "$0")

note() { echo "$BENCH_PROG: $*" >&2; }
die() { note "$*"; exit 2; }

# bench_args LAST ARG...: export the KEY=VALUE arguments (before the script
# reads its knobs); --help prints the script's header comment, lines 2..LAST.
bench_args() {
    local last=$1 arg
    shift
    for arg in "$@"; do
        case $arg in
        [A-Z]*=*) export "${arg?}" ;;
        -h | --help) sed -n "2,${last}p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (use KEY=VALUE)" ;;
        esac
    done
}

# kv KEY LINE: value of KEY=... in a space-separated key=value line
kv() { local k=$1; shift; sed -n "s/.*\\b$k=\\([^ ]*\\).*/\\1/p" <<< "$*"; }

# bench_traps: on exit kill only what the script started (CLIENT_PID, the
# tree of SRV_PID) and remove its TMP; INT and TERM exit 130 through it.
bench_cleanup() {
    [ -n "${CLIENT_PID:-}" ] && kill -KILL "$CLIENT_PID" 2>/dev/null
    kill_tree KILL "${SRV_PID:-}"
    [ -n "${TMP:-}" ] && rm -rf "$TMP"
}
bench_traps() {
    trap bench_cleanup EXIT
    trap 'note interrupted; exit 130' INT TERM
}

# ----------------------------------------------------------------- ports
# Ports are looked up in /proc/net/tcp{,6} rather than probed with connect(),
# so checking never opens a connection to somebody else's server.
port_hex() { printf '%04X' "$1"; }
port_used() { # any socket, any state, bound to local port $1
    awk -v p=":$(port_hex "$1")" 'FNR > 1 && substr($2, length($2) - 4) == p { f = 1 }
        END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port_listening() {
    awk -v p=":$(port_hex "$1")" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
        END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() {
    local p=$PORT_BASE
    while port_used "$p"; do p=$((p + 1)); done
    echo "$p"
}

# ------------------------------------------------------ the server tree
# Every process and thread the server started: threads are tasks of its
# process, worker/connection processes (nginx's worker, procs:N) are found
# through /proc/PID/task/*/children, level by level (one cat per level).
tree_pids() {
    local level=("$1") next all=()
    while [ ${#level[@]} -gt 0 ]; do
        all+=("${level[@]}")
        # shellcheck disable=SC2046  # the globs are expanded on purpose
        next=$(cat $(printf '/proc/%s/task/*/children ' "${level[@]}") 2>/dev/null) || true
        # shellcheck disable=SC2206
        level=($next)
    done
    echo "${all[@]}"
}

# kill_tree SIG PID: SIG to PID and its descendants, by PID.
kill_tree() {
    [ -n "$2" ] || return 0
    # shellcheck disable=SC2046
    kill "-$1" $(tree_pids "$2") 2>/dev/null || true
}

# await_server PORT [PATTERN]: up to 10 s for SRV_PID to listen on PORT
# (and, with PATTERN, to print a line matching it to $TMP/srv.out). 1 and
# SRV_PID cleared if it exited; 1 and stopped if it did not come up.
await_server() {
    local port=$1 pattern=${2:-}
    for _ in $(seq 200); do
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            wait "$SRV_PID" 2>/dev/null || true
            SRV_PID=
            return 1
        fi
        if { [ -z "$pattern" ] || grep -q "$pattern" "$TMP/srv.out"; } && port_listening "$port"; then
            return 0
        fi
        sleep 0.05
    done
    echo "did not come up in 10 s" >> "$TMP/srv.err"
    stop_server "$port"
    return 1
}

# stop_server PORT: SIGTERM to the server (vx-echo prints its counters, a
# master stops its workers), SIGKILL to its whole tree after 10 s, then to
# any descendant that outlived it; then wait until nothing listens on PORT
# (io_uring releases the socket after the process is gone).
stop_server() {
    [ -n "$SRV_PID" ] || return 0
    local pids
    pids=$(tree_pids "$SRV_PID")
    kill -TERM "$SRV_PID" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$SRV_PID" 2>/dev/null; then
        note "server $SRV_PID ignored SIGTERM for 10 s: SIGKILL to its tree"
        kill_tree KILL "$SRV_PID"
    fi
    wait "$SRV_PID" 2>/dev/null || true
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    SRV_PID=
    for _ in $(seq 100); do port_listening "$1" || break; sleep 0.05; done
}

# ------------------------------------------------------------ results
# open_results PREFIX: RESDIR=bench/results/PREFIX<UTC stamp> made, the
# calling script's environment() in env.txt, and RAW started with it as
# comment lines.
open_results() {
    RESDIR=bench/results/$1$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$RESDIR"
    RAW=$RESDIR/raw.txt
    environment > "$RESDIR/env.txt"
    sed 's/^/# /' "$RESDIR/env.txt" > "$RAW"
}

# The date and git lines of every script's environment() (env.txt).
env_date() { echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"; }
env_git() {
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo 'no commit'), $(git status --porcelain 2>/dev/null | wc -l) changed/untracked paths"
}

# write_summary CMD...: RESDIR/summary.md = env.txt, then the tables that
# `CMD... RAW` prints; shown on stdout, RAW's path on stderr.
write_summary() {
    {
        echo "## Environment"
        echo
        sed 's/^/    /' "$RESDIR/env.txt"
        echo
        "$@" "$RAW"
    } > "$RESDIR/summary.md"
    cat "$RESDIR/summary.md"
    note "raw lines: $RAW"
}

# ------------------------------------------------------------ accounting
# tree_counters PID -> "ticks vcsw ivcsw nproc ntasks sched_ns", summed over
# the tree. sched_ns (on-CPU time from /proc/*/task/*/schedstat, ns) is the
# precise figure; ticks (utime+stime+cutime+cstime) the cross-check: the
# kernel reports each process's time truncated to whole ticks, so many
# short-lived processes would sum to ~0. Switches: voluntary (blocked in the
# poller) / involuntary (preempted). Fails if PID itself is gone. Tasks that
# end between two snapshots take their counters with them.
tree_counters() {
    [ -r "/proc/$1/stat" ] || return 1
    local p files=() sfiles=() tfiles=() ticks nproc v i ntasks sched
    for p in $(tree_pids "$1"); do
        files+=("/proc/$p/stat"); sfiles+=("/proc/$p/task/*/status")
        tfiles+=("/proc/$p/task/*/schedstat")
    done
    # comm may hold spaces: fields are counted after the last ") ". Through
    # cat: threads may exit while we read, and mawk stops at a vanished file.
    read -r ticks nproc < <(cat "${files[@]}" 2>/dev/null | awk '{
        sub(/^.*\) /, ""); t += $12 + $13 + $14 + $15; n++ } END { print t + 0, n + 0 }')
    # shellcheck disable=SC2068  # the task globs are expanded on purpose
    read -r v i ntasks < <(cat ${sfiles[@]} 2>/dev/null | awk '
        /^voluntary_ctxt_switches/ { v += $2; n++ } /^nonvoluntary_ctxt_switches/ { i += $2 }
        END { print v + 0, i + 0, n + 0 }')
    # shellcheck disable=SC2068
    sched=$(cat ${tfiles[@]} 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }')
    echo "$ticks $v $i $nproc $ntasks $sched"
}

# host_counters -> "busy_all total_all busy_core total_core steal_all t_us"
# from /proc/stat, in ticks (busy = user+nice+system+irq+softirq, steal kept
# apart; core = SERVER_CPU), and the wall clock in microseconds.
host_counters() {
    awk -v core="cpu$SERVER_CPU" -v t="${EPOCHREALTIME/./}" '
        $1 ~ /^cpu/ { b = $2 + $3 + $4 + $7 + $8; tot = b + $5 + $6 + $9 }
        $1 == "cpu" { ba = b; ta = tot; st = $9 }
        $1 == core { bc = b; tc = tot }
        END { print ba, ta, bc, tc, st, t }' /proc/stat
}

# Top CPU users: noise from other work on the host, for the log.
host_noise() {
    printf 'load=%s top:' "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
    ps -eo pcpu=,pid=,comm= --sort=-pcpu | awk '$1 > 5 { printf " %s(%s%%)", $3, $1 }' | head -c 200 || true
}
