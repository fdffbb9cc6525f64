package fs

import (
	"testing"

	"github.com/tundevfs/tundevfs/driver"
)

// TestStdDevsReserved: every standard device name and every cloner's name
// is one an interface rename never makes an alias of (issue 10 defect 6).
func TestStdDevsReserved(t *testing.T) {
	for _, sd := range stdDevs {
		if !driver.Reserved(sd.name) {
			t.Errorf("standard device %s is not driver.Reserved: a rename could shadow it", sd.name)
		}
	}
	for _, d := range driver.Drivers {
		if !driver.Reserved(d.Name) {
			t.Errorf("cloner %s is not driver.Reserved", d.Name)
		}
	}
}
