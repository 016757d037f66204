#!/usr/bin/env bash
# vx-http under the blocking baselines (thread-per-conn, fork-per-conn): the
# benchmark endpoints, /delay/{ms} eight at once, 404, a pipelined batch answered in order, one whose
# answers overflow the output buffer answered whole, a malformed
# request answered 400 and closed (and logged with its reason), keep-alive
# under ab, a slowloris client answered 408 and closed while it still trickles
# (the header timeout), an idle keep-alive connection closed (the idle
# timeout), and exit 0 on SIGTERM.
# The backend does not apply (blocking I/O); it runs once per backend anyway.
set -u
BIN=${VX_BIN:?}/vx-http
fail() { echo "FAIL: $*"; kill -TERM "$pid" 2>/dev/null; exit 1; }

for model in thread-per-conn fork-per-conn; do
    out=$(mktemp) err=$(mktemp)
    "$BIN" --port 0 --model "$model" --header-timeout 500 --idle-timeout 1000 >"$out" 2>"$err" &
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
    # /delay/{ms}: the thread or process sleeps; 8 at once, each its own value
    for ms in 0 30 45 60 75 90 105 120; do curl -s "$url/delay/$ms" >"$out.d$ms" & done
    wait $(jobs -p | grep -vx "$pid")
    for ms in 0 30 45 60 75 90 105 120; do
        [ "$(cat "$out.d$ms")" = "$ms" ] || fail "$model: /delay/$ms: '$(cat "$out.d$ms")'"
    done
    rm -f "$out".d*
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/delay/x")" = 400 ] || fail "$model: /delay/x"
    grep -q '400, delay: 0 to 60000 ms$' "$err" || fail "$model: /delay/x not logged: $(cat "$err")"
    got=$(printf 'GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
        timeout 5 nc -q 3 127.0.0.1 "$port" | grep -oE 'ok|\{"message":"Hello, World!"\}|Hello, World!' | tr '\n' '|')
    [ "$got" = 'ok|{"message":"Hello, World!"}|Hello, World!|' ] || fail "$model: pipelined batch: '$got'"
    # A batch whose answers overflow the 64 KiB output buffer: answered in
    # pieces, the rest of the input without waiting for another read.
    many=$(timeout 10 python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
n = 520  # 16 KiB in, 76 KiB out
s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n" * n)
got = b""
try:
    while got.count(b'World!"}') < n:
        b = s.recv(65536)
        if not b:
            break
        got += b
except OSError:
    pass
print(got.count(b'World!"}'))
PY
)
    [ "$many" = 520 ] || fail "$model: 520 pipelined /json: $many answered"
    bad=$(printf 'GET / HTTP/1.1\r\n Host: x\r\n\r\n' | timeout 5 nc -q 3 127.0.0.1 "$port" | head -1 | tr -d '\r')
    [ "$bad" = "HTTP/1.1 400 Bad Request" ] || fail "$model: obs-fold: '$bad'"
    grep -q '^vx-http: 400, ' "$err" || fail "$model: the 400 was not logged: $(cat "$err")"
    # A head trickled a line every 100 ms for up to 10 s: the 408 must come
    # while it still trickles. Then a silent keep-alive connection: EOF.
    slow=$(timeout 20 python3 - "$port" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /plaintext HTTP/1.1\r\n")
s.settimeout(0.1)
got = b""
for _ in range(100):
    try:
        s.sendall(b"X-Slow: 1\r\n")
        got += s.recv(4096)
        if got.endswith(b"\r\n\r\n") or not got:
            break
    except socket.timeout:
        continue
    except OSError:
        break
s.settimeout(5)
try:
    while True:
        b = s.recv(4096)
        if not b:
            break
        got += b
except OSError:
    pass
print(got.split(b"\r\n")[0].decode() if got else "nothing", end="|")
k = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
k.sendall(b"GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n")
k.settimeout(10)
first = k.recv(4096)
print("answered" if first.endswith(b"ok") else "no answer", end="|")
try:
    print("closed" if k.recv(4096) == b"" else "data")
except OSError as e:
    print(e)
PY
)
    [ "$slow" = "HTTP/1.1 408 Request Timeout|answered|closed" ] || fail "$model: timeouts: '$slow'"
    grep -q '^vx-http: 408, request head not complete within the header timeout' "$err" ||
        fail "$model: the 408 was not logged: $(cat "$err")"
    ab=$(ab -q -k -n 2000 -c 8 "$url/plaintext" 2>&1)
    grep -q '^Failed requests: *0' <<<"$ab" || fail "$model: ab: $(grep -E 'Failed|Non-2xx' <<<"$ab")"
    ! grep -q 'Non-2xx' <<<"$ab" || fail "$model: ab non-2xx"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    [ $rc -eq 0 ] || fail "$model: exit $rc on SIGTERM"
    rm -f "$out" "$err"
    echo "ok $model"
done
echo "2 passed, 0 failed"
