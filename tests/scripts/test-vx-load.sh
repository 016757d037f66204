#!/usr/bin/env bash
# test-vx-load.sh: the load generator's own contract, once per backend
# (VX_BACKEND drives vx-load's loops; the server is vx-http on epoll).
# Bad options exit 2 with a message; a server that is not there ends the run
# (exit 1) instead of retrying forever; --requests N is exactly N answered
# requests, each checked (--expect), exit 0; the summary line adds up;
# --rate R sends at most R requests per second.
# Env: VX_BIN (directory with vx-http and vx-load). Exit 77 if the backend
# is unavailable.
set -uo pipefail
: "${VX_BIN:?VX_BIN must name the directory holding vx-load}"
backend=${VX_BACKEND:-epoll}
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && { kill -9 "$pid"; wait "$pid"; } 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
load() { timeout 60 "$VX_BIN/vx-load" --backend "$backend" "$@"; }

# A closed port: the kernel refuses at once (port 1 needs root to listen).
load --port 1 --duration 0 --requests 1 --timeout 300 >"$tmp/out" 2>"$tmp/err"
rc=$?
grep -qi unavailable "$tmp/err" && { echo "SKIP: backend $backend unavailable"; exit 77; }
[[ $rc -eq 1 ]] || fail "unreachable server: exit $rc (124 is the hang guard)"
grep -q 'no connection for 300 ms' "$tmp/err" || fail "unreachable server: $(tail -3 "$tmp/err")"
grep -q ' ok=0 ' "$tmp/out" || fail "unreachable server: $(cat "$tmp/out")"

while IFS='|' read -r args want; do
    read -ra a <<<"$args"
    load "${a[@]}" >/dev/null 2>"$tmp/err"
    rc=$?
    [[ $rc -eq 2 ]] && grep -q -- "$want" "$tmp/err" || fail "'$args': exit $rc, $(cat "$tmp/err")"
done <<'BAD'
--host nosuchhost|bad --host 'nosuchhost'
--conns 0|bad --conns
--pipeline 0|bad --pipeline
--duration 0|--duration 0 needs --requests
--mix bogus=1|bad --mix element
--header nocolon|--header 'Name: value'
--rate -1|bad --rate
--rate 1 --threads 2 --conns 2|--rate below one request per second per thread
BAD

"$VX_BIN/vx-http" --port 0 --backend epoll >"$tmp/srv" 2>"$tmp/srv.err" &
pid=$!
for _ in $(seq 100); do grep -q '^listening' "$tmp/srv" && break; sleep 0.05; done
port=$(sed -n 's/^listening [^:]*:\([0-9]*\) .*/\1/p' "$tmp/srv")
[[ -n $port ]] || fail "vx-http did not start: $(cat "$tmp/srv.err")"

load --port "$port" --conns 8 --pipeline 4 --duration 0 --requests 1000 \
    --expect 'Hello, World!' >"$tmp/out" 2>"$tmp/err" || fail "1000 requests: $(cat "$tmp/err")"
grep -q ' requests=1000 ok=1000 failed=0 errors=0 ' "$tmp/out" || fail "1000 requests: $(cat "$tmp/out")"

# A wrong --expect is a failed request, and the run says so in its exit.
load --port "$port" --conns 2 --duration 0 --requests 10 --expect 'nope' >"$tmp/out" 2>"$tmp/err"
rc=$?
[[ $rc -eq 1 ]] && grep -q ' failed=10 ' "$tmp/out" || fail "--expect mismatch: exit $rc, $(cat "$tmp/out")"
# --rate: an open loop that never runs ahead of its rate (the tokens due are
# rate x elapsed), where a closed loop would send thousands in that second.
load --port "$port" --conns 8 --threads 2 --rate 400 --duration 1 \
    --expect 'Hello, World!' >"$tmp/out" 2>"$tmp/err" || fail "--rate 400: $(cat "$tmp/err")"
awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { exit !(v["rate"] == 400 && v["ok"] == v["requests"] && v["failed"] == 0 &&
                 v["requests"] >= 100 && v["requests"] <= 400 * v["secs"] + 4) }' "$tmp/out" ||
    fail "--rate 400 for 1 s: $(cat "$tmp/out")"
echo "ok vx-load backend=$backend"
