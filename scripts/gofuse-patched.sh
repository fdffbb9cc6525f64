#!/usr/bin/env bash
# gofuse-patched.sh [DEST]
#
# Makes a patched copy of github.com/hanwen/go-fuse/v2@v2.12.1 in DEST
# (default: <repo>/.build/go-fuse), for use with
#   replace github.com/hanwen/go-fuse/v2 => ./.build/go-fuse
# in go.mod. See patches/README.md.
#
# Applies the patches/go-fuse-$version-*.patch listed below, in this order:
# -poll (FUSE_POLL), -uring (FUSE over io_uring), then -takeover (serve a
# connection another server initialized; FUSE_NOTIFY_RESEND).
#
# Idempotent: DEST holds a stamp with the sha256 over all the patches, and
# the copy is only rebuilt when one changed. Needs go, patch, sha256sum, cp.
set -eu -o pipefail

module=github.com/hanwen/go-fuse/v2
version=v2.12.1
stampname=.gofuse-patched.sha256

die() { echo "gofuse-patched: $*" >&2; exit 1; }

root=$(cd "$(dirname "$0")/.." && pwd)
# The order matters: each patch applies on top of the ones before.
patchfiles=("$root/patches/go-fuse-$version-poll.patch" "$root/patches/go-fuse-$version-uring.patch"
	"$root/patches/go-fuse-$version-takeover.patch")
dest=${1:-$root/.build/go-fuse}
dest=${dest%/}
[ -n "$dest" ] || die "refusing to use / as destination"

for tool in go sha256sum cp; do
	command -v "$tool" >/dev/null || die "'$tool' not found in PATH"
done
command -v patch >/dev/null ||
	die "'patch' not found in PATH; install it (Debian/Ubuntu: apt-get install patch)"
for patchfile in "${patchfiles[@]}"; do
	[ -f "$patchfile" ] || die "patch file $patchfile not found"
done

want=$(cat "${patchfiles[@]}" | sha256sum | cut -d' ' -f1)
if [ -f "$dest/$stampname" ] && [ "$(cat "$dest/$stampname")" = "$want" ]; then
	echo "gofuse-patched: $dest is up to date"
	exit 0
fi

# Only ever delete an earlier copy made by this script.
if [ -e "$dest" ]; then
	[ -f "$dest/$stampname" ] || [ -z "$(ls -A "$dest")" ] ||
		die "$dest exists but was not made by this script; remove it by hand"
fi

# Look the module up outside any main module, so that a go.mod replace
# directive pointing at $dest cannot redirect the lookup to it. This uses
# the module cache, or downloads through GOPROXY on a fresh machine.
json=$(cd / && env GOFLAGS= GOWORK=off go mod download -json "$module@$version") ||
	die "go mod download $module@$version failed:
$json"
src=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
[ -n "$src" ] && [ -d "$src" ] || die "no module directory in go mod download output:
$json"

# Build the new copy next to $dest and swap it in only when complete.
mkdir -p "$(dirname "$dest")"
tmp=$dest.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
cp -R "$src" "$tmp"
chmod -R u+w "$tmp"

for patchfile in "${patchfiles[@]}"; do
	if ! out=$(patch -p1 --forward --batch --fuzz=0 --no-backup-if-mismatch \
		-r - -d "$tmp" -i "$patchfile" 2>&1); then
		die "$patchfile does not apply to $module@$version (after the patches before it):
$out"
	fi
done
printf '%s\n' "$want" >"$tmp/$stampname"

rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "gofuse-patched: patched $module@$version into $dest"
