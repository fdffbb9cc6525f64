#!/usr/bin/env bash
# deb-check.sh DEB: what a user does with the package, on this machine:
# lintian, `apt-get install ./DEB`, the demo scenario through the installed
# /usr/bin/tundevfs, the daemon under the unit's capability bounding set
# with the service's default arguments (the per-netns mount of
# containers), `systemd-analyze verify` of the installed unit, the CDI spec
# and hooks.d file as runtimes load them, the man page, the bash
# completion, the C headers next to Linux's own, then `apt-get remove
# --purge` and a check that no file of the package remains.
#
# It installs into /usr, so: it runs as root only (without root it skips,
# unless TUNDEVFS_REQUIRE_PRIVILEGED=1 makes that a failure), one at a time
# (a lock), never when tundevfs is already installed by someone else, and
# it purges the package on every exit, failure included. It never enables
# or starts the service.
set -eu -o pipefail
deb=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
cdispec=/etc/cdi/tundevfs.dev-tun.json
hooksd=/usr/share/containers/oci/hooks.d/tundevfs.json

if [ "$(id -u)" != 0 ]; then
	if [ "${TUNDEVFS_REQUIRE_PRIVILEGED:-}" = 1 ]; then
		echo "deb-check: FAIL: needs root to install the package (TUNDEVFS_REQUIRE_PRIVILEGED=1 forbids skipping)" >&2
		exit 1
	fi
	echo "deb-check: SKIP: needs root to install the package"
	exit 0
fi
for tool in apt-get dpkg lintian systemd-analyze man gcc setpriv flock go; do
	command -v "$tool" >/dev/null || { echo "deb-check: FAIL: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

exec 9>/run/lock/tundevfs-deb-check.lock
flock -w 600 9 || { echo "deb-check: FAIL: another deb-check holds the lock for 10 minutes" >&2; exit 1; }

if dpkg-query -W -f='${Status}' tundevfs 2>/dev/null | grep -q 'installed\|config-files'; then
	echo "deb-check: FAIL: a tundevfs package is already on this machine; deb-check installs and purges its own and will not touch it" >&2
	exit 1
fi
if [ -e /usr/bin/tundevfs ]; then
	echo "deb-check: FAIL: /usr/bin/tundevfs exists and belongs to no package; refusing to overwrite it" >&2
	exit 1
fi

work=$(mktemp -d /tmp/tundevfs-deb-check.XXXXXX)
installed=
purge() {
	[ -n "$installed" ] || return 0
	installed=
	DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -q -o DPkg::Lock::Timeout=300 tundevfs >"$work/purge.log" 2>&1 ||
		{ cat "$work/purge.log" >&2; return 1; }
}
cleanup() {
	local rc=$?
	purge || rc=1
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n== deb-check: %s\n' "$*"; }
fail() { echo "deb-check: FAIL: $*" >&2; exit 1; }

step "package $(basename "$deb")"
dpkg-deb -I "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'

step "lintian (errors and warnings fail; the overrides in deploy/debian/lintian-overrides say why)"
lrc=0
lintian --pedantic -I --fail-on error,warning "$deb" >"$work/lintian" 2>&1 || lrc=$?
grep -v '^running with root privileges' "$work/lintian" | sed 's/^/  /' || true
[ $lrc = 0 ] || fail "lintian"
echo "  lintian: no error or warning (pedantic and info tags shown above)"

step "apt-get install ./$(basename "$deb")"
installed=1
(cd "$(dirname "$deb")" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "./$(basename "$deb")") >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log" >&2; fail "apt-get install"; }
dpkg-query -L tundevfs >"$work/all"
while read -r f; do [ -d "$f" ] || echo "$f"; done <"$work/all" >"$work/files"
sed 's/^/  /' "$work/files"
want=$(dpkg-deb -f "$deb" Version)
got=$(/usr/bin/tundevfs --version)
[ "$got" = "tundevfs version $want" ] || fail "/usr/bin/tundevfs --version says '$got', the package is $want"
for f in /etc/default/tundevfs "$cdispec"; do
	dpkg-query -W -f='${Conffiles}\n' tundevfs | grep -q "^ $f " || fail "$f is not a conffile"
done
for f in /etc/systemd/system/multi-user.target.wants/tundevfs.service /etc/systemd/system/tundevfs.service; do
	[ ! -e "$f" ] || fail "installing enabled the service ($f)"
done

step "systemd-analyze verify /lib/systemd/system/tundevfs.service"
# verify exits 0 after most complaints (an unknown Type= is "ignoring"), so
# any output is a failure.
systemd-analyze verify /lib/systemd/system/tundevfs.service >"$work/verify" 2>&1 || { cat "$work/verify" >&2; fail "systemd-analyze verify"; }
[ ! -s "$work/verify" ] || { cat "$work/verify" >&2; fail "systemd-analyze verify complained"; }
echo "  no complaint"
systemd-analyze security --offline=true /lib/systemd/system/tundevfs.service 2>/dev/null | tail -1 || true

step "the service serves containers by default"
# What systemd passes: the unit's Environment=, overridden by the file.
args=$(set +u; TUNDEVFS_ARGS=; . /etc/default/tundevfs; echo "$TUNDEVFS_ARGS")
[[ " $args " == *" --netns-dev /run/tundevfs/netns-dev "* ]] || fail "/etc/default/tundevfs: TUNDEVFS_ARGS='$args' lacks --netns-dev /run/tundevfs/netns-dev"
grep -q '^Environment="TUNDEVFS_ARGS=--netns-dev /run/tundevfs/netns-dev"$' /lib/systemd/system/tundevfs.service || fail "the unit's own default lacks --netns-dev"
grep -q '^ExecStart=/usr/bin/tundevfs daemon $TUNDEVFS_ARGS$' /lib/systemd/system/tundevfs.service || fail "the unit's ExecStart does not pass \$TUNDEVFS_ARGS"
echo "  tundevfs daemon $args"

step "CDI spec $cdispec and hooks.d $hooksd, loaded as runtimes load them"
# containers/installed_test.go: cdi.ReadSpec, a CDI cache over /etc/cdi
# injecting tundevfs.dev/tun=default into an OCI spec, and the hooks.d
# file decoded strictly; both must run /usr/bin/tundevfs.
(cd "$here/.." && TUNDEVFS_CDI_SPEC=$cdispec TUNDEVFS_HOOKS_D=$hooksd TUNDEVFS_BINARY=/usr/bin/tundevfs \
	go test -count=1 -v -run '^TestInstalled' ./containers/) >"$work/cdi.log" 2>&1 || { cat "$work/cdi.log" >&2; fail "CDI spec or hooks.d file"; }
for t in TestInstalledCDISpec TestInstalledHooksD; do
	grep -q "^--- PASS: $t " "$work/cdi.log" || { cat "$work/cdi.log" >&2; fail "$t did not pass (skipped?)"; }
	echo "  $t: ok"
done

step "every Go module in /usr/bin/tundevfs is named in the copyright file"
for m in $(go version -m /usr/bin/tundevfs 2>/dev/null | awk '$1 == "dep" {print $2}'); do
	grep -q "^ *\(Files: \)\?$m\$" /usr/share/doc/tundevfs/copyright || fail "$m is not in /usr/share/doc/tundevfs/copyright"
done
echo "  $(go version -m /usr/bin/tundevfs | awk '$1 == "dep"' | wc -l) modules, all named"

step "demo scenario with /usr/bin/tundevfs"
"$here/demo.sh" /usr/bin/tundevfs >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; fail "demo"; }
sed 's/^/  /' "$work/demo.log"
grep -q '^tun0 ' "$work/demo.log" && grep -q '^tun2$' "$work/demo.log" || fail "the demo did not clone tun0..tun2"
# umount answers once the idle daemon has destroyed its devices.
after=$(sed -n '/after umount: every cloned interface is gone/,$p' "$work/demo.log" | tail -n +2)
[ -n "$after" ] || fail "the demo printed nothing after umount"
! grep -q '^tun' <<<"$after" || fail "interfaces left after umount: $after"

step "daemon under the unit's CapabilityBoundingSet and NoNewPrivileges, with /etc/default/tundevfs's arguments"
"$here/caps-check.sh" /usr/bin/tundevfs /lib/systemd/system/tundevfs.service /etc/default/tundevfs || fail "caps-check"

step "man tundevfs-mount"
[ "$(man -w tundevfs-mount)" = /usr/share/man/man8/tundevfs-mount.8.gz ] || fail "man -w tundevfs-mount: $(man -w tundevfs-mount 2>&1)"
MANWIDTH=80 man -P cat tundevfs-mount >"$work/man" 2>"$work/man.err" || { cat "$work/man.err" >&2; fail "man tundevfs-mount"; }
[ ! -s "$work/man.err" ] || { cat "$work/man.err" >&2; fail "man tundevfs-mount warned"; }
head -12 "$work/man" | sed 's/^/  /'
for flag in --foreground --jail --allow-other --socket; do
	grep -q -- "$flag" "$work/man" || fail "man tundevfs-mount does not mention $flag"
done

step "bash completion"
out=$(bash -c 'source /usr/share/bash-completion/completions/tundevfs && complete -p tundevfs')
echo "  $out"
[[ $out == *"-F __start_tundevfs"* ]] || fail "the completion does not register __start_tundevfs"
# What the completion function asks the binary for `tundevfs mo<TAB>`.
/usr/bin/tundevfs __complete mo 2>/dev/null | cut -f1 | grep -qx mount || fail "tundevfs __complete mo does not offer mount"

step "C headers next to Linux's <linux/if_tun.h>"
for order in "net/if_tun.h net/if_tap.h linux/if_tun.h" "linux/if_tun.h sys/ioctl.h net/if_tun.h net/if_tap.h" "net/if_tap.h linux/if.h linux/if_tun.h"; do
	{
		for h in $order; do echo "#include <$h>"; done
		echo '#include <stdio.h>'
		echo 'int main(void) { printf("%lx %lx %lx\n", (unsigned long)TUNSETIFF, (unsigned long)TUNSIFHEAD, (unsigned long)TAPGIFADDR); return 0; }'
	} >"$work/h.c"
	gcc -Wall -Wextra -Werror -H -o "$work/h" "$work/h.c" 2>"$work/h.err" || { cat "$work/h.err" >&2; fail "headers clash: $order"; }
	grep -q '^\.* /usr/include/net/if_tun.h$' "$work/h.err" || fail "gcc did not use /usr/include/net/if_tun.h"
	echo "  $order: ok ($("$work/h"))"
done

step "apt-get remove --purge tundevfs"
purge || fail "apt-get remove --purge"
left=0
while read -r f; do
	if [ -e "$f" ] || [ -L "$f" ]; then echo "  left behind: $f" >&2; left=1; fi
done <"$work/files"
for f in /usr/share/doc/tundevfs /etc/default/tundevfs "$cdispec" "$hooksd" /etc/systemd/system/multi-user.target.wants/tundevfs.service; do
	if [ -e "$f" ]; then echo "  left behind: $f" >&2; left=1; fi
done
dpkg-query -W tundevfs >/dev/null 2>&1 && { echo "  dpkg still knows tundevfs" >&2; left=1; }
[ $left = 0 ] || fail "files of the package remain after purge"
echo "  none of the $(wc -l <"$work/files") files remains"
echo
echo "deb-check: ok"
