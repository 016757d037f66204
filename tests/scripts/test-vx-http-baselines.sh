#!/usr/bin/env bash
# vx-http under the blocking baselines (thread-per-conn, fork-per-conn): the
# benchmark endpoints, 404, a pipelined batch answered in order, a malformed
# request answered 400 and closed, keep-alive under ab, and exit 0 on SIGTERM.
# The backend does not apply (blocking I/O); it runs once per backend anyway.
set -u
BIN=${VX_BIN:?}/vx-http
fail() { echo "FAIL: $*"; kill -TERM "$pid" 2>/dev/null; exit 1; }

for model in thread-per-conn fork-per-conn; do
    out=$(mktemp)
    "$BIN" --port 0 --model "$model" >"$out" 2>/dev/null &
    pid=$!
    for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
    line=$(head -1 "$out")
    [[ $line =~ ^listening\ 127\.0\.0\.1:([0-9]+)\ backend=blocking\ model=$model$ ]] ||
        fail "$model: listening line: '$line'"
    port=${BASH_REMATCH[1]}
    url=http://127.0.0.1:$port
    [ "$(curl -s "$url/plaintext")" = "Hello, World!" ] || fail "$model: /plaintext"
    [ "$(curl -s "$url/json")" = '{"message":"Hello, World!"}' ] || fail "$model: /json"
    [ "$(curl -s "$url/baseline11?a=2&b=3" -d 7)" = 12 ] || fail "$model: POST /baseline11"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/baseline11?a=9223372036854775807&b=1")" = 400 ] ||
        fail "$model: /baseline11 past int64"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/missing")" = 404 ] || fail "$model: 404"
    got=$(printf 'GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
        timeout 5 nc -q 3 127.0.0.1 "$port" | grep -oE 'ok|\{"message":"Hello, World!"\}|Hello, World!' | tr '\n' '|')
    [ "$got" = 'ok|{"message":"Hello, World!"}|Hello, World!|' ] || fail "$model: pipelined batch: '$got'"
    bad=$(printf 'GET / HTTP/1.1\r\n Host: x\r\n\r\n' | timeout 5 nc -q 3 127.0.0.1 "$port" | head -1 | tr -d '\r')
    [ "$bad" = "HTTP/1.1 400 Bad Request" ] || fail "$model: obs-fold: '$bad'"
    ab=$(ab -q -k -n 2000 -c 8 "$url/plaintext" 2>&1)
    grep -q '^Failed requests: *0' <<<"$ab" || fail "$model: ab: $(grep -E 'Failed|Non-2xx' <<<"$ab")"
    ! grep -q 'Non-2xx' <<<"$ab" || fail "$model: ab non-2xx"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    [ $rc -eq 0 ] || fail "$model: exit $rc on SIGTERM"
    rm -f "$out"
    echo "ok $model"
done
echo "2 passed, 0 failed"
