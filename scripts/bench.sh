#!/usr/bin/env bash
# bench.sh BIN: the benchmark suite. Builds tundevfs-bench and runs it
# against the tundevfs binary BIN: one table of tundevfs against the direct
# /dev/net/tun path, measured in the same run, in network namespaces of its
# own that it removes. A few minutes; BENCH_QUICK=1 is a smoke run in
# seconds; BENCH_FLAGS adds flags (e.g. "-reps 3 -duration 500ms").
set -eu -o pipefail
bin=$(realpath "${1:-bin/tundevfs}")
[ "$(id -u)" = 0 ] || { echo "bench: run as root (namespaces, interfaces and FUSE mounts)" >&2; exit 1; }
cd "$(dirname "$0")/.."
"${GO:-go}" build -o bin/tundevfs-bench ./bench/cmd/tundevfs-bench
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(-quick)
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
exec bin/tundevfs-bench -bin "$bin" "${args[@]}" ${BENCH_FLAGS:-}
