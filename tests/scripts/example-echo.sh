#!/usr/bin/env bash
# example-echo.sh PATH-TO-example-echo: start the echo example on a free port
# (argument 0), read its "listening 127.0.0.1:PORT" line, check one echo, stop it.
set -uo pipefail
bin=${1:?usage: example-echo.sh PATH-TO-example-echo}
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
    echo "--- stdout"; cat "$tmp/out" 2>/dev/null
    echo "--- stderr"; cat "$tmp/err" 2>/dev/null
    exit 1
}

"$bin" 0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
line=
for _ in $(seq 100); do
    line=$(head -n1 "$tmp/out")
    [[ -n $line ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; rc=$?; pid=
        # a backend forced through VX_BACKEND that cannot run here
        grep -qiE 'not implemented|ENOSYS|unavailable' "$tmp/err" && { echo "SKIP: backend unavailable"; exit 77; }
        fail "example exited with $rc before listening"
    fi
    sleep 0.05
done
[[ $line =~ ^listening\ 127\.0\.0\.1:([0-9]+)$ ]] || fail "bad listening line: '$line'"
port=${BASH_REMATCH[1]}
[[ $port -gt 0 ]] || fail "port 0 in the listening line"

reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "$port" "hello from example-echo.sh") ||
    fail "echo mismatch: '$reply'"
reply=$(python3 "$here/echo-client.py" tcp 127.0.0.1 "$port" "second client") ||
    fail "echo mismatch on a second connection: '$reply'"

kill -TERM "$pid"
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
kill -0 "$pid" 2>/dev/null && fail "still running 5 s after SIGTERM"
wait "$pid"; rc=$?; pid=
[[ $rc -eq 0 ]] || fail "exit status $rc after SIGTERM"
echo "ok: example-echo on port $port"
