#!/usr/bin/env bash
# Build a libFuzzer target with clang (in build-fuzz) and fuzz it.
#   tests/fuzz/run.sh [TARGET]          TARGET defaults to http-parse
#   FUZZ_SECONDS=20   how long (default 20)
#   FUZZ_BUILD=DIR    build directory (default build-fuzz)
#   FUZZ_ARGS=...     extra libFuzzer flags (e.g. -jobs=2 -workers=2)
# New inputs go to DIR/fuzz/TARGET/corpus (the checked-in seeds in
# tests/fuzz/corpus/TARGET are read, never written); crashes to
# DIR/fuzz/TARGET/artifacts. Fix a crash, then copy its input into
# tests/fuzz/corpus/TARGET/ so that fuzz.TARGET.replay guards it in every build.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${1:-http-parse}
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-20}

if [ ! -f "$build/CMakeCache.txt" ]; then
    CC=clang cmake -S "$root" -B "$build" -DVX_FUZZ=ON -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" --target "fuzz-$target" -j2
work=$build/fuzz/$target
mkdir -p "$work/corpus" "$work/artifacts"
dict=()
[ -f "$root/tests/fuzz/http.dict" ] && dict=(-dict="$root/tests/fuzz/http.dict")
set +e
"$build/bin/fuzz-$target" -max_total_time="$seconds" "${dict[@]}" \
    -artifact_prefix="$work/artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} \
    "$work/corpus" "$root/tests/fuzz/corpus/$target"
rc=$?
set -e
echo "fuzz-$target: exit $rc; corpus $(ls "$work/corpus" | wc -l) new inputs in $work/corpus;" \
     "artifacts: $(ls "$work/artifacts" | wc -l) in $work/artifacts"
exit $rc
