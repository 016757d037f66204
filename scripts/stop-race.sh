#!/usr/bin/env bash
# stop-race.sh: hunt a graceful stop of vx-http that does not finish. Each run
# starts vx-http on a free loopback port with one backend and model, puts one
# kind of client on it, sends SIGTERM at one moment and requires the process
# to exit 0 within drain_ms + 1 s (vx-http's drain_ms is the default 5000).
# A hang is captured (gdb backtraces of every thread, /proc state, stderr),
# then the process is killed and the hunt goes on.
#   scenarios: start (SIGTERM 0-20 ms after the listening line, before or
#   while the loop threads start), load (wrk during), after (right after wrk),
#   idle (keep-alive connections left open after a request), partial (a
#   request head half sent: the drain deadline must force-close it), abort
#   (clients resetting mid-request), mixed (curl keep-alive loop + idle +
#   partial + abort, SIGTERM while they run), heavy (wrk -c512 for 3 s, then
#   SIGTERM), emfile (vx-http under ulimit -n 96, wrk -c256: accepting pauses
#   on EMFILE; SIGTERM during or right after).
# Env: VX_BIN (default build/bin), RUNS (200), BACKENDS ("epoll epoll-et poll
#   uring"), MODELS ("single reuseport:2"), SCENARIOS (all), DRAIN_MS (5000),
#   LOG (directory for captures; default a temporary one, kept on a hang).
# Last line: "stop-race: N runs, H hangs, B bad exits" (exit 1 when H+B > 0).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${VX_BIN:-$here/../build/bin}
runs=${RUNS:-200}
read -r -a backends <<<"${BACKENDS:-epoll epoll-et poll uring}"
read -r -a models <<<"${MODELS:-single reuseport:2}"
read -r -a scenarios <<<"${SCENARIOS:-start load after idle partial abort mixed heavy emfile}"
drain_ms=${DRAIN_MS:-5000}
log=${LOG:-$(mktemp -d /tmp/stop-race.XXXXXX)}
mkdir -p "$log"
[ -x "$bin/vx-http" ] || { echo "stop-race: no $bin/vx-http"; exit 1; }
have_wrk=$(command -v wrk || true)

# Clients: python3 clients.py PORT KIND N (KIND idle|partial|abort|keepalive);
# prints "ready" once its connections are set up (keepalive: connected).
cat >"$log/clients.py" <<'EOF'
import socket, struct, sys, time
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
socks = []
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    socks.append(s)
    return s
try:
    if kind == "keepalive":  # n requests on 4 keep-alive connections
        cs = [conn() for _ in range(4)]
        print("ready", flush=True)
        for i in range(n):
            s = cs[i % 4]
            s.sendall(req)
            got = b""
            while b"Hello, World!" not in got:
                b = s.recv(4096)
                if not b:
                    raise SystemExit(0)
                got += b
    for _ in range(n if kind != "keepalive" else 0):
        s = conn()
        if kind == "idle":  # one request, then stay open
            s.sendall(req)
            s.recv(4096)
        elif kind == "partial":  # half a head, then stay open
            s.sendall(req[:20])
        elif kind == "abort":  # half a head, then RST
            s.sendall(req[:20])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            socks.pop()
    print("ready", flush=True)
    time.sleep(30)  # killed by the script
except (OSError, SystemExit):
    pass
EOF

ms() { date +%s%3N; }
cl() { # KIND N: start a client in the background (its pid in cpids)
    local f=$log/ready.${#cpids[@]}
    : >"$f"
    python3 "$log/clients.py" "$port" "$1" "$2" >"$f" 2>/dev/null &
    cpids+=($!)
    readies+=("$f")
}
await_ready() { # every client started said ready (or 5 s passed)
    local f
    for f in "${readies[@]}"; do
        for _ in $(seq 500); do grep -q ready "$f" && break; sleep 0.01; done
    done
}
hangs=0 bad=0 done_runs=0 skipped=0
declare -A tally slowest

capture() { # PID TAG
    local pid=$1 tag=$2 d=$log/hang-$2
    mkdir -p "$d"
    gdb -batch -ex 'set pagination off' -ex 'thread apply all bt' -p "$pid" >"$d/gdb.txt" 2>&1
    for t in /proc/"$pid"/task/*; do
        echo "== $t $(cat "$t/comm") $(cat "$t/wchan" 2>/dev/null)"
        cat "$t/stack" 2>/dev/null
    done >"$d/tasks.txt"
    ls -l /proc/"$pid"/fd >"$d/fds.txt" 2>&1
    cat /proc/"$pid"/net/tcp >"$d/tcp.txt" 2>&1
    timeout 1 strace -f -p "$pid" -o "$d/strace.txt" 2>/dev/null
    cp "$log/err" "$d/stderr.txt"
    echo "$tag" >>"$log/hangs.txt"
}

for ((run = 1; run <= runs; run++)); do
    b=${backends[RANDOM % ${#backends[@]}]}
    m=${models[RANDOM % ${#models[@]}]}
    sc=${scenarios[RANDOM % ${#scenarios[@]}]}
    [[ $sc =~ ^(load|after|heavy|emfile)$ ]] && [[ -z $have_wrk ]] && sc=keepalive
    : >"$log/out" # no listening line of the previous run
    [[ $sc == emfile ]] && nofile=96 || nofile=$(ulimit -n)
    (ulimit -n $nofile && exec "$bin/vx-http" --port 0 --backend "$b" --model "$m") >"$log/out" 2>"$log/err" &
    pid=$!
    for _ in $(seq 400); do grep -q '^listening' "$log/out" && break; sleep 0.005; done
    if ! grep -q '^listening' "$log/out"; then
        if grep -qi unavailable "$log/err"; then skipped=$((skipped + 1)); kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; continue; fi
        echo "run $run: no listening line ($b $m)"; cat "$log/err"; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; bad=$((bad + 1)); continue
    fi
    port=$(sed -n 's/^listening [^:]*:\([0-9]*\) .*/\1/p' "$log/out")
    U=http://127.0.0.1:$port/plaintext
    cpids=() readies=()
    case $sc in
    start) sleep "0.0$((RANDOM % 20))" ;;
    load) wrk -t1 -c64 -d2s "$U" >/dev/null 2>&1 & cpids+=($!); sleep "0.$((2 + RANDOM % 8))" ;;
    after) wrk -t1 -c64 -d1s "$U" >/dev/null 2>&1 ;;
    heavy) wrk -t2 -c512 -d3s "$U" >/dev/null 2>&1 ;;
    emfile)
        if ((RANDOM % 2)); then
            wrk -t1 -c256 -d1s "$U" >/dev/null 2>&1
        else
            wrk -t1 -c256 -d2s "$U" >/dev/null 2>&1 & cpids+=($!); sleep 0.5
        fi
        ;;
    idle) cl idle 20; await_ready ;;
    partial) cl partial 5; await_ready ;;
    abort) cl abort 50; sleep 0.$((RANDOM % 4)) ;;
    keepalive) cl keepalive 400; await_ready; sleep 0.0$((RANDOM % 10)) ;;
    mixed)
        cl keepalive 400
        cl idle 10
        cl abort 30
        [[ $((RANDOM % 3)) == 0 ]] && cl partial 2
        await_ready
        sleep "0.0$((RANDOM % 10))"
        ;;
    esac
    t0=$(ms)
    kill -TERM $pid
    limit=$((t0 + drain_ms + 1000))
    while kill -0 $pid 2>/dev/null && [ "$(ms)" -lt $limit ]; do sleep 0.01; done
    tag=$run-$b-${m/:/}-$sc
    if kill -0 $pid 2>/dev/null && ! grep -q . <(ps -o stat= -p $pid | grep Z); then
        hangs=$((hangs + 1))
        echo "run $run: HANG ($b $m $sc), capturing into $log/hang-$tag"
        capture $pid "$tag"
        kill -9 $pid 2>/dev/null
    fi
    wait $pid 2>/dev/null
    rc=$?
    took=$(($(ms) - t0))
    for c in "${cpids[@]}"; do kill "$c" 2>/dev/null; wait "$c" 2>/dev/null; done
    if [[ $rc != 0 && $rc != 137 ]]; then
        bad=$((bad + 1))
        echo "run $run: exit $rc ($b $m $sc) after $took ms"; tail -5 "$log/err"
    fi
    tally[$sc]=$((${tally[$sc]:-0} + 1))
    [[ $took -gt ${slowest[$sc]:-0} ]] && slowest[$sc]=$took
    echo "$run $b $m $sc $took $rc" >>"$log/times.txt"
    done_runs=$((done_runs + 1))
    [[ $((run % 20)) == 0 ]] && echo "... $run runs, $hangs hangs, last $b $m $sc took $took ms"
done
for k in "${!tally[@]}"; do printf '%s=%s(max %sms) ' "$k" "${tally[$k]}" "${slowest[$k]}"; done; echo
echo "stop-race: $done_runs runs ($skipped skipped), $hangs hangs, $bad bad exits; log $log"
[[ $((hangs + bad)) == 0 ]] && { [[ -z ${LOG:-} ]] && rm -rf "$log"; exit 0; }
exit 1
