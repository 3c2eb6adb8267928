package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"

	"github.com/coreos/go-systemd/v22/activation"

	"github.com/udpd/udpd/service/manager"
)

// activatedListeners takes the sockets systemd passed (socket activation:
// LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID naming this process) and
// unsets those variables, so a process udpd starts does not take them
// too. Each socket's FileDescriptorName is its listener's id; sockets
// with the same name and address are the workers of one listener. A name
// given to sockets on several addresses (one .socket unit with several
// ListenDatagram= lines) names the first address's listener, and the
// others get NAME-2, NAME-3, … in the order systemd passed them. The
// files are the caller's to close once adopted.
func activatedListeners() ([]manager.Adopted, []*os.File, error) {
	files := activation.Files(true)
	if len(files) == 0 {
		return nil, nil, nil
	}
	as, err := groupActivated(files)
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, err
	}
	return as, files, nil
}

// groupActivated groups activated sockets into listeners (see
// activatedListeners).
func groupActivated(files []*os.File) ([]manager.Adopted, error) {
	type key struct {
		name string
		addr netip.AddrPort
	}
	byKey := map[key]int{}     // index into out
	addrs := map[string]int{}  // addresses seen per name
	owner := map[string]bool{} // ids given
	var out []manager.Adopted
	for i, f := range files {
		name := f.Name()
		addr, err := udpSocketAddr(f)
		if err != nil {
			return nil, fmt.Errorf("socket activation: socket %d (%s): %w", 3+i, name, err)
		}
		if err := manager.ValidateID(name); err != nil {
			return nil, fmt.Errorf("socket activation: socket %d is named %q, not a listener id (set FileDescriptorName= in the .socket unit): %w", 3+i, name, err)
		}
		k := key{name, addr}
		if j, ok := byKey[k]; ok {
			out[j].Files = append(out[j].Files, f)
			continue
		}
		addrs[name]++
		id := name
		if n := addrs[name]; n > 1 {
			id = name + "-" + strconv.Itoa(n)
		}
		if owner[id] {
			return nil, fmt.Errorf("socket activation: two listeners would be called %q: give the sockets distinct FileDescriptorName=", id)
		}
		owner[id] = true
		byKey[k] = len(out)
		out = append(out, manager.Adopted{Spec: manager.Spec{ID: id, Address: addr.String()}, Files: []*os.File{f}})
	}
	return out, nil
}

// mergeActivated fits the activated listeners into the ones to start: a
// saved listener with an activated one's id keeps its settings (workers
// aside: the sockets systemd passed are the workers) on the activated
// sockets, which win over a saved address; the other specs are returned
// to be bound as usual. Under activation the default --listen address is
// not added (dropDefault).
func mergeActivated(adopted []manager.Adopted, specs []manager.Spec, dropDefault bool, log *slog.Logger) []manager.Spec {
	if len(adopted) == 0 {
		return specs
	}
	if dropDefault {
		specs = nil
	}
	for i := range adopted {
		a := &adopted[i]
		j := slices.IndexFunc(specs, func(s manager.Spec) bool { return s.ID == a.Spec.ID })
		if j < 0 {
			continue
		}
		saved := specs[j]
		if saved.Address != a.Spec.Address {
			log.Warn("activated socket replaces the saved address", "id", a.Spec.ID, "saved", saved.Address, "activated", a.Spec.Address)
		}
		a.Spec.Limits, a.Spec.Workers = saved.Limits, saved.Workers
		specs = slices.Delete(specs, j, j+1)
	}
	return specs
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}
