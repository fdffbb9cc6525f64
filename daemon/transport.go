package daemon

import "github.com/tundevfs/tundevfs/fs"

// FuseTransport is how the mounts' FUSE requests reach the daemon: auto,
// uring or dev (fs.Transport; the CLI names it through this package).
type FuseTransport = fs.Transport

// FuseTransportEnv names the environment variable that picks the
// transport when Options.FuseTransport is empty.
const FuseTransportEnv = fs.TransportEnv

// ParseFuseTransport parses auto, uring or dev ("" is auto).
func ParseFuseTransport(s string) (FuseTransport, error) { return fs.ParseTransport(s) }
