# Sourced by the scenarios. The Go test runs each scenario inside a network
# namespace of its own, with TUNDEVFS (the binary), WORK (a scratch
# directory) set; scenarios clean up what they make.
set -eu -o pipefail
: "${TUNDEVFS:?}" "${WORK:?}"
DIR=$WORK/dev
SOCK=$WORK/tundevfs.sock
mkdir -p "$DIR"
t() { "$TUNDEVFS" --socket "$SOCK" "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
# tun_links lists the tun/tap/vmnet interfaces of this namespace.
tun_links() { ip -o link show | awk -F': ' '{print $2}' | grep -E '^(tun|tap|vmnet)[0-9]' || true; }
mounted() { grep -q " $1 .* - fuse.tundevfs " /proc/self/mountinfo; }
# wait_until CMD...: poll for up to 10 s (a hang guard, not a speed test).
wait_until() {
	for _ in $(seq 100); do "$@" && return 0; sleep 0.1; done
	return 1
}
