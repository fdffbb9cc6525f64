package fs

import (
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// packet is the fuse.ReadResult of a device read: one packet, in the
// buffer go-fuse lent to Read. go-fuse calls Done exactly once, after it has
// taken the bytes, and Done recycles the value, so that a read allocates
// nothing here (fuse.ReadResultData allocates on every call).
type packet struct{ data []byte }

var packets = sync.Pool{New: func() any { return new(packet) }}

// packetResult wraps b, which must stay valid until Done.
func packetResult(b []byte) fuse.ReadResult {
	p := packets.Get().(*packet)
	p.data = b
	return p
}

// Bytes implements fuse.ReadResult.
func (p *packet) Bytes([]byte) ([]byte, fuse.Status) { return p.data, fuse.OK }

// Size implements fuse.ReadResult.
func (p *packet) Size() int { return len(p.data) }

// Done implements fuse.ReadResult.
func (p *packet) Done() {
	p.data = nil
	packets.Put(p)
}
