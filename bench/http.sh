#!/usr/bin/env bash
# bench/http.sh: wrk against vx-http and, where they are built or can be,
# the HTTP peers of ../shared/bench (raw-epoll, raw-uring, nginx, h2o, libuv,
# libevent, libev), in one run: server pinned to SERVER_CPU, wrk (1 thread)
# to CLIENT_CPU, interleaved rounds, medians. Reports req/s and requests per
# server core-second. See bench/README.md, "HTTP (http.sh)".
#
# Knobs (environment, or KEY=VALUE arguments: make bench-http BENCH_ARGS="ROUNDS=5"):
#   SERVERS (default: vx-epoll vx-uring + every peer found)  ROUNDS=3
#   TESTS="plaintext-plain plaintext-pipe16 baseline11 json json-10"  JSON_M=2
#     (also static-N: GET a file of N random bytes, vx-http and nginx only;
#     short-lived: /plaintext with "Connection: close", a connection per
#     request, vx-http, nginx and h2o only: the C peers ignore the header;
#     rate-R: /plaintext at a fixed R requests/s from vx-load, an open loop,
#     so every server sees the same arrivals and the figure is its CPU cost;
#     json-comp-N: /json/N with Accept-Encoding: gzip; upload-N: POST /upload
#     with an N-byte body; both vx-http only, as HttpArena's json-comp and
#     upload profiles)
#   DURATION=5 (measured s)  WARMUP=1 (s)  CONNS=64  PIPE_CONNS=256
#   SERVER_CPU=0  CLIENT_CPU=1  PORT_BASE=29300
#   SPLIT=0 (1: after each measured run, one more under perf record, for the
#     share of the server's CPU spent in the kernel: the "where it goes" table)
#   PEERS_DIR=../shared/bench (relative to the repository)  PEERS_BUILD=$PEERS_DIR/build
# Writes bench/results/http-<UTC stamp>/{env.txt,raw.txt,summary.md}; prints
# summary.md on stdout, progress on stderr.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" # note, die, kv, ports, the tree, start/stop by PID, /proc counters
bench_args 15 "$@"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-3}
TESTS=${TESTS:-plaintext-plain plaintext-pipe16 baseline11 json json-10}
JSON_M=${JSON_M:-2}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-64}
PIPE_CONNS=${PIPE_CONNS:-256}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-29300}
SPLIT=${SPLIT:-0}
PEERS_DIR=${PEERS_DIR:-../shared/bench}
VX_HTTP=${VX_HTTP:-build/bin/vx-http}
VX_LOAD=${VX_LOAD:-build/bin/vx-load}
OUT=build/bench/http            # peers compiled here when PEERS_BUILD lacks them
CC=${CC:-cc}
PEER_CFLAGS=(-O2 -g -Wall -Wextra) # the flags of $PEERS_DIR/Makefile
# the TechEmpower request headers
ACCEPT='Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/*;q=0.7'
HEADERS=(-H 'Host: localhost' -H 'Connection: keep-alive' -H "$ACCEPT")

SRV_PID='' CLIENT_PID='' PERF_PID='' TMP='' WRK_CONNECTION=keep-alive KSHARE=''

# Kill only what we started, by PID: wrk (under timeout) and the server tree.
cleanup() {
    kill_tree KILL "$CLIENT_PID"
    kill_tree KILL "$PERF_PID"
    kill_tree KILL "$SRV_PID"
    if [ -n "$TMP" ]; then rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'note interrupted; exit 130' INT TERM

# ----------------------------------------------------------------- tests
test_path() {
    case $1 in
    plaintext-* | short-lived | rate-*) echo /plaintext ;;
    baseline11) echo '/baseline11?a=1&b=2' ;;
    json) echo /json ;;
    json-comp-*) echo "/json/${1#json-comp-}?m=$JSON_M" ;;
    json-*) echo "/json/${1#json-}?m=$JSON_M" ;;
    upload-*) echo /upload ;;
    static-*) echo "/static/f${1#static-}.bin" ;;
    esac
}
test_load() { # TEST -> "conns depth"; plaintext-pipeN sends N requests per write
    case $1 in
    *-pipe*) echo "$PIPE_CONNS ${1##*-pipe}" ;;
    *) echo "$CONNS 1" ;;
    esac
}
check_tests() {
    local t
    for t in $TESTS; do
        [[ $t =~ ^(plaintext-plain|plaintext-pipe[0-9]+|baseline11|json|json-[0-9]+|static-[0-9]+|short-lived|rate-[1-9][0-9]*|json-comp-[0-9]+|upload-[1-9][0-9]*)$ ]] ||
            die "unknown test '$t' (plaintext-plain plaintext-pipeN baseline11 json json-N json-comp-N static-N short-lived rate-R upload-N)"
    done
}
# The peers answer /plaintext and /json only (nginx also files, given a
# static location); the rest is vx-http's.
serves() { # SERVER TEST
    case $1:$2 in
    vx-*:* | nginx:static-* | nginx:short-lived | h2o:short-lived | *:plaintext-* | *:json | *:rate-*) return 0 ;;
    *) return 1 ;;
    esac
}

# ----------------------------------------------------------------- peers
declare -A PEER_BIN=()  # C peer -> binary
PEER_NOTE=''
c_peer_src() {
    case $1 in
    raw-epoll) echo "http-epoll " ;;
    raw-uring) echo "http-uring -luring" ;;
    libuv) echo "http-libuv -luv" ;;
    libevent) echo "http-libevent -levent_core" ;;
    libev) echo "http-libev -lev" ;;
    esac
}

# find_peer NAME: 0 if the peer can run here (a C peer: PEERS_BUILD's binary
# when `make -C $PEERS_DIR` built it, else compiled from its source into
# $OUT with the same flags); else 1 and one line saying why.
find_peer() {
    local name=$1 src libs bin why=
    case $name in
    nginx | h2o)
        if ! command -v "$name" > /dev/null; then why="$name not installed"
        elif [ ! -f "$PEERS_DIR/peers/$name.conf" ]; then why="no $PEERS_DIR/peers/$name.conf"
        fi ;;
    *)
        read -r src libs <<< "$(c_peer_src "$name")"
        bin=$PEERS_BUILD/$src
        if [ ! -f "$PEERS_DIR/peers/$src.c" ]; then
            why="no $PEERS_DIR/peers/$src.c"
        elif [ ! -x "$bin" ]; then
            bin=$OUT/$src
            mkdir -p "$OUT"
            # shellcheck disable=SC2086  # libs: zero or one word
            if [ "$bin" -nt "$PEERS_DIR/peers/$src.c" ] && [ "$bin" -nt "$PEERS_DIR/peers/common.h" ]; then
                : # built by an earlier run
            elif ! $CC "${PEER_CFLAGS[@]}" -o "$bin" "$PEERS_DIR/peers/$src.c" $libs 2> "$TMP/cc.err"; then
                why="build failed: $(grep -m1 error "$TMP/cc.err" || head -1 "$TMP/cc.err")"
            fi
        fi
        PEER_BIN[$name]=$bin ;;
    esac
    [ -z "$why" ] && return 0
    note "peer $name skipped: $why"
    PEER_NOTE+="$name: $why; "
    return 1
}

# ---------------------------------------------------------------- servers
# nginx and h2o get their configuration from the peers' templates, filled in
# a fresh directory per start; h2o's worker drops to nobody, hence 755.
prepare_rundir() { # SERVER PORT
    RUNDIR=$TMP/run-$1
    rm -rf "$RUNDIR"
    mkdir -p "$RUNDIR/tmp"
    chmod 755 "$RUNDIR"
    case $1 in nginx | h2o) ;; *) return 0 ;; esac
    printf 'Hello, World!' > "$RUNDIR/plaintext.txt"
    printf '{"message":"Hello, World!"}' > "$RUNDIR/message.json"
    sed -e "s|@PORT@|$2|g" -e "s|@TMP@|$RUNDIR|g" -e "s|@WORKER_CONNECTIONS@|4096|g" \
        -e "s|@MAXCONN@|4096|g" "$PEERS_DIR/peers/$1.conf" > "$RUNDIR/$1.conf"
    # the static-N files, as a production nginx serves them: sendfile on
    if [ "$1" = nginx ]; then
        sed -i "/^ *listen /a\\        location /static/ { alias $WWW/; default_type application/octet-stream; sendfile on; tcp_nopush on; }" \
            "$RUNDIR/nginx.conf"
    fi
}

server_cmd() { # SERVER PORT -> command line
    case $1 in
    vx-*) echo "$VX_HTTP --host 127.0.0.1 --port $2 --backend ${1#vx-} --dataset data/dataset.json --root $WWW" ;;
    nginx) echo "nginx -p $RUNDIR/ -c $RUNDIR/nginx.conf -e $RUNDIR/error.log" ;;
    h2o) echo "h2o -m worker -c $RUNDIR/h2o.conf" ;;
    *) echo "${PEER_BIN[$1]} $2" ;;
    esac
}

# start_server SERVER PORT: pinned to SERVER_CPU (threads and children
# inherit it); sets SRV_PID. Up once the port listens and, for vx-http, it
# printed its listening line.
start_server() {
    local label=$1 port=$2 pattern=
    : > "$TMP/srv.out"; : > "$TMP/srv.err"
    prepare_rundir "$label" "$port"
    # shellcheck disable=SC2046  # the command line is split on purpose
    taskset -c "$SERVER_CPU" $(server_cmd "$label" "$port") > "$TMP/srv.out" 2> "$TMP/srv.err" &
    SRV_PID=$!
    case $label in vx-*) pattern="^listening 127.0.0.1:$port backend=${label#vx-} " ;; esac
    await_server "$port" "$pattern"
}

# srv_why: the first line the server complained with (nginx logs to a file)
srv_why() {
    cat "$TMP/srv.err" "$RUNDIR/error.log" 2>/dev/null | grep -v '^\s*$' | head -1 | cut -c1-160 || true
}

# ------------------------------------------------------------ correctness
# check_test PORT TEST: GET the test's URL once with curl: status 200,
# Server, Date, the Content-Type, a Content-Length equal to the body's size,
# the right body; for plaintext also 4 requests in one write must give 4
# responses. 0, or 1 with the reason in WHY.
check_test() {
    local port=$1 test=$2 path want ctype len
    path=$(test_path "$test")
    case $test in
    plaintext-* | short-lived | rate-*) want='Hello, World!' ctype=text/plain ;;
    json) want='{"message":"Hello, World!"}' ctype=application/json ;;
    baseline11) want=3 ctype=text/plain ;;       # a=1 + b=2
    json-*) want='' ctype=application/json ;;
    static-*) want='' ctype=application/octet-stream ;;
    upload-*) want=${test#upload-} ctype=text/plain ;;
    esac
    local curl_args=()
    case $test in
    json-comp-*) curl_args=(-H 'Accept-Encoding: gzip') ;;
    upload-*)
        head -c "${test#upload-}" /dev/zero | tr '\0' x > "$TMP/upload.bin"
        curl_args=(--data-binary "@$TMP/upload.bin" -H 'Content-Type: application/octet-stream') ;;
    esac
    if ! curl -sS -m 20 --noproxy '*' "${curl_args[@]}" -D "$TMP/hdr" -o "$TMP/body" \
        "http://127.0.0.1:$port$path" 2> "$TMP/curl.err"; then
        WHY="curl: $(head -1 "$TMP/curl.err")"; return 1
    fi
    tr -d '\r' < "$TMP/hdr" > "$TMP/hdr.txt"
    len=$(awk 'tolower($1) == "content-length:" { print $2; exit }' "$TMP/hdr.txt")
    WHY=
    head -1 "$TMP/hdr.txt" | grep -q '^HTTP/1\.1 200 ' || WHY=" status $(head -1 "$TMP/hdr.txt");"
    grep -qi '^server: .' "$TMP/hdr.txt" || WHY+=" no Server;"
    grep -qi '^date: .' "$TMP/hdr.txt" || WHY+=" no Date;"
    grep -qi "^content-type: $ctype" "$TMP/hdr.txt" || WHY+=" Content-Type not $ctype;"
    [ "$len" = "$(stat -c %s "$TMP/body")" ] || WHY+=" Content-Length '$len' is not the body's size;"
    if [[ $test = json-comp-* ]]; then
        grep -qi '^content-encoding: gzip' "$TMP/hdr.txt" || WHY+=" not gzip-encoded;"
        gzip -dc < "$TMP/body" > "$TMP/body.json" 2> /dev/null || WHY+=" body does not gunzip;"
        mv "$TMP/body.json" "$TMP/body"
    fi
    if [ -n "$want" ]; then
        printf %s "$want" | cmp -s - "$TMP/body" || WHY+=" body '$(head -c 60 "$TMP/body")';"
    elif [[ $test = static-* ]]; then
        cmp -s "$WWW/f${test#static-}.bin" "$TMP/body" || WHY+=" body is not the file's;"
    else
        grep -Eq '^\{"items":\[.*\],"count":[0-9]+\}$' "$TMP/body" || WHY+=" body not {\"items\":[...],\"count\":N};"
    fi
    if [[ $test = plaintext-* ]]; then
        local n
        n=$(pipelined "$port" "$path") || true
        [ "$n" = 4 ] || WHY+=" 4 pipelined requests gave $n responses;"
    fi
    [ -z "$WHY" ]
}

# pipelined PORT PATH: how many 200 responses come back for 4 requests sent
# in one write (the last asks to close, so servers that honour it answer
# at once; the others are cut off after 2 s).
pipelined() {
    local r="GET $2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    local last="GET $2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    (exec 3<> "/dev/tcp/127.0.0.1/$1" && printf '%b' "$r$r$r$last" >&3 && timeout 2 cat <&3) 2>/dev/null |
        grep -ao 'HTTP/1\.1 200' | wc -l
}

# ------------------------------------------------------------------- load
# wrk_run CONNS DEPTH SECS URL [BODY [HEADER]]: wrk pinned to CLIENT_CPU,
# bounded by timeout; output in $TMP/wrk.out. BODY > 0: POSTs of that many
# bytes; HEADER: one more request header. In the background with a wait, so
# that a signal reaches the trap (which kills it by PID) at once.
wrk_run() {
    local rc=0 extra=()
    if [ -n "${6:-}" ]; then extra=(-H "$6"); fi
    taskset -c "$CLIENT_CPU" timeout -k 2 $(($3 + 10)) wrk -t1 -c"$1" -d"$3s" --timeout 5s \
        "${HEADERS[@]/#Connection: keep-alive/Connection: $WRK_CONNECTION}" "${extra[@]}" \
        -s bench/pipeline.lua "$4" -- "$2" "${5:-0}" > "$TMP/wrk.out" 2> "$TMP/wrk.err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=
    return $rc
}

# vxload_run RATE SECS PORT: vx-load (epoll, CONNS connections, the
# TechEmpower headers) sending /plaintext at RATE requests/s for SECS, pinned
# to CLIENT_CPU; its summary becomes pipeline.lua's result line in
# $TMP/wrk.out (non2xx = its failed requests; unsent = requests due that
# found no free connection before the end: the server fell behind).
vxload_run() {
    local rc=0
    taskset -c "$CLIENT_CPU" timeout -k 2 $(($2 + 20)) "$VX_LOAD" --backend epoll --port "$3" \
        --conns "$CONNS" --rate "$1" --duration "$2" --timeout 5000 --expect 'Hello, World!' \
        --header 'Connection: keep-alive' --header "$ACCEPT" > "$TMP/load.out" 2> "$TMP/wrk.err" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=
    awk '$1 == "vx-load" { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "wrk-result requests=%d secs=%s rps=%s p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d unsent=%d\n",
            v["ok"], v["secs"], v["rps"], v["p50_us"] / 1000, v["p99_us"] / 1000, v["errors"], v["failed"], v["unsent"] }' \
        "$TMP/load.out" > "$TMP/wrk.out"
    return $rc
}

# client_run TEST CONNS DEPTH SECS PORT URL: the test's load generator
client_run() {
    case $1 in
    rate-*) vxload_run "${1#rate-}" "$4" "$5" ;;
    upload-*) wrk_run "$2" "$3" "$4" "$6" "${1#upload-}" ;;
    json-comp-*) wrk_run "$2" "$3" "$4" "$6" 0 'Accept-Encoding: gzip' ;;
    *) wrk_run "$2" "$3" "$4" "$6" ;;
    esac
}

# client_cpu: CPU seconds of this shell's reaped children (wrk, through
# timeout) into CLI_CPU. `times` must run in this shell, not in $(...):
# a subshell's children are not ours.
client_cpu() {
    times > "$TMP/times"
    CLI_CPU=$(awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] }
        printf "%.3f", s }' "$TMP/times")
}

# snapshot PID -> "ticks vcsw ivcsw nproc ntasks sched_ns ba ta bc tc st t_us"
snapshot() {
    local c
    c=$(tree_counters "$1") || return 1
    echo "$c $(host_counters)"
}

# account S0 S1 CLI0 CLI1 RESULT -> computed key=value fields
account() {
    awk -v s0="$1" -v s1="$2" -v c0="$3" -v c1="$4" -v res="$5" -v hz="$HZ" '
    function f(line, k,   n, i, a, kv) {
        n = split(line, a, " ")
        for (i = 1; i <= n; i++) { split(a[i], kv, "="); if (kv[1] == k) return kv[2] }
        return ""
    }
    BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        req = f(res, "requests") + 0
        win = (b[12] - a[12]) / 1e6              # snapshot to snapshot, s
        cpu = (b[6] - a[6]) / 1e9                # server tree, schedstat
        cli = c1 - c0
        printf "win_s=%.3f srv_cpu_s=%.4f srv_cpu_pct=%.1f", win, cpu, 100 * cpu / win
        printf " req_per_core_s=%.0f", (cpu > 0 ? req / cpu : 0)
        printf " tick_cpu_pct=%.1f", 100 * (b[1] - a[1]) / hz / win
        printf " vcsw=%d ivcsw=%d procs=%d tasks=%d", b[2] - a[2], b[3] - a[3], b[4], b[5]
        printf " cli_cpu_pct=%.1f", 100 * cli / win
        printf " core_busy_pct=%.1f", (b[10] > a[10] ? 100 * (b[9] - a[9]) / (b[10] - a[10]) : 0)
        # everything else that ran on the host (other sessions, kernel
        # threads), in % of one CPU; steal = taken by the hypervisor
        other = (b[7] - a[7]) / hz - cpu - cli
        if (other < 0) other = 0                 # tick rounding
        printf " foreign_pct=%.1f steal_pct=%.1f", 100 * other / win, 100 * (b[11] - a[11]) / hz / win
    }'
}

# kernel_share TEST CONNS DEPTH PORT URL -> KSHARE="kernel_pct=K samples=N": one
# more run of the load while perf samples the server tree's threads on a
# timer (cpu-clock, 999 Hz: no PMU needed; a server asleep is not sampled),
# and the share of those samples in the kernel (system calls, the TCP/IP
# stack, softirqs run on its CPU). A run of its own: perf's overhead stays
# out of the measured run, whose CPU time the share is then applied to.
# Run in this shell, not in $(...), so that the trap knows wrk's and perf's PIDs.
kernel_share() {
    local pids rc=0
    KSHARE="kernel_pct= samples=0"
    pids=$(tree_pids "$SRV_PID" | tr ' ' ,)
    perf record -q -e cpu-clock -F 999 -p "$pids" -o "$TMP/perf.data" -- sleep "$DURATION" \
        > /dev/null 2> "$TMP/perf.err" &
    PERF_PID=$!
    client_run "$1" "$2" "$3" "$DURATION" "$4" "$5" || true
    wait "$PERF_PID" || rc=$?
    PERF_PID=
    [ $rc -eq 0 ] || return 0
    KSHARE=$(perf report -i "$TMP/perf.data" --sort dso --stdio -q -n 2> /dev/null | awk '
        $1 ~ /%$/ { n = $2 + 0; all += n; if ($3 == "[kernel.kallsyms]") k += n }
        END { if (all) printf "kernel_pct=%.1f samples=%d\n", 100 * k / all, all
              else print "kernel_pct= samples=0" }') || true
}

# run_test ROUND SERVER TEST PORT: warm-up, then one measured wrk run.
run_test() {
    local round=$1 label=$2 test=$3 port=$4 conns depth url tag s0 s1 c0 res line rc=0
    read -r conns depth <<< "$(test_load "$test")"
    WRK_CONNECTION=keep-alive
    if [ "$test" = short-lived ]; then WRK_CONNECTION=close; fi
    url="http://127.0.0.1:$port$(test_path "$test")"
    tag="round=$round server=$label test=$test conns=$conns depth=$depth"
    if [ -n "${CHECK_FAIL[$test]:-}" ]; then
        echo "fail $tag reason=check:${CHECK_FAIL[$test]// /_}" >> "$RAW"
        return 0
    fi
    if [ "$WARMUP" -gt 0 ]; then client_run "$test" "$conns" "$depth" "$WARMUP" "$port" "$url" || true; fi
    client_cpu; c0=$CLI_CPU
    s0=$(snapshot "$SRV_PID") || s0=
    client_run "$test" "$conns" "$depth" "$DURATION" "$port" "$url" || rc=$?
    client_cpu
    s1=$(snapshot "$SRV_PID") || s1=
    res=$(grep -m1 '^wrk-result ' "$TMP/wrk.out" || true)
    if [ -z "$res" ] || [ -z "$s0" ] || [ -z "$s1" ]; then
        local why
        why="wrk_rc=$rc:$(head -1 "$TMP/wrk.err")"
        [ -n "$s1" ] || why="server_died"
        echo "fail $tag reason=${why// /_}" >> "$RAW"
        note "$label $test: no result ($why)"
        return 0
    fi
    line="run $tag port=$port wrk_rc=$rc ${res#wrk-result } $(account "$s0" "$s1" "$c0" "$CLI_CPU" "$res")"
    if [ "$SPLIT" = 1 ]; then
        kernel_share "$test" "$conns" "$depth" "$port" "$url"
        line+=" $KSHARE"
    fi
    echo "$line" >> "$RAW"
    note "$(printf '%-10s %-17s %8s req/s  cpu %5s %%  %8s req/core-s  client %5s %%  errors=%s non2xx=%s' \
        "$label" "$test" "$(kv rps "$line")" "$(kv srv_cpu_pct "$line")" \
        "$(kv req_per_core_s "$line")" "$(kv cli_cpu_pct "$line")" \
        "$(kv errors "$line")" "$(kv non2xx "$line")")"
}

# run_server ROUND SERVER: one fresh server, correctness checks, then every
# test it serves, one after the other.
declare -A CHECK_FAIL=()
run_server() {
    local round=$1 label=$2 port tries=0 test
    while :; do
        port=$(free_port)
        start_server "$label" "$port" && break
        tries=$((tries + 1))
        if [ $tries -ge 3 ] || ! grep -qi "in use" "$TMP/srv.err" "$RUNDIR/error.log" 2>/dev/null; then
            echo "fail round=$round server=$label test=all reason=start:$(srv_why | tr ' ' '_')" >> "$RAW"
            note "$label: server did not start: $(srv_why)"
            return 0
        fi
    done
    CHECK_FAIL=()
    for test in $TESTS; do
        serves "$label" "$test" || continue
        if ! check_test "$port" "$test"; then
            CHECK_FAIL[$test]=${WHY# }
            note "$label $test: correctness check failed:${WHY}"
        fi
    done
    for test in $TESTS; do
        serves "$label" "$test" && run_test "$round" "$label" "$test" "$port"
    done
    stop_server "$port"
}

# ------------------------------------------------------------------ setup
# Which servers: the SERVERS knob as given, else vx-epoll, vx-uring and the
# peers found, raw-epoll next to vx-epoll and raw-uring next to vx-uring so
# that each comparison is between neighbours in time. Then each must start.
choose_servers() {
    local want=${SERVERS:-raw-epoll vx-epoll raw-uring vx-uring nginx h2o libuv libevent libev}
    local label port
    RUN_SERVERS='' SKIPPED=''
    if [ -z "${SERVERS:-}" ] && [ ! -d "$PEERS_DIR/peers" ]; then
        note "no peers: $PEERS_DIR/peers not found; vx-http only"
        PEER_NOTE="$PEERS_DIR/peers not found"
        want="vx-epoll vx-uring"
    fi
    for label in $want; do
        case $label in
        vx-*) ;;
        raw-epoll | raw-uring | libuv | libevent | libev | nginx | h2o) find_peer "$label" || continue ;;
        *) note "unknown server '$label' skipped"; continue ;;
        esac
        port=$(free_port)
        if start_server "$label" "$port"; then
            stop_server "$port"
            RUN_SERVERS+="$label "
        else
            SKIPPED+="$label ($(srv_why)); "
            note "$label skipped: does not start: $(srv_why)"
        fi
    done
    [ -n "$RUN_SERVERS" ] || die "no server could start"
}

version_of() { # a tool's version line, or "-"
    "$@" 2>&1 | head -1 || true
}

environment() {
    env_date
    echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(lscpu | sed -n 's/^Hypervisor vendor: *//p') guest"
    echo "kernel: $(uname -r)"
    echo "compiler: $($CC --version | head -1)"
    echo "vx-http: $VX_HTTP, flags: $(sed -n 's/^C_FLAGS = //p' build/CMakeFiles/vx-http.dir/flags.make 2>/dev/null)"
    echo "wrk: $(version_of wrk -v), 1 thread, script bench/pipeline.lua, TechEmpower request headers"
    echo "nginx: $(version_of nginx -v); h2o: $(version_of h2o --version)"
    echo "peers: $PEERS_DIR (binaries: $PEERS_BUILD, else $CC ${PEER_CFLAGS[*]} into $OUT); libs:" \
        "$(dpkg-query -W -f '${Package} ${Version}, ' liburing-dev libuv1-dev libevent-dev libev-dev 2>/dev/null)"
    env_git
    echo "settings: SPLIT=$SPLIT TESTS=\"$TESTS\" JSON_M=$JSON_M ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNS=$CONNS PIPE_CONNS=$PIPE_CONNS SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU"
    echo "servers: $RUN_SERVERS"
    echo "not served by the peers (vx-http only): baseline11, json-N, json-comp-N, upload-N; static-N: vx-http and nginx only; short-lived: vx-http, nginx, h2o; rate-R: vx-load (epoll, CONNS connections) at R requests/s instead of wrk"
    [ -z "$SKIPPED" ] || echo "skipped: $SKIPPED"
    [ -z "$PEER_NOTE" ] || echo "peers not used: $PEER_NOTE"
    echo "host at start: $(host_noise)"
}

# ------------------------------------------------------------------- main
command -v wrk > /dev/null || die "wrk not installed (apt-get install wrk)"
command -v curl > /dev/null || die "curl not installed"
if [ "$SPLIT" = 1 ] && ! perf record -q -e cpu-clock -o /dev/null -- true > /dev/null 2>&1; then
    die "SPLIT=1 needs perf record with the cpu-clock event (apt-get install linux-perf; as root)"
fi
check_tests
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vx-http-bench.XXXXXX")
chmod 711 "$TMP"                # h2o's worker (nobody) reaches its run dir
RUNDIR=$TMP
WWW=$TMP/www                    # the static-N files (random bytes)
mkdir -p "$WWW"
chmod 755 "$WWW"
for t in $TESTS; do
    case $t in static-*) head -c "${t#static-}" /dev/urandom > "$WWW/f${t#static-}.bin" ;; esac
done
PEERS_DIR=$(cd "$PEERS_DIR" 2>/dev/null && pwd || echo "$PEERS_DIR")
PEERS_BUILD=${PEERS_BUILD:-$PEERS_DIR/build}
if [ ! -x "$VX_HTTP" ] || [ ! -x "$VX_LOAD" ]; then
    note "$VX_HTTP or $VX_LOAD missing: make build"
    make build >&2 || die "make build failed"
fi
choose_servers
open_results http-
note "servers: $RUN_SERVERS; tests: $TESTS; $ROUNDS rounds of ${WARMUP}+${DURATION} s runs -> $RESDIR"
for round in $(seq "$ROUNDS"); do
    echo "# round $round $(host_noise)" | tee -a "$RAW" >&2
    for label in $RUN_SERVERS; do run_server "$round" "$label"; done
done
write_summary awk -f bench/stats.awk -f bench/http-table.awk
