# SIGTERM to a foreground daemon with an open device and a blocked reader:
# the reader returns, the daemon exits 0, nothing is left.
. "$(dirname "$0")/lib.sh"

"$TUNDEVFS" --socket "$SOCK" daemon </dev/null >"$WORK/daemon.log" 2>&1 &
daemon=$!
wait_until t status >/dev/null 2>&1 || fail "daemon did not come up"
t mount "$DIR"
exec 3<>"$DIR/tap"
t ifconfig vmnet create >/dev/null
head -c 1 <&3 >/dev/null 2>&1 &
reader=$!
trap 'kill $reader $daemon 2>/dev/null || true' EXIT
sleep 0.3
kill -0 "$reader" || fail "reader did not block"
kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
[ "$status" = 0 ] || { cat "$WORK/daemon.log" >&2; fail "daemon exit status $status"; }
wait_until sh -c "! kill -0 $reader 2>/dev/null" || fail "blocked reader did not return"
exec 3>&-
[ -z "$(tun_links)" ] || fail "interfaces left: $(tun_links)"
mounted "$DIR" && fail "mount left"
echo ok
