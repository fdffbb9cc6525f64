package fs

import (
	"reflect"
	"testing"
)

// TestMountEmbedsNoDefault: Mount embeds nothing, so every FUSE request
// it answers is a method of its own. An embedded fuse.RawFileSystem (as
// fuse.NewDefaultRawFileSystem) would make the compile-time check in
// checks.go pass whatever Mount implements, and a method with a mistyped
// signature would quietly answer ENOSYS (issue 14 item 7).
func TestMountEmbedsNoDefault(t *testing.T) {
	typ := reflect.TypeFor[Mount]()
	for i := range typ.NumField() {
		if f := typ.Field(i); f.Anonymous {
			t.Errorf("Mount embeds %s: its methods would answer requests Mount does not implement", f.Type)
		}
	}
}
