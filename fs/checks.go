package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// The compile-time interface checks of the package, all in one place.
var (
	// Mount serves every FUSE request itself (unsupported.go lists the
	// ENOSYS answers): it embeds no default, so a method missing or
	// mistyped here fails the build.
	_ fuse.RawFileSystem = (*Mount)(nil)
	_ fuse.RawPoller     = (*Mount)(nil) // poll.go

	// One type per node kind (node.go).
	_ node    = (*rootNode)(nil)
	_ counted = devNode{}
	_ counted = aliasNode{}
	_ node    = (*cloneLink)(nil)
	_ node    = (*stdCharNode)(nil)
	_ node    = (*stdLinkNode)(nil)

	_ fuse.ReadResult = (*packet)(nil) // readresult.go
)
