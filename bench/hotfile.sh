#!/usr/bin/env bash
# bench/hotfile.sh: what a large file that is already in the page cache costs
# the server per MiB, sent with sendfile or read off the loop's thread.
#
# From --async-file-min on, vx-http reads a body off the loop's thread
# (O_DIRECT, then a copy into the output queue) unless cachestat(2) finds all
# of it cached; it asks only up to 64 MiB. So a cached SIZE_MB file goes by
# sendfile, and a cached file of SIZE_MB + 1 MiB, past what is asked, by the
# async path: the two paths on the same hot data, one build. Per round,
# backend and file, interleaved: vx-http on CPU 0, N curl downloads one after
# the other on CPU 1; reported: server CPU per MiB (schedstat of every server
# thread) and the file reads the server counted.
#
#   ROUNDS=4 BACKENDS="epoll uring" SIZE_MB=64 N=10 DIR=/dev/shm/vx-hot bash bench/hotfile.sh
# DIR should be tmpfs: a host that reclaims page cache (kdamond here) evicts
# pages of a disk file between downloads, which sends them the async way.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${VX_BIN:-$here/../build/bin}
ROUNDS=${ROUNDS:-4} BACKENDS=${BACKENDS:-"epoll uring"} SIZE_MB=${SIZE_MB:-64} N=${N:-10}
DIR=${DIR:-/dev/shm/vx-hot}
for tool in curl taskset; do
    command -v $tool >/dev/null || { echo "hotfile.sh: needs $tool" >&2; exit 1; }
done
(( SIZE_MB <= 64 )) || { echo "hotfile.sh: SIZE_MB must be <= 64 (cachestat is asked up to 64 MiB)" >&2; exit 2; }
mkdir -p "$DIR"
for mib in "$SIZE_MB" $((SIZE_MB + 1)); do
    f=$DIR/hot-$mib.bin
    [[ -f $f && $(stat -c %s "$f") == $((mib << 20)) ]] || head -c $((mib << 20)) /dev/urandom >"$f"
done

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }

# one_run BACKEND MIB: one line "backend path mib cpu_ms_per_MiB file_reads"
one_run() {
    local be=$1 mib=$2 port=$((21000 + RANDOM % 2000))
    local url=http://127.0.0.1:$port/static/hot-$mib.bin
    taskset -c 0 "$bin/vx-http" --backend "$be" --port $port --root "$DIR" >"$DIR/out" 2>"$DIR/err" &
    local pid=$!
    for _ in $(seq 100); do grep -q '^listening' "$DIR/out" && break; sleep 0.05; done
    cat "$DIR/hot-$mib.bin" >/dev/null
    curl -s -o /dev/null "$url" # warm-up: the pool threads, the socket buffers
    local t0 t1 i reads
    t0=$(cpu_ns $pid)
    for i in $(seq "$N"); do taskset -c 1 curl -s -o /dev/null "$url"; done
    t1=$(cpu_ns $pid)
    reads=$(curl -s "http://127.0.0.1:$port/metrics" |
        awk '/^vx_loop_file_reads_total/ {s += $2} END {print s + 0}')
    kill $pid
    wait $pid 2>/dev/null || true
    local path=sendfile
    (( mib > 64 )) && path=async
    awk -v be="$be" -v path="$path" -v mib="$mib" -v n="$N" -v cpu=$((t1 - t0)) -v reads="$reads" \
        'BEGIN { printf "%s %s %d %.3f %d\n", be, path, mib, cpu / 1e6 / (n * mib), reads }'
}

echo "# backend path MiB cpu_ms/MiB file_reads  (rounds=$ROUNDS n=$N dir=$DIR)"
raw=$(mktemp)
for r in $(seq "$ROUNDS"); do
    for be in $BACKENDS; do
        for mib in "$SIZE_MB" $((SIZE_MB + 1)); do
            one_run "$be" "$mib" | tee -a "$raw"
        done
    done
done
echo "# medians of cpu_ms/MiB"
sort -k1,2 "$raw" | awk '
    function flush(   i, j, t) {
        if (!key) return
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
            if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        printf "%s %.3f\n", key, n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    { k = $1 " " $2; if (k != key) { flush(); key = k; n = 0 } v[++n] = $4 }
    END { flush() }'
rm -f "$raw"
