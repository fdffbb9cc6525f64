#!/usr/bin/env bash
# demo.sh BIN: the main job. Mounts a tundevfs device directory, shows
# `ls DIR/tun` cloning real interfaces, and cleans up. It runs in a network
# namespace of its own so that it never touches the machine's interfaces;
# inside it, the commands are exactly what a user types.
set -eu -o pipefail
bin=$(realpath "${1:-bin/tundevfs}")
[ "$(id -u)" = 0 ] || { echo "demo: run as root (cloning needs CAP_NET_ADMIN and a FUSE mount)" >&2; exit 1; }

ns=tundevfs-demo-$$
work=$(mktemp -d /tmp/tundevfs-demo.XXXXXX)
dir=$work/dev
sock=$work/tundevfs.sock
mkdir -p "$dir"
ip netns add "$ns"
cleanup() {
	nsenter --net=/run/netns/"$ns" "$bin" --socket "$sock" umount "$dir" 2>/dev/null || true
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
	# The auto-started daemon's log, in its state directory (daemon.StateDir:
	# the first 16 hex digits of the SHA-256 of the socket's path).
	rm -rf "/run/tundevfs/state/$(printf %s "$sock" | sha256sum | cut -c1-16)"
}
trap cleanup EXIT

inside() { nsenter --net=/run/netns/"$ns" "$@"; }
show() { printf '\n$ %s\n' "$*"; inside "$@"; }

echo "== tundevfs demo (network namespace $ns)"
show "$bin" --socket "$sock" mount "$dir"
show ls "$dir"
show ls "$dir"/tun
show ip link show tun0
show ls "$dir"/tun
show ls -l "$dir"
show "$bin" --socket "$sock" ifconfig tun create
show "$bin" --socket "$sock" status
show "$bin" --socket "$sock" umount "$dir"
printf '\n$ ip link   # after umount: every cloned interface is gone\n'
inside ip -br link
