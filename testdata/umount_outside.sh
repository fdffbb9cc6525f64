# An unmount from outside (umount(8)) stops the auto-started daemon cleanly:
# every cloned interface destroyed, no mount left.
. "$(dirname "$0")/lib.sh"

t mount "$DIR"
ls "$DIR/tun" >/dev/null
ls "$DIR/tap" >/dev/null
[ "$(tun_links | wc -l)" = 2 ] || fail "want 2 interfaces, have: $(tun_links)"
umount "$DIR"
wait_until sh -c "! $TUNDEVFS --socket $SOCK status >/dev/null 2>&1" || fail "daemon still running"
wait_until sh -c '[ -z "$(ip -o link show | grep -E ": (tun|tap)[0-9]")" ]' || fail "interfaces left: $(tun_links)"
mounted "$DIR" && fail "mount left"
echo ok
