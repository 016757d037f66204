#!/usr/bin/env bash
# bench/coldfile.sh: while clients download a file that is not in the page
# cache, what do the other requests on the same loop wait?
#
# sendfile(2) reads the page cache on the loop's thread, so a miss stalls the
# whole loop on the disk; from --async-file-min on, vx-http reads the file off
# the loop's thread (O_DIRECT, io_uring READ or a pool thread) and copies it
# out. Per round, backend and mode (sendfile: --async-file-min off; async: the
# default 4 MiB), interleaved: vx-http on CPU 0; the file evicted from the page
# cache (drop_caches as root, else posix_fadvise DONTNEED); DLS curl downloads
# of it at --limit-rate each, and vx-load asking /plaintext at RATE per second
# over 8 connections, both on CPU 1, for SECS seconds. Reported: /plaintext
# latency (p50, p99, max), the download rate, and the server CPU per MiB sent.
#
#   ROUNDS=3 BACKENDS="epoll uring" SIZE_MB=1024 DLS=2 LIMIT=200M RATE=2000 \
#   SECS=4 DIR=/var/tmp/vx-cold bash bench/coldfile.sh
# DIR must be on a disk file system (not tmpfs): the file is SIZE_MB there.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${VX_BIN:-$here/../build/bin}
ROUNDS=${ROUNDS:-3} BACKENDS=${BACKENDS:-"epoll uring"} SIZE_MB=${SIZE_MB:-1024}
DLS=${DLS:-2} LIMIT=${LIMIT:-200M} RATE=${RATE:-2000} SECS=${SECS:-4}
DIR=${DIR:-/var/tmp/vx-cold}
for tool in curl taskset python3; do
    command -v $tool >/dev/null || { echo "coldfile.sh: needs $tool" >&2; exit 1; }
done
mkdir -p "$DIR"
file=$DIR/big.bin
if [[ ! -f $file || $(stat -c %s "$file") != $((SIZE_MB << 20)) ]]; then
    echo "# writing $SIZE_MB MiB to $file" >&2
    head -c $((SIZE_MB << 20)) /dev/urandom >"$file"
    sync
fi

evict() {
    sync
    if [[ -w /proc/sys/vm/drop_caches ]]; then
        echo 1 >/proc/sys/vm/drop_caches
    else
        python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$file"
    fi
}

cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }

# one_run BACKEND MODE: one line "backend mode p50 p99 max MB/s cpu_ms_per_MiB"
one_run() {
    local be=$1 mode=$2 port=$((21000 + RANDOM % 2000)) flag=()
    [[ $mode == sendfile ]] && flag=(--async-file-min off)
    taskset -c 0 "$bin/vx-http" --backend "$be" --port $port --root "$DIR" "${flag[@]}" \
        >"$DIR/out" 2>"$DIR/err" &
    local pid=$!
    for _ in $(seq 100); do grep -q '^listening' "$DIR/out" && break; sleep 0.05; done
    evict
    local t0 c dls=()
    t0=$(cpu_ns $pid)
    for c in $(seq "$DLS"); do
        taskset -c 1 curl -s -o /dev/null --limit-rate "$LIMIT" --max-time "$SECS" \
            -w '%{size_download}\n' "http://127.0.0.1:$port/static/big.bin" >"$DIR/dl.$c" &
        dls+=($!)
    done
    local load
    load=$(taskset -c 1 "$bin/vx-load" --port $port --rate "$RATE" --conns 8 --duration "$SECS" \
        --expect 'Hello, World!')
    for c in "${dls[@]}"; do wait "$c" || true; done # curl exits 28 at --max-time
    local t1 bytes
    t1=$(cpu_ns $pid)
    bytes=$({ cat "$DIR"/dl.* 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
    kill $pid
    wait $pid 2>/dev/null || true
    rm -f "$DIR"/dl.*
    echo "$load" | tr ' ' '\n' | awk -F= -v be="$be" -v mode="$mode" -v bytes="$bytes" \
        -v secs="$SECS" -v cpu=$((t1 - t0)) '
        {v[$1] = $2}
        END {
            mib = bytes / 1048576
            printf "%s %s %s %s %s %.0f %.2f %s\n", be, mode, v["p50_us"], v["p99_us"],
                v["max_us"], bytes / 1e6 / secs, (mib > 0 ? cpu / 1e6 / mib : 0), v["failed"]
        }'
}

echo "# backend mode p50_us p99_us max_us MB/s cpu_ms/MiB failed  (rounds=$ROUNDS dls=$DLS limit=$LIMIT rate=$RATE secs=$SECS)"
raw=$(mktemp)
for r in $(seq "$ROUNDS"); do
    for be in $BACKENDS; do
        for mode in sendfile async; do
            one_run "$be" "$mode" | tee -a "$raw"
        done
    done
done
echo "# medians"
sort -k1,2 "$raw" | awk '
    function med(a, n) { return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    function flush(   i, j, t, c) {
        if (!key) return
        printf "%s", key
        for (c = 3; c <= 8; c++) {
            for (i = 1; i <= n; i++) col[i] = val[i, c]
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (col[j] < col[i]) { t = col[i]; col[i] = col[j]; col[j] = t }
            printf " %s", med(col, n)
        }
        printf "\n"
    }
    { k = $1 " " $2; if (k != key) { flush(); key = k; n = 0 } n++; for (c = 3; c <= 8; c++) val[n, c] = $c + 0 }
    END { flush() }'
rm -f "$raw"
