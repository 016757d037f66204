#!/usr/bin/env bash
# Build the libFuzzer targets with clang (in build-fuzz) and fuzz them, one
# after the other (each uses one core).
#   tests/fuzz/run.sh [TARGET...]   no TARGET: every tests/fuzz/fuzz-*.c
#   FUZZ_SECONDS=20        seconds per target (default 20)
#   FUZZ_TOTAL_SECONDS=N   instead: N seconds shared by the targets run
#   FUZZ_BUILD=DIR         build directory (default build-fuzz)
#   FUZZ_ARGS=...          extra libFuzzer flags (e.g. -jobs=2 -workers=2)
# New inputs go to DIR/fuzz/TARGET/corpus (the checked-in seeds in
# tests/fuzz/corpus/TARGET are read, never written), crashes to
# DIR/fuzz/TARGET/artifacts, libFuzzer's output to DIR/fuzz/TARGET/log.
# One line per target, e.g. "fuzz-chunked: 812345 runs, corpus 57 (12 new
# files), 20 s, ok"; the exit status is non-zero if any target found a
# crash, a leak, an invariant failure or a slow input. Fix a crash, then
# copy its input into tests/fuzz/corpus/TARGET/ so that fuzz.TARGET.replay
# guards it in every build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/tests/fuzz/fuzz-*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz-}")
    done
fi
seconds=${FUZZ_SECONDS:-20}
if [ -n "${FUZZ_TOTAL_SECONDS:-}" ]; then
    seconds=$((FUZZ_TOTAL_SECONDS / ${#targets[@]}))
    [ "$seconds" -ge 1 ] || seconds=1
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang cmake -S "$root" -B "$build" -DVX_FUZZ=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
# Targets CMake did not define (fuzz-http-diff without libhttp-parser-dev)
# are reported as skipped, not built.
known=$(cmake --build "$build" --target help | sed -n 's/^\.\.\. //p')
build_list=() run_list=()
for t in "${targets[@]}"; do
    if grep -qx "fuzz-$t" <<<"$known"; then
        build_list+=("fuzz-$t")
        run_list+=("$t")
    else
        echo "fuzz-$t: skipped (no such target in $build; scripts/deps.sh installs what it needs)"
    fi
done
[ ${#build_list[@]} -eq 0 ] && exit 1
cmake --build "$build" --target "${build_list[@]}" -j2 >/dev/null

dict=()
[ -f "$root/tests/fuzz/http.dict" ] && dict=(-dict="$root/tests/fuzz/http.dict")
rc=0
for t in "${run_list[@]}"; do
    work=$build/fuzz/$t
    mkdir -p "$work/corpus" "$work/artifacts"
    start=$(date +%s)
    set +e
    # -timeout: an input that takes this long is a hang, i.e. a failure.
    "$build/bin/fuzz-$t" -max_total_time="$seconds" -timeout=10 "${dict[@]}" \
        -artifact_prefix="$work/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
        "$work/corpus" "$root/tests/fuzz/corpus/$t" >"$work/log" 2>&1
    st=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    corp=$(grep -o 'corp: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
    verdict=ok
    if [ $st -ne 0 ]; then
        verdict="FAILED (exit $st; log $work/log, input in $work/artifacts)"
        rc=1
        grep -E "^fuzz-|ERROR:|SUMMARY:|^    #[0-9] " "$work/log" | head -20 >&2 || true
    fi
    echo "fuzz-$t: ${runs:-0} runs, corpus ${corp:-0} ($(ls "$work/corpus" | wc -l) new files)," \
         "$(($(date +%s) - start)) s, $verdict"
done
exit $rc
