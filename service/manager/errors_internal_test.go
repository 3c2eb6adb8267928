package manager

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// TestClassifyBind covers the bind errors a test cannot provoke as root
// (EACCES on a low port) or safely (running out of descriptors).
func TestClassifyBind(t *testing.T) {
	for _, tc := range []struct {
		errno syscall.Errno
		want  error
	}{
		{syscall.EADDRINUSE, ErrAddressInUse},
		{syscall.EACCES, ErrPermission},
		{syscall.EPERM, ErrPermission},
		{syscall.EADDRNOTAVAIL, ErrAddressNotAvailable},
		{syscall.EMFILE, ErrNoResources},
		{syscall.ENOBUFS, ErrNoResources},
	} {
		err := classifyBind(fmt.Errorf("listen udp4 127.0.0.1:80: bind: %w", tc.errno))
		if !errors.Is(err, tc.want) || !errors.Is(err, tc.errno) {
			t.Errorf("classifyBind(%v): got %v, want errors.Is %v and the errno", tc.errno, err, tc.want)
		}
	}
	if err := classifyBind(syscall.EINVAL); errors.Is(err, ErrAddressInUse) || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("classifyBind(EINVAL) = %v, want it unchanged", err)
	}
}
