#!/bin/sh
# ioctl_shell.sh TUNDEVFS DEVICE: the shell client of the tundevfs device
# surface, driven by fs/ioctl_client_linux_test.go (it lives here, not in
# testdata/*.sh, which holds scenarios). It opens DEVICE on fd 3 the way a
# user would (exec 3<>DEVICE), then answers commands read from stdin, one
# line each, as ioctl_client.c does:
#
#   ioctl NAME [VALUE]  tundevfs ioctl --fd 3 NAME [VALUE]
#   write HEX           one write of the bytes to fd 3
#   read                one read of fd 3, printed in hex
#   pid                 the shell's pid (the opener)
#   close               exec 3>&-
#
# Answers are "ok [RESULT]" or "err MESSAGE"; tundevfs ioctl names the errno
# in its message, "(EINVAL)".
bin=$1
exec 3<>"$2" || { echo "err open $2"; exit 1; }
echo "ok ready"
while read -r cmd a b; do
	case $cmd in
	ioctl)
		if out=$("$bin" ioctl --fd 3 "$a" ${b:+"$b"} 2>&1); then
			echo "ok $out"
		else
			echo "err $out"
		fi ;;
	write)
		# xxd writes the packet with one write(2): it is smaller than
		# stdout's buffer.
		if printf '%s' "$a" | xxd -r -p >&3; then echo "ok"; else echo "err write"; fi ;;
	read)
		# dd issues exactly one read(2): one packet.
		echo "ok $(dd bs=65536 count=1 <&3 2>/dev/null | xxd -p | tr -d '\n')" ;;
	pid)
		echo "ok $$" ;;
	close)
		exec 3>&-
		echo "ok" ;;
	*)
		echo "err unknown command $cmd" ;;
	esac
done
