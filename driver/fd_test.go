package driver

import "golang.org/x/sys/unix"

func closeFd(fd int) { unix.Close(fd) }

func readFd(fd int, buf []byte) (int, error) { return unix.Read(fd, buf) }
