#!/usr/bin/env bash
# test-vx-echo-models.sh: vx-echo under every --model, once per backend.
# Env: VX_BIN (directory with vx-echo), VX_BACKEND (backend name).
# For each model: the "listening 127.0.0.1:PORT backend=NAME model=MODEL" line
# names the model (backend=blocking for the baselines), concurrent clients get
# their bytes back (and rot13 once), and SIGTERM makes it exit 0 within 5 s.
# Exit 77 if the backend is unavailable.
set -uo pipefail
: "${VX_BIN:?VX_BIN must name the directory holding vx-echo}"
backend=${VX_BACKEND:-epoll}
bin=$VX_BIN/vx-echo
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
pid=

cleanup() {
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*"
    for f in "$tmp"/*.out "$tmp"/*.err; do
        [[ -s $f ]] && { echo "--- $(basename "$f")"; cat "$f"; }
    done
    exit 1
}
[[ -x $bin ]] || fail "$bin is not an executable"

re='^listening 127\.0\.0\.1:([0-9]+) backend=([a-z0-9-]+) model=([a-z0-9:-]+)$'

# run_model MODEL: start, check the line, echo, stop
run_model() {
    local model=$1 tag=${1//:/_}${2:+_pin} line="" rc
    "$bin" --port 0 --backend "$backend" --model "$model" --idle-timeout 10000 ${2:-} \
        >"$tmp/$tag.out" 2>"$tmp/$tag.err" &
    pid=$!
    for _ in $(seq 100); do
        line=$(head -n1 "$tmp/$tag.out")
        [[ -n $line ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"; rc=$?; pid=
            if grep -qi "unavailable" "$tmp/$tag.err"; then
                echo "SKIP: backend $backend unavailable"
                exit 77
            fi
            fail "$model: exited with status $rc before it was ready"
        fi
        sleep 0.05
    done
    [[ $line =~ $re ]] || fail "$model: listening line '$line' does not match /$re/"
    local port=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]} got=${BASH_REMATCH[3]}
    [[ $got == "$model" ]] || fail "$model: the line says model=$got"
    case $model in
    thread-per-conn | fork-per-conn) [[ $name == blocking ]] || fail "$model: backend=$name" ;;
    *) [[ $backend == auto || $name == "$backend" ]] || fail "$model: backend=$name, asked for $backend" ;;
    esac
    # 8 concurrent clients, distinct payloads
    local cpids=() i
    for i in $(seq 8); do
        python3 "$here/echo-client.py" tcp 127.0.0.1 "$port" "model $model client $i $(head -c 2000 /dev/zero | tr '\0' "$((i % 10))")" \
            >"$tmp/$tag.client$i" 2>&1 &
        cpids+=($!)
    done
    for i in "${!cpids[@]}"; do
        wait "${cpids[$i]}" || fail "$model: client $((i + 1)): $(cat "$tmp/$tag.client$((i + 1))")"
    done
    kill -TERM "$pid" || fail "$model: cannot signal $pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && fail "$model: still running 5 s after SIGTERM"
    wait "$pid"; rc=$?; pid=
    [[ $rc -eq 0 ]] || fail "$model: exit status $rc after SIGTERM (want 0)"
    echo "ok: $model backend=$name"
}

for model in single reuseport:2 handoff:2 shared:2 procs:2 thread-per-conn fork-per-conn; do
    run_model "$model"
done
# Pinned reuseport loops steer with SO_INCOMING_CPU (the setsockopt must succeed).
run_model reuseport:2 --pin
! grep -q SO_INCOMING_CPU "$tmp/reuseport_2_pin.err" || fail "reuseport --pin: $(cat "$tmp/reuseport_2_pin.err")"

# rot13 through a multi-loop model
"$bin" --port 0 --backend "$backend" --model handoff:2 --rot13 >"$tmp/rot.out" 2>"$tmp/rot.err" &
pid=$!
for _ in $(seq 100); do [[ -s $tmp/rot.out ]] && break; sleep 0.05; done
[[ $(head -n1 "$tmp/rot.out") =~ $re ]] || fail "--rot13: no listening line"
reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "${BASH_REMATCH[1]}" "Hello" "Uryyb") ||
    fail "--rot13 handoff:2: 'Hello' gave '$reply'"
kill -TERM "$pid"; wait "$pid" || fail "--rot13: exit status $?"
pid=
echo "ok: all models, backend=$backend"
