# Mount, clone with exec 3<>, write a packet with printf, see it arrive,
# destroy, umount: nothing left.
. "$(dirname "$0")/lib.sh"

t mount "$DIR"
exec 3<>"$DIR/tun"
name=$(basename "$(readlink /proc/self/fd/3)")
[ "$name" = tun0 ] || fail "exec 3<>tun opened $name, want tun0"
ip addr add 10.9.0.1 peer 10.9.0.2 dev tun0
ip link set tun0 up

# A UDP listener on 10.9.0.1:5000 gets the datagram the device injects.
socat -u UDP-RECV:5000,bind=10.9.0.1 OPEN:"$WORK/got",creat </dev/null >/dev/null 2>&1 &
listener=$!
trap 'kill $listener 2>/dev/null || true' EXIT
sleep 0.3
# One write is one packet. bash's builtin printf flushes at every newline
# byte (0x0a is in the addresses), so use printf(1), which writes once.
/usr/bin/printf '\x45\x00\x00\x1e\x00\x00\x00\x00\x40\x11\x66\xbb\x0a\x09\x00\x02\x0a\x09\x00\x01\x9c\x40\x13\x88\x00\x0a\x00\x00\x68\x69' >&3
wait_until test -s "$WORK/got" || fail "the packet written to tun0 never reached the socket"
kill "$listener" 2>/dev/null || true
wait "$listener" 2>/dev/null || true
[ "$(cat "$WORK/got")" = hi ] || fail "socket got '$(cat "$WORK/got")', want 'hi'"

# Exclusive open.
if (exec 4<>"$DIR/tun0") 2>/dev/null; then fail "second open of tun0 succeeded"; fi

# The text status shows the modes the ioctls set, in its last column.
t status | grep -Eq '^tun0 .* -$' || fail "tun0 has modes before any ioctl: $(t status)"
t ioctl --fd 3 TUNSIFHEAD 1
t status | grep -Eq '^tun0 .* ifhead$' || fail "status does not show tun0's ifhead mode: $(t status)"

exec 3>&-
t ifconfig tun0 destroy
ls "$DIR" | grep -qx tun0 && fail "tun0 still listed after destroy"
[ -z "$(tun_links)" ] || fail "interfaces left: $(tun_links)"
t umount "$DIR"
wait_until sh -c "! grep -q ' $DIR ' /proc/self/mountinfo" || fail "mount left"
wait_until sh -c "! $TUNDEVFS --socket $SOCK status >/dev/null 2>&1" || fail "auto-started daemon still running after its last umount"
echo ok
