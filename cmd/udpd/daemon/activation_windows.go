package daemon

import (
	"errors"
	"net/netip"
	"os"
)

// udpSocketAddr: socket activation is systemd's, so there is nothing to
// take on Windows.
func udpSocketAddr(*os.File) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("socket activation is not supported on Windows")
}
