#!/usr/bin/env bash
# install-deps.sh: install what building and testing tundevfs needs on a
# fresh Debian machine (as root), and nothing that is already there.
set -eu -o pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have fusermount3 || need+=(fuse3)
have socat || need+=(socat)
have ip || need+=(iproute2)
have nsenter || need+=(util-linux)
have ping || need+=(iputils-ping)
have patch || need+=(patch)
have gcc || need+=(gcc)
have xxd || need+=(xxd)
# The package check (scripts/deb-check.sh, run by make test).
have lintian || need+=(lintian)
have man || need+=(man-db)
have systemd-analyze || need+=(systemd)
have setpriv || need+=(util-linux)
have flock || need+=(util-linux)
# The container tests (containers/runc_linux_test.go): runc, and a static
# busybox to build the rootfs from.
have runc || need+=(runc)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
have podman || need+=(podman) # the README's podman recipes (containers/podman_linux_test.go)
# The fast-path tests and bench rows: wg configures wireguard-go, iperf3
# measures TCP through a relay.
have wg || need+=(wireguard-tools)
have iperf3 || need+=(iperf3)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing packages: ${need[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# staticcheck, pinned, through the Go module proxy.
gobin=$(go env GOPATH)/bin
if ! [ -x "$gobin/staticcheck" ] || ! "$gobin/staticcheck" -version 2>/dev/null | grep -q '0.8.2\|2026'; then
	echo "install-deps: installing staticcheck"
	GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi

# The tun and fuse modules: present as device nodes, or loadable.
for dev in /dev/net/tun /dev/fuse; do
	if ! [ -e "$dev" ]; then
		modprobe "$(basename "$dev")" 2>/dev/null || true
	fi
	[ -e "$dev" ] || { echo "install-deps: $dev is missing (load the module)" >&2; exit 1; }
done
