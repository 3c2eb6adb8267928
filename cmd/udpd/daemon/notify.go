package daemon

import (
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// sdNotify sends state to systemd's notification socket ($NOTIFY_SOCKET,
// set for Type=notify services): "READY=1" once the listeners and the admin
// API are up, "STOPPING=1" when shutdown begins. Without the variable it
// does nothing, and udpd logs "udpd ready" either way. The variable is
// kept: a udpd started by an upgrade notifies the same socket.
func sdNotify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}
