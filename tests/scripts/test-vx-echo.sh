#!/usr/bin/env bash
# test-vx-echo.sh: the vx-echo program, once per backend.
# Env: VX_BIN (directory with vx-echo), VX_BACKEND (backend name).
# Checks the "listening 127.0.0.1:PORT backend=NAME [model=MODEL]" line, echo, --rot13, --unix,
# and that SIGTERM makes it exit 0 within 5 s. Exit 77 if the backend is unavailable.
set -uo pipefail
: "${VX_BIN:?VX_BIN must name the directory holding vx-echo}"
backend=${VX_BACKEND:-epoll}
bin=$VX_BIN/vx-echo
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d)
declare -A pids=()

cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
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

# start NAME ARGS...: run vx-echo ARGS in the background
start() {
    local name=$1; shift
    "$bin" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pids[$name]=$!
}

# Called when instance NAME died early: exit 77 if it said the backend is unavailable.
died() {
    local name=$1 rc
    wait "${pids[$name]}"; rc=$?
    unset "pids[$name]"
    if [[ $rc -eq 77 ]] || grep -qi "unavailable" "$tmp/$name.out" "$tmp/$name.err"; then
        echo "SKIP: backend $backend unavailable"
        exit 77
    fi
    fail "vx-echo ($name) exited with status $rc before it was ready"
}

# first_line NAME: wait (5 s) for the first stdout line of instance NAME
first_line() {
    local name=$1 line
    for _ in $(seq 100); do
        line=$(head -n1 "$tmp/$name.out")
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        kill -0 "${pids[$name]}" 2>/dev/null || return 1
        sleep 0.05
    done
    echo "(no stdout line within 5 s)"
    return 0
}

# stop NAME: SIGTERM, must exit 0 within 5 s
stop() {
    local name=$1 pid=${pids[$1]} rc
    kill -TERM "$pid" || fail "$name: cannot signal $pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && fail "$name: still running 5 s after SIGTERM"
    wait "$pid"; rc=$?
    unset "pids[$name]"
    [[ $rc -eq 0 ]] || fail "$name: exit status $rc after SIGTERM (want 0)"
}

re='^listening 127\.0\.0\.1:([0-9]+) backend=([a-z0-9-]+)( model=[a-z0-9:-]+)?$'

# --- plain echo
start plain --port 0 --backend "$backend"
line=$(first_line plain) || died plain
[[ $line =~ $re ]] || fail "listening line '$line' does not match /$re/"
port=${BASH_REMATCH[1]} name=${BASH_REMATCH[2]}
[[ $port -gt 0 && $port -lt 65536 ]] || fail "bad port $port"
[[ $backend == auto || $name == "$backend" ]] || fail "backend=$name, asked for $backend"
[[ $(wc -l <"$tmp/plain.out") -le 1 ]] || fail "more than one stdout line"
reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "$port" "hello vortex") ||
    fail "echo: got '$reply'"
big=$(head -c 100000 /dev/zero | tr '\0' 'x')
python3 "$here/echo-client.py" tcp 127.0.0.1 "$port" "$big" >/dev/null ||
    fail "echo of 100000 bytes failed"

# --- rot13
start rot --port 0 --backend "$backend" --rot13
line=$(first_line rot) || died rot
[[ $line =~ $re ]] || fail "--rot13 listening line '$line'"
rport=${BASH_REMATCH[1]}
reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "$rport" "Hello" "Uryyb") ||
    fail "--rot13: 'Hello' gave '$reply', want 'Uryyb'"
reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "$rport" "Why did the chicken? 42!" \
    "Jul qvq gur puvpxra? 42!") || fail "--rot13: punctuation/digits: '$reply'"

# --- unix socket
sock=$tmp/vx-echo.sock
start unix --unix "$sock" --backend "$backend"
for _ in $(seq 100); do
    [[ -S $sock ]] && break
    kill -0 "${pids[unix]}" 2>/dev/null || died unix
    sleep 0.05
done
[[ -S $sock ]] || fail "--unix: $sock did not appear within 5 s"
reply=$(python3 "$here/echo-client.py" unix "$sock" "over a unix socket") ||
    fail "--unix echo: got '$reply'"

# --- SIGTERM: exit 0 within 5 s
stop plain
stop rot
stop unix
echo "ok: vx-echo backend=$name"
