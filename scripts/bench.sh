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
# Both FUSE transports, one after the other in this run, each table with
# its own direct reference measured alongside: FUSE over io_uring (the
# data path only, where the transport matters; skipped, with the reason,
# on a kernel without it), then /dev/fuse (the whole suite). The daemons
# the suite starts take the transport from TUNDEVFS_FUSE_TRANSPORT.
# BENCH_TRANSPORTS="dev" (or "uring") measures one.
param=/sys/module/fuse/parameters/enable_uring
for tr in ${BENCH_TRANSPORTS:-uring dev}; do
	extra=()
	if [ "$tr" = uring ]; then
		if [ ! -e "$param" ]; then
			echo "## FUSE transport io_uring: skipped: this kernel lacks FUSE over io_uring ($param missing)"
			continue
		fi
		case " ${BENCH_FLAGS:-} " in *" -only "*) ;; *) extra=(-only datapath) ;; esac
	fi
	echo "## FUSE transport: $tr (TUNDEVFS_FUSE_TRANSPORT=$tr)"
	# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
	TUNDEVFS_FUSE_TRANSPORT=$tr bin/tundevfs-bench -bin "$bin" "${args[@]}" "${extra[@]}" ${BENCH_FLAGS:-}
done
