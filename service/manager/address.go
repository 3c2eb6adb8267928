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

// ValidateRequestID reports whether s can be a request id: empty (none),
// or 1 to MaxRequestIDLen letters, digits and "-_.:" (a UUID fits). Its
// errors are *FieldError wrapping ErrInvalidArgument.
func ValidateRequestID(s string) error {
	if len(s) > MaxRequestIDLen {
		return &FieldError{Field: "request_id", Value: s, Reason: "must be at most " + strconv.Itoa(MaxRequestIDLen) + " characters, got " + strconv.Itoa(len(s)), Err: ErrInvalidArgument}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return &FieldError{Field: "request_id", Value: s, Reason: "may hold only letters, digits and -_.: (a UUID fits)", Err: ErrInvalidArgument}
		}
	}
	return nil
}

// ParseAddress parses "host:port" where host is an IP literal (IPv6 in
// brackets) or "localhost", and port is 0 to 65535 (0 picks a free port).
// Multicast and broadcast addresses are refused, and so is an IPv6
// link-local address without a zone ([fe80::1%eth0]:12000) or a zone on
// any other address. Its errors are *FieldError wrapping
// ErrInvalidAddress.
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
	ip = ip.Unmap()
	if reason := refused(ip); reason != "" {
		return netip.AddrPort{}, &FieldError{Field: "address", Value: s, Reason: reason, Err: ErrInvalidAddress}
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// refused says why ip cannot be a listener's address, or "" if it can. A
// multicast or broadcast address would receive datagrams meant for a group
// and (through Go's net package) bind the wildcard address with
// SO_REUSEADDR, which lets other sockets share the port. An IPv6 link-local
// address names a link only together with its zone.
func refused(ip netip.Addr) string {
	switch {
	case ip.IsMulticast():
		return "a multicast address cannot be served: give a unicast address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address cannot be served: give a unicast address"
	case ip.Is6() && ip.IsLinkLocalUnicast() && ip.Zone() == "":
		return "a link-local IPv6 address needs its interface, e.g. [fe80::1%eth0]"
	case ip.Zone() != "" && !ip.IsLinkLocalUnicast():
		return "only a link-local IPv6 address takes a zone (%interface)"
	}
	return ""
}

// checkLocal checks what only the host can tell about addr, before it is
// bound: that its zone names an interface, and that it is not the
// broadcast address of one of the host's networks (the kernel would bind
// that, and the listener would answer broadcasts). Its errors are
// *FieldError wrapping ErrInvalidAddress.
func checkLocal(addr netip.AddrPort) error {
	ip := addr.Addr()
	if zone := ip.Zone(); zone != "" {
		if _, err := net.InterfaceByName(zone); err != nil {
			n, nerr := strconv.Atoi(zone)
			if nerr != nil || n <= 0 {
				return &FieldError{Field: "address", Value: addr.String(), Reason: "no interface " + strconv.Quote(zone) + " on this host", Err: ErrInvalidAddress}
			}
			if _, err := net.InterfaceByIndex(n); err != nil {
				return &FieldError{Field: "address", Value: addr.String(), Reason: "no interface with index " + zone + " on this host", Err: ErrInvalidAddress}
			}
		}
	}
	// The broadcast address of a network with at least two host bits
	// ends in binary 11; only such addresses cost a look at the host's.
	if !ip.Is4() || ip.As4()[3]&3 != 3 {
		return nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil // the bind decides
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		p, ok := netip.AddrFromSlice(n.IP)
		ones, bits := n.Mask.Size()
		if !ok || !p.Unmap().Is4() || bits-ones < 2 { // /31 and /32 have no broadcast address
			continue
		}
		if broadcast(netip.PrefixFrom(p.Unmap(), ones)) == ip {
			return &FieldError{Field: "address", Value: addr.String(), Reason: "the broadcast address of " + n.String() + " cannot be served: give a unicast address", Err: ErrInvalidAddress}
		}
	}
	return nil
}

// broadcast is the last address of IPv4 prefix p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
