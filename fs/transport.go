package fs

import (
	"fmt"
	"os"
	"strings"
)

// Transport is how a mount's FUSE requests reach the daemon.
type Transport string

const (
	// TransportAuto uses FUSE over io_uring when the kernel offers it
	// at INIT (fuse.enable_uring=1), else /dev/fuse. The default.
	TransportAuto Transport = "auto"
	// TransportURing forces FUSE over io_uring: when the module
	// parameter fuse.enable_uring is off and writable (root), the
	// mount switches it on for the moment of its INIT and puts it back;
	// a kernel without it fails the mount.
	TransportURing Transport = "uring"
	// TransportDev forces reads and writes of /dev/fuse.
	TransportDev Transport = "dev"
)

// TransportEnv names the environment variable that picks the transport
// of mounts whose Options.Transport is empty (the tests' daemons and
// in-process mounts; CI runs the suite once per transport).
const TransportEnv = "TUNDEVFS_FUSE_TRANSPORT"

// ParseTransport parses auto, uring or dev ("" is auto).
func ParseTransport(s string) (Transport, error) {
	switch t := Transport(strings.TrimSpace(s)); t {
	case "":
		return TransportAuto, nil
	case TransportAuto, TransportURing, TransportDev:
		return t, nil
	}
	return "", fmt.Errorf("parse fuse transport %q: want auto, uring or dev", s)
}

// transport is o.Transport, or TransportEnv's, or auto.
func (o Options) transport() (Transport, error) {
	if o.Transport != "" {
		return ParseTransport(string(o.Transport))
	}
	return ParseTransport(os.Getenv(TransportEnv))
}

// Transport is the transport the mount uses: "uring" or "dev".
func (mnt *Mount) Transport() string { return mnt.server.Transport() }

// ResolveTransport is the transport a mount given t takes: t, else
// TransportEnv's, else auto.
func ResolveTransport(t Transport) (Transport, error) {
	return Options{Transport: t}.transport()
}
