package manager

import (
	"net"
	"net/netip"
	"regexp"
	"strconv"
)

var idPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// ValidateID reports whether id is a valid listener id: [a-z][a-z0-9-]{0,62}.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return &FieldError{Field: "id", Value: id, Reason: "must match [a-z][a-z0-9-]{0,62}", Err: ErrInvalidID}
	}
	return nil
}

// ParseAddress parses "host:port" where host is an IP literal (IPv6 in
// brackets) or "localhost", and port is 0 to 65535 (0 picks a free port).
func ParseAddress(s string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, &FieldError{Field: "address", Value: s, Reason: "want host:port, e.g. 127.0.0.1:12000 or [::1]:12000", Err: ErrInvalidAddress}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, &FieldError{Field: "address", Value: s, Reason: "port must be a number from 0 to 65535", Err: ErrInvalidAddress}
	}
	var ip netip.Addr
	switch host {
	case "localhost":
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case "":
		return netip.AddrPort{}, &FieldError{Field: "address", Value: s, Reason: "host is missing (0.0.0.0 is every IPv4 address, [::] every IPv6 address)", Err: ErrInvalidAddress}
	default:
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return netip.AddrPort{}, &FieldError{Field: "address", Value: s, Reason: "host must be an IP address or localhost", Err: ErrInvalidAddress}
		}
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}
