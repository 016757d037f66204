#!/usr/bin/env bash
# test-vx-http.sh: vx-http under real clients, once per backend.
# Env: VX_BIN (directory with vx-http), VX_BACKEND, MODEL (default single).
# curl on every endpoint (status, headers, body; gzip; Range; If-Modified-Since;
# a 20 MiB upload; a 5 MiB static file byte-exact, ranged and after HEAD),
# python3 http.client keep-alive, ab -k and wrk on /plaintext with no errors,
# then SIGTERM exits 0. Exit 77 if the backend is unavailable.
set -uo pipefail
: "${VX_BIN:?VX_BIN must name the directory holding vx-http}"
backend=${VX_BACKEND:-epoll}
model=${MODEL:-single}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp/err" 2>/dev/null | tail -20; exit 1; }

mkdir -p "$tmp/www"
cp "$top"/data/www/* "$tmp/www/"
"$VX_BIN/vx-http" --port 0 --backend "$backend" --model "$model" --root "$tmp/www" \
    --dataset "$top/data/dataset.json" --max-body 4096 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q '^listening' "$tmp/out" && break; sleep 0.05; done
if ! grep -q '^listening' "$tmp/out"; then
    grep -qi unavailable "$tmp/err" && { echo "SKIP: backend $backend unavailable"; exit 77; }
    fail "no listening line"
fi
port=$(sed -n 's/^listening [^:]*:\([0-9]*\) .*/\1/p' "$tmp/out")
grep -q "backend=$backend model=" "$tmp/out" || fail "listening line: $(cat "$tmp/out")"
U=http://127.0.0.1:$port

# get URL EXPECTED_STATUS EXPECTED_BODY [curl args...]
get() {
    local url=$1 st=$2 body=$3; shift 3
    local got
    got=$(curl -sS -m 10 -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' "$@" "$U$url") || fail "curl $url"
    [[ $got == "$st" ]] || fail "$url: status $got, want $st"
    [[ -z $body || $(cat "$tmp/b") == "$body" ]] || fail "$url: body '$(head -c 200 "$tmp/b")'"
    grep -qi '^Server: ' "$tmp/h" && grep -qi '^Date: ' "$tmp/h" || fail "$url: no Server/Date"
}
hdr() { grep -qi "$1" "$tmp/h" || fail "header '$1' missing: $(cat "$tmp/h")"; }

get /plaintext 200 'Hello, World!'; hdr '^Content-Type: text/plain'; hdr '^Content-Length: 13'
get /json 200 '{"message":"Hello, World!"}'; hdr '^Content-Type: application/json'
get '/baseline11?a=2&b=3' 200 5
get '/baseline11?a=2&b=3' 200 15 -X POST --data 10
get '/baseline11?a=2&b=3' 200 15 -X POST -H 'Transfer-Encoding: chunked' --data 10
get '/baseline11?a=-7&b=3' 200 -4
get '/baseline11?a=9223372036854775807&b=1' 400 'sum out of range'
grep -q '400, sum out of range$' "$tmp/err" || fail "a handler's 400 not logged with its reason"
get '/baseline11?a=1&b=0' 400 'sum out of range' -X POST --data 9223372036854775807
get /pipeline 200 ok
# /delay/{ms}: ms back, and never before ms have passed (only that bound is
# asserted: a timer that fires early is a bug, one that fires late is the host)
get /delay/0 200 0; hdr '^Content-Type: text/plain'
get /delay/abc 400 'delay: 0 to 60000 ms'
get /delay/60001 400 'delay: 0 to 60000 ms'
python3 - "$port" <<'PY' || fail "/delay/{ms}, 24 at once"
import http.client, sys, threading, time
port = int(sys.argv[1]); bad = []
def one(ms):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t = time.monotonic(); c.request("GET", "/delay/%d" % ms); r = c.getresponse(); body = r.read()
    dt = time.monotonic() - t
    if r.status != 200 or body != b"%d" % ms or dt < ms / 1000:
        bad.append((ms, r.status, body, dt))
ts = [threading.Thread(target=one, args=(20 + 13 * i,)) for i in range(24)]
[t.start() for t in ts]; [t.join() for t in ts]
assert not bad, bad
PY
# a client that leaves while its answer waits: the timer goes, the server stays
curl -s -m 0.2 "$U/delay/3000" >/dev/null; [[ $? -eq 28 ]] || fail "/delay/3000 answered within 0.2 s"
get /pipeline 200 ok
# totals: the double price * quantity * m exactly, as HttpArena's check
# recomputes it, in the digits of Python's repr (integers without ".0")
json_totals() { # URL COUNT M
    get "$1" 200 ''
    python3 -c "
import json,sys
d=json.load(open('$tmp/b'), parse_float=str, parse_int=str); ds=json.load(open('$top/data/dataset.json'))
assert int(d['count'])==$2 and len(d['items'])==$2, d
for a,b in zip(d['items'],ds):
    t=b['price']*b['quantity']*($3)
    assert int(a['id'])==b['id'] and float(a['total'])==t, (a['total'], t, b)
    assert a['total']==(repr(t)[:-2] if t.is_integer() else repr(t)), (a['total'], repr(t))
" || fail "$1 content"
}
json_totals '/json/3?m=2' 3 2
json_totals '/json/50?m=-3' 50 -3
json_totals '/json/60?m=1000003' 50 1000003
! grep -qi '^Content-Encoding' "$tmp/h" || fail "compressed without Accept-Encoding"
get '/json/50?m=1' 200 '' --compressed; hdr '^Content-Encoding: gzip'; hdr '^Vary: Accept-Encoding'
python3 -c "import json; assert json.load(open('$tmp/b'))['count']==50" || fail "gzip json"
curl -sS -H 'Accept-Encoding: gzip' -o "$tmp/gz" "$U/json/10"
[[ $(head -c 2 "$tmp/gz" | od -An -tx1 | tr -d ' ') == 1f8b ]] || fail "no gzip magic"
for ae in 'gzip;q=0' 'gzip ; q=0.000' 'br, identity' 'gzipx'; do # refused or not offered
    curl -sS -D "$tmp/h" -H "Accept-Encoding: $ae" -o /dev/null "$U/json/10"
    ! grep -qi '^Content-Encoding' "$tmp/h" || fail "compressed for Accept-Encoding: $ae"
done
head -c 20971520 /dev/urandom >"$tmp/up"
get /upload 200 20971520 -X POST --data-binary @"$tmp/up"
get /upload 200 20971520 -X POST -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/up"
rm -f "$tmp/up"
get /static/style.css 200 "$(cat "$tmp/www/style.css")"; hdr '^Content-Type: text/css'
get /static/logo.svg 200 ''; hdr '^Content-Type: image/svg+xml'
get /static/app.js 200 ''; hdr '^Content-Type: text/javascript'
get /static/index.html 200 ''; hdr '^Content-Type: text/html'
get /static/missing.txt 404 ''
get /static/%2e%2e/out 400 ''
get /static/app%2Ejs 200 "$(cat "$tmp/www/app.js")"
get '/static/%+1' 400 '' --path-as-is # not hex: once decoded as byte 1
get /static/app.js%4 400 ''
get /static/app.js 206 '// Sh' -r 0-4; hdr '^Content-Range: bytes 0-4/'
get /static/app.js 206 '' -r -10; hdr '^Content-Length: 10'
get /static/app.js 416 '' -r 99999-
# A multi-MiB file byte-exact: whole (5 MiB: read off the loop's thread, past
# the 4 MiB default of --async-file-min, once out of the page cache), by Range
# (3 MB: sendfile), and HEAD then GETs on one connection (a body after HEAD
# would garble what follows).
uncache() { python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fdatasync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"; }
head -c 5242880 /dev/urandom >"$tmp/www/big.bin"
uncache "$tmp/www/big.bin"
get /static/big.bin 200 ''; cmp -s "$tmp/b" "$tmp/www/big.bin" || fail "big.bin differs"
get /static/big.bin 206 '' -r 1000000-3999999; hdr '^Content-Range: bytes 1000000-3999999/5242880'
[[ $(stat -c %s "$tmp/b") == 3000000 ]] && cmp -s -i 1000000:0 -n 3000000 "$tmp/www/big.bin" "$tmp/b" \
    || fail "big.bin range"
python3 - "$port" "$tmp/www/big.bin" <<'PY' || fail "HEAD, Range and GET of big.bin on one connection"
import http.client, os, sys
want = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[2], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("HEAD", "/static/big.bin"); r = c.getresponse()
assert r.status == 200 and r.getheader("Content-Length") == str(len(want)) and r.read() == b""
c.request("GET", "/static/big.bin", headers={"Range": "bytes=-1000"}); r = c.getresponse()
assert r.status == 206 and r.read() == want[-1000:]
c.request("GET", "/static/big.bin"); r = c.getresponse()
assert r.status == 200 and r.read() == want
PY
# (a procs worker reports only its own loops; tmpfs keeps its pages cached)
if [[ $model != procs* && $(stat -f -c %T "$tmp") != tmpfs ]]; then
    get /metrics 200 ''
    reads=$(awk '/^vx_loop_file_reads_total/ {s += $2} END {print s + 0}' "$tmp/b")
    (( reads >= 40 )) || fail "the 5 MiB bodies were not read off the loop ($reads file reads)"
fi
lm=$(curl -sSI "$U/static/app.js" | sed -n 's/^Last-Modified: \(.*\)\r$/\1/Ip')
get /static/app.js 304 '' -H "If-Modified-Since: $lm"
sleep 1.1; echo "// changed" >>"$tmp/www/app.js"
get /static/app.js 200 '' -H "If-Modified-Since: $lm"
grep -q changed "$tmp/b" || fail "change on disk not visible"
get /nope 404 ''
get /plaintext 405 '' -X POST; hdr '^Allow: GET, HEAD'
curl -sS -I "$U/plaintext" >"$tmp/h"; hdr '^Content-Length: 13'
get /upload 200 '' -X POST --data-binary @/dev/null
get '/baseline11?a=1&b=1' 413 '' -X POST --data-binary @"$top/data/dataset.json"
get /metrics 200 ''; grep -q '^vx_http_requests_total{code="200"}' "$tmp/b" || fail "metrics"
python3 - "$tmp/b" <<'PY' || fail "metrics: not the Prometheus text format"
# Each family once: HELP/TYPE before its samples, and its samples together.
import re, sys
text = open(sys.argv[1]).read()
assert text.endswith("\n")
types, cur = {}, None
for l in text.split("\n")[:-1]:
    if l.startswith("# HELP "):
        continue
    if l.startswith("# TYPE "):
        name, t = l.split(" ")[2:4]
        assert name not in types and t in ("counter", "gauge"), l
        types[name], cur = t, name
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})? (\S+)$', l)
    assert m and m.group(1) == cur, "sample outside its family: " + l
    float(m.group(4))
PY

python3 - "$port" <<'PY' || fail "python keep-alive"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
for i in range(50):
    c.request("GET", "/plaintext"); r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!"
    c.request("POST", "/baseline11?a=1&b=%d" % i, body=b"5"); r = c.getresponse()
    assert r.read() == str(6 + i).encode()
c.close()
PY

ab -q -n 2000 -c 20 -k "$U/plaintext" >"$tmp/ab" 2>&1 || fail "ab: $(tail -5 "$tmp/ab")"
grep -q '^Failed requests: *0' "$tmp/ab" && grep -q '^Complete requests: *2000' "$tmp/ab" \
    && ! grep -q '^Non-2xx' "$tmp/ab" || fail "ab: $(cat "$tmp/ab")"
wrk -t1 -c32 -d2 "$U/plaintext" >"$tmp/wrk" 2>&1 || fail "wrk"
! grep -qE 'Socket errors|Non-2xx' "$tmp/wrk" || fail "wrk: $(cat "$tmp/wrk")"

kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
kill -0 "$pid" 2>/dev/null && fail "still running 5 s after SIGTERM"
wait "$pid"; rc=$?; pid=
[[ $rc -eq 0 ]] || fail "exit $rc after SIGTERM"
# Bad numbers in options: exit 2 with the reason ("--port abc" was port 0).
for a in '--port abc' '--port 70000' '--max-body -1' '--idle-timeout 5x'; do
    read -ra av <<<"$a"
    "$VX_BIN/vx-http" "${av[@]}" >/dev/null 2>"$tmp/err" &
    pid=$!
    wait "$pid"; rc=$?; pid=
    [[ $rc -eq 2 ]] && grep -q "bad ${av[0]} '${av[1]}'" "$tmp/err" || fail "'$a': exit $rc, $(cat "$tmp/err")"
done

# Malformed datasets: refused at start, with the byte and the reason (every
# item is copied verbatim into responses, so a loose value would break them).
while IFS='|' read -r doc want; do
    printf '%s' "$doc" >"$tmp/bad.json"
    "$VX_BIN/vx-http" --port 0 --dataset "$tmp/bad.json" >/dev/null 2>"$tmp/err" &
    pid=$!
    wait "$pid"; rc=$?; pid=
    [[ $rc -eq 1 ]] && grep -q "dataset .*: byte .*$want" "$tmp/err" \
        || fail "dataset '$doc': exit $rc, $(cat "$tmp/err")"
done <<'BAD'
[{"id":1-2,"price":1,"quantity":1}]|',' or '}' expected
[{"n":"a\x","price":1,"quantity":1}]|bad escape
[1,2]|not an object
[{"price":"1","quantity":1}]|numeric "price"
{"price":1}|not an array
[{"price":1,"quantity":1}] x|bytes after
BAD

# A --root that is not a directory: refused at start, with the reason
# (before, every /static/ request was a silent 404).
for r in "$tmp/no-such-dir" "$top/data/dataset.json"; do
    "$VX_BIN/vx-http" --port 0 --root "$r" >/dev/null 2>"$tmp/err" &
    pid=$!
    wait "$pid"; rc=$?; pid=
    [[ $rc -eq 1 ]] && grep -q -- "--root $r: " "$tmp/err" || fail "--root $r: exit $rc, $(cat "$tmp/err")"
done

# A dataset whose totals are huge, past a double (inf), and integers (as
# HttpArena's dataset has them): /json/{count} must stay valid JSON (inf as
# null), each total the shortest number that reads back.
cat >"$tmp/huge.json" <<'JSON'
[{"id":1,"name":"a","category":"c","price":1e300,"quantity":1,"active":true,"tags":[],"rating":{"score":1,"count":1}},
 {"id":2,"name":"b","category":"c","price":1e300,"quantity":1e300,"active":true,"tags":[],"rating":{"score":1,"count":1}},
 {"id":3,"name":"c","category":"c","price":25,"quantity":3,"active":true,"tags":[],"rating":{"score":1,"count":1}}]
JSON
"$VX_BIN/vx-http" --port 0 --backend "$backend" --model "$model" --dataset "$tmp/huge.json" \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 100); do grep -q '^listening' "$tmp/out" && break; sleep 0.05; done
port=$(sed -n 's/^listening [^:]*:\([0-9]*\) .*/\1/p' "$tmp/out")
U=http://127.0.0.1:$port
get '/json/3?m=1' 200 ''
python3 -c "
import json
d = json.load(open('$tmp/b'))
assert d['items'][0]['total'] == 1e300 and d['items'][1]['total'] is None, d
" || fail "/json/3 with huge totals: $(head -c 300 "$tmp/b")"
grep -q '"total":1e+300}.*"total":null}.*"total":75}' "$tmp/b" || fail "/json/3 totals: $(cat "$tmp/b")"
kill -TERM "$pid"; wait "$pid"; pid=
echo "ok vx-http backend=$backend model=$model"
