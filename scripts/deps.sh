#!/usr/bin/env bash
# Make sure the Debian packages the build, tests, fuzzing and benchmarks need are
# installed. Runs before every `make`, so the common case (nothing missing) is
# one dpkg-query call and no output. Set VX_SKIP_DEPS=1 to bypass.
set -euo pipefail

[ "${VX_SKIP_DEPS:-0}" = 1 ] && exit 0

pkgs=(cmake pkg-config liburing-dev zlib1g-dev clang clang-format python3 curl wrk
      netcat-openbsd valgrind strace binutils libhttp-parser-dev apache2-utils)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps.sh: not a Debian system; make sure these are installed: build-essential ${pkgs[*]}" >&2
    exit 0
fi

installed=$(dpkg-query -W -f='${Package} ${Status}\n' build-essential gcc make "${pkgs[@]}" \
    2>/dev/null | awk '/ install ok installed$/ { sub(/:.*/, "", $1); print $1 }' || true)
have() { grep -qx "$1" <<<"$installed"; }

missing=()
# A compiler and make are enough; build-essential is just the usual way to get them.
if ! have build-essential && ! { have gcc && have make; }; then
    missing+=(build-essential)
fi
for p in "${pkgs[@]}"; do
    have "$p" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

install=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages: ${missing[*]}" >&2
    echo "run: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive ${install[*]}" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
# Wait for a concurrent apt/dpkg instead of failing on its lock.
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y --no-install-recommends \
    "${missing[@]}"
