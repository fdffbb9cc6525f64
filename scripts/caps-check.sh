#!/usr/bin/env bash
# caps-check.sh BIN UNIT [DEFAULTS]: run the daemon BIN with the capability
# bounding set and NoNewPrivileges of the systemd unit UNIT (as systemd
# would start it, without systemd: setpriv), with the TUNDEVFS_ARGS of the
# environment file DEFAULTS (/etc/default/tundevfs; its paths under
# /run/tundevfs moved into a directory of the check's own), and check that
# it does its job: mounts (also under a directory only its owner may
# enter), clones tun and tap, creates vnet jails, adopts the network
# namespace of another user's process, runs jexec, gives device nodes to a
# user, serves the shared per-netns mount (--netns-dev) to that user in its
# namespace as a container's process would, and shuts down clean.
# Everything happens in network namespaces and a directory of its own.
set -eu -o pipefail
bin=$(realpath "$1")
unit=$2
defaults=${3:-}
[ "$(id -u)" = 0 ] || { echo "caps-check: run as root" >&2; exit 1; }

caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
[ -n "$caps" ] || { echo "caps-check: no CapabilityBoundingSet= in $unit" >&2; exit 1; }
bounding=-all
for c in $caps; do
	c=${c#CAP_}
	bounding+=,+${c,,}
done
nnp=()
grep -q '^NoNewPrivileges=yes' "$unit" && nnp=(--no-new-privs)

work=$(mktemp -d /tmp/tundevfs-caps.XXXXXX)
chmod 711 "$work"
sock=$work/tundevfs.sock
ns=tundevfs-caps-$$
daemon=
sleeper=
cleanup() {
	set +e
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
	if [ -n "$daemon" ] && kill -0 "$daemon" 2>/dev/null; then
		kill -TERM "$daemon"
		for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$daemon" 2>/dev/null
	fi
	awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m"
	done
	ip netns del "$ns" 2>/dev/null
	ip netns del "$ns-peer" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "caps-check: FAIL: $*" >&2; [ -f "$work/log" ] && sed 's/^/  daemon: /' "$work/log" >&2; exit 1; }
cli() { nsenter --net=/run/netns/"$ns" "$bin" --socket "$sock" "$@"; }

# The service's arguments, with /run/tundevfs/ moved to $work/run/; the
# per-netns mount always (the service's default).
args=()
if [ -n "$defaults" ]; then
	# shellcheck disable=SC1090
	read -ra args <<<"$(set +u; . "$defaults"; echo "${TUNDEVFS_ARGS:-}")"
fi
args=("${args[@]/#\/run\/tundevfs\//$work/run/}")
[[ " ${args[*]} " == *" --netns-dev "* ]] || args+=(--netns-dev "$work/run/netns-dev")
netnsdev=
for i in "${!args[@]}"; do [ "${args[$i]}" = --netns-dev ] && netnsdev=${args[$((i + 1))]}; done
mkdir -p "$work/run"

ip netns add "$ns"
ip netns add "$ns-peer"
echo "caps-check: daemon with bounding set: $caps${nnp:+, no new privileges}; arguments: ${args[*]}"
setpriv --bounding-set "$bounding" --inh-caps=-all "${nnp[@]}" \
	nsenter --net=/run/netns/"$ns" "$bin" --socket "$sock" daemon "${args[@]}" >"$work/log" 2>&1 &
daemon=$!
for _ in $(seq 100); do cli status >/dev/null 2>&1 && break; sleep 0.1; done
cli status >/dev/null || fail "daemon does not answer"
grep -q "^CapBnd:.*" /proc/"$daemon"/status
echo "caps-check: daemon $(grep CapBnd /proc/"$daemon"/status | tr -s '\t' ' ')"

# A mount point inside a directory only nobody may enter.
mkdir -p "$work/home/private/dev"
chown -R nobody "$work/home"
chmod 700 "$work/home/private"
cli mount "$work/home/private/dev" || fail "mount under a 0700 directory of another user"
[ "$(basename "$(ls "$work/home/private/dev/tun")")" = tun ] || fail "ls tun"
ls "$work/home/private/dev/tap" >/dev/null || fail "ls tap"
cli ifconfig tun create >/dev/null || fail "ifconfig tun create"
nsenter --net=/run/netns/"$ns" ip link show tun0 >/dev/null || fail "tun0 missing"
nsenter --net=/run/netns/"$ns" ip link show tap0 >/dev/null || fail "tap0 missing"

cli jail -c name=v vnet path="$work/v" >/dev/null || fail "vnet jail"
ls "$work/v/tun" >/dev/null || fail "clone in the vnet jail"
[ "$(cli jexec v ls /dev | grep -c '^tun0$')" = 1 ] || fail "jexec"

# The namespace of a process of another user (a container's, say).
nsenter --net=/run/netns/"$ns-peer" setpriv --reuid 65534 --regid 65534 --clear-groups sleep 60 &
sleeper=$!
for _ in $(seq 50); do [ "$(stat -c %u /proc/"$sleeper")" = 65534 ] && break; sleep 0.1; done
cli jail -c name=adopted vnet=/proc/"$sleeper"/ns/net path="$work/a" clone_uid=65534 dev_uid=65534 >/dev/null ||
	fail "adopt the network namespace of a uid 65534 process"
setpriv --reuid 65534 --regid 65534 --clear-groups ls "$work/a/tun" >/dev/null || fail "clone as uid 65534"
[ "$(stat -c %u "$work/a/tun0")" = 65534 ] || fail "tun0 of the adopted jail is not uid 65534's"
nsenter --net=/run/netns/"$ns-peer" ip link show tun0 >/dev/null || fail "tun0 not in the adopted namespace"

# The shared per-netns mount, as a container's process uses it: uid 65534
# in the adopted namespace clones there, and sees that jail's devices; the
# daemon's own namespace sees the host jail's; a namespace without a jail
# (this script's) sees none.
awk -v d="$netnsdev" '$5 == d && / - fuse\.tundevfs /' /proc/self/mountinfo | grep -q . || fail "no per-netns mount at $netnsdev"
peer() { nsenter --net=/run/netns/"$ns-peer" setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; }
peer ls "$netnsdev/tun" >/dev/null || fail "clone through the per-netns mount as uid 65534 in the adopted namespace"
nsenter --net=/run/netns/"$ns-peer" ip link show tun1 >/dev/null || fail "the per-netns clone is not tun1 of the adopted namespace"
[ "$(stat -c %u "$work/a/tun1")" = 65534 ] || fail "tun1 cloned through the per-netns mount is not uid 65534's"
[ "$(peer ls "$netnsdev" | grep -c '^tun[01]$')" = 2 ] || fail "the per-netns mount does not show the adopted jail's tun0 and tun1"
nsenter --net=/run/netns/"$ns" ls "$netnsdev" | grep -qx tap0 || fail "the per-netns mount does not show the host jail's tap0 to its namespace"
[ -z "$(ls "$netnsdev")" ] || fail "a namespace without a jail sees devices in the per-netns mount: $(ls "$netnsdev" | tr '\n' ' ')"
echo "caps-check: per-netns mount $netnsdev serves the adopted namespace"

kill -TERM "$daemon"
wait "$daemon" || fail "daemon exit status $?"
daemon=
left=$(awk -v w="$work/" 'index($5, w) == 1' /proc/self/mountinfo)
[ -z "$left" ] || fail "mounts left after shutdown: $left"
[ "$(nsenter --net=/run/netns/"$ns-peer" ip -o link | grep -c tun)" = 0 ] || fail "interface left in the adopted namespace"
echo "caps-check: ok"
