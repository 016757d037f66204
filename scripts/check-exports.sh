#!/usr/bin/env bash
# Fail if libvortex.so exports any code or data symbol outside the vx_ namespace.
# Usage: check-exports.sh path/to/libvortex.so
set -euo pipefail

lib=${1:?usage: $0 libvortex.so}
syms=$(nm -D --defined-only "$lib")

# Linker-made symbols every shared object carries are not ours to police.
bad=$(printf '%s\n' "$syms" | awk '
    $2 ~ /^[TDBR]$/ && $3 !~ /^vx_/ &&
    $3 !~ /^(_init|_fini|_edata|_end|__bss_start)$/ { print "  " $2 " " $3 }')

if [ -n "$bad" ]; then
    echo "$lib exports symbols without the vx_ prefix (mark them static or drop VX_API):"
    echo "$bad"
    exit 1
fi
n=$(printf '%s\n' "$syms" | awk '$2 ~ /^[TDBR]$/ && $3 ~ /^vx_/' | wc -l)
if [ "$n" -eq 0 ]; then
    echo "$lib exports no vx_ symbols at all: is VX_API missing?"
    exit 1
fi
echo "$lib: $n vx_ symbols exported, nothing else"
