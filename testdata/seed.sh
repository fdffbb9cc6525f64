# SPEC §1 bug 2, the seed's reproduction: a tun cloned inside a vnet jail
# must not keep the jail alive. With and without a running daemon.
. "$(dirname "$0")/lib.sh"

# No daemon yet: jail starts one, which leaves when the jail is gone.
out=$(t jail -c name=test vnet command=ls /dev/tun)
[ "$out" = /dev/tun ] || fail "ls /dev/tun in the jail printed '$out'"
[ "$(t jls -vd | wc -l)" = 1 ] || fail "jls -vd lists jails: $(t jls -vd)"
[ -z "$(tun_links)" ] || fail "interfaces left: $(tun_links)"

# With a daemon running.
"$TUNDEVFS" --socket "$SOCK" daemon </dev/null >"$WORK/daemon.log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
wait_until t status >/dev/null 2>&1 || fail "daemon did not come up"
t jail -c name=test vnet command=sh -c 'ls /dev/tun /dev/null >/dev/null && exec 3<>/dev/tap && ip -o link show tap0 >/dev/null'
[ "$(t jls -vd | wc -l)" = 1 ] || fail "jls -vd lists jails: $(t jls -vd)"
t status --json | grep -q '"devices": \[\]' || fail "devices left: $(t status)"
[ -z "$(tun_links)" ] || fail "interfaces left: $(tun_links)"
# The command's exit status is passed on.
status=0
t jail -c name=test2 vnet command=sh -c 'exit 7' || status=$?
[ "$status" = 7 ] || fail "command exit status $status, want 7"
kill -TERM "$daemon"
wait "$daemon" || fail "daemon exit status $?"
echo ok
