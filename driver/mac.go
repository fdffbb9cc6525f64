package driver

import (
	"bytes"
	"crypto/sha256"
	"net"
	"os"
	"sync"
)

var (
	hostIDOnce sync.Once
	hostID     []byte
)

// machineID identifies the host, as FreeBSD's ether_gen_addr() uses the
// hostid: /etc/machine-id, or the hostname if there is none.
func machineID() []byte {
	hostIDOnce.Do(func() {
		for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
			if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
				hostID = bytes.TrimSpace(b)
				return
			}
		}
		h, _ := os.Hostname()
		hostID = []byte(h)
	})
	return hostID
}

// stableMAC is the MAC a tap or vmnet gets at creation: derived from the
// host, the jail and the device name, so the same device in the same jail
// gets the same address every time, unicast and locally administered.
func stableMAC(jail, devName string) net.HardwareAddr {
	h := sha256.New()
	h.Write([]byte("tundevfs\x00"))
	h.Write(machineID())
	h.Write([]byte("\x00" + jail + "\x00" + devName))
	mac := net.HardwareAddr(h.Sum(nil)[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}
