#!/bin/sh
# The driver's own tests as an ordinary user (issue 14): runs
# `go test -cover ./driver/` as nobody when called as root, prints the
# figure and fails below COVER_MIN percent (default 80). The module cache
# is copied (from the root's download cache, no network) to a temporary
# directory nobody can read, since root's GOPATH usually is not.
set -eu
GO=${GO:-go}
MIN=${COVER_MIN:-80}
run() { "$GO" test -count=1 -cover ./driver/; }
if [ "$(id -u)" = 0 ]; then
	tmp=$(mktemp -d /tmp/tundevfs-cover.XXXXXX)
	trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
	cache=$("$GO" env GOMODCACHE)/cache/download
	GOFLAGS=-modcacherw GOMODCACHE="$tmp/mod" GOSUMDB=off GOPROXY="file://$cache" "$GO" mod download
	chmod -R a+rX "$tmp"
	chmod a+rwx "$tmp"
	# An ordinary user: the privileged tests skip here (they run as root
	# in make test), even where CI demands that privileged tests run.
	rc=0
	out=$(setpriv --reuid=65534 --regid=65534 --clear-groups env -u TUNDEVFS_REQUIRE_PRIVILEGED HOME="$tmp" \
		GOCACHE="$tmp/cache" GOMODCACHE="$tmp/mod" GOPROXY=off GOFLAGS=-buildvcs=false \
		PATH="$PATH" "$GO" test -count=1 -cover ./driver/ 2>&1) || rc=$?
else
	rc=0
	out=$(run 2>&1) || rc=$?
fi
echo "$out"
[ "$rc" = 0 ] || { echo "cover-driver: go test failed (exit $rc)" >&2; exit 1; }
pct=$(echo "$out" | sed -n 's/.*coverage: \([0-9.]*\)% of statements.*/\1/p')
[ -n "$pct" ] || { echo "cover-driver: no coverage figure" >&2; exit 1; }
awk -v p="$pct" -v m="$MIN" 'BEGIN { exit !(p >= m) }' ||
	{ echo "cover-driver: driver coverage as an ordinary user is $pct%, below $MIN%" >&2; exit 1; }
echo "cover-driver: $pct% of driver's statements as uid $(id -u) -> 65534 (want >= $MIN%)"
