//go:build unix

package udptest

import (
	"os"
	"syscall"
	"testing"
)

// DupFiles duplicates each socket as a file, as a process passing
// sockets on to another would; the duplicates are closed when the test
// ends.
func DupFiles(t *testing.T, socks []syscall.Conn) []*os.File {
	t.Helper()
	var fs []*os.File
	for _, s := range socks {
		rc, err := s.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var f *os.File
		err = rc.Control(func(fd uintptr) {
			var dup int
			if dup, err = syscall.Dup(int(fd)); err == nil {
				f = os.NewFile(uintptr(dup), "socket")
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
	}
	return fs
}
