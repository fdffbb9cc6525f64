#!/usr/bin/env bash
# fuzz.sh: runs every Go fuzz target of the module (found with
# `go test -list '^Fuzz' ./...`, so targets added anywhere are included),
# each for FUZZTIME (default 5m), one after another, and prints each
# target's executions. FUZZPARALLEL sets the workers per target (default:
# go's, GOMAXPROCS). A finding is saved by go under the package's
# testdata/fuzz/FuzzName/ (it then runs as a seed in `make test`); the
# script goes on with the other targets and exits 1 at the end.
set -u -o pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-5m}
par=()
[ -n "${FUZZPARALLEL:-}" ] && par=(-parallel "$FUZZPARALLEL")

list=$("$GO" test -list '^Fuzz' ./... 2>&1) || { echo "$list" >&2; echo "fuzz: listing the targets failed" >&2; exit 1; }
targets=()
names=()
while read -r line; do
	case "$line" in
	Fuzz*) names+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for n in "${names[@]}"; do targets+=("$pkg $n"); done
		names=()
		;;
	esac
done <<<"$list"
[ "${#targets[@]}" -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each"

# FUZZJOBS targets run at once (default 1); with FUZZPARALLEL=1 and
# FUZZJOBS=$(nproc) every CPU fuzzes one target.
jobs=${FUZZJOBS:-1}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
i=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
	echo "== $pkg $name"
	( "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "${par[@]}" "$pkg" >"$logs/$i.log" 2>&1
	  echo $? >"$logs/$i.rc" ) &
	i=$((i + 1))
done
wait

failed=()
summary=()
i=0
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log=$logs/$i.log
	rc=$(cat "$logs/$i.rc" 2>/dev/null || echo 1)
	i=$((i + 1))
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
	if [ "$rc" -ne 0 ]; then
		echo "== $pkg $name"
		cat "$log"
		failed+=("$pkg $name")
		summary+=("$(printf '%-45s %-22s %12s  FOUND A FAILURE' "$pkg" "$name" "${execs:-?}")")
	else
		summary+=("$(printf '%-45s %-22s %12s  ok' "$pkg" "$name" "${execs:-?}")")
	fi
done
echo
printf '%-45s %-22s %12s\n' package target executions
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: findings in: ${failed[*]} (inputs saved under each package's testdata/fuzz/)" >&2
	exit 1
fi
