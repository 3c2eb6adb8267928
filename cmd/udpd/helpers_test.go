package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	adminv1 "github.com/udpd/udpd/gen/udpd/admin/v1"
)

// daemonConn is an admin connection to a udpd the test started.
type daemonConn struct {
	admin  string
	conn   *grpc.ClientConn
	client adminv1.ListenerServiceClient
}

// readyFile reads udpd's --ready-file: the admin address and each
// listener's id and address. ok is false while the file is not there.
func readyFile(path string) (admin string, listeners map[string]string, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, false
	}
	defer f.Close()
	listeners = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) == 2 && fs[0] == "admin":
			admin = fs[1]
		case len(fs) == 3 && fs[0] == "listener":
			listeners[fs[1]] = fs[2]
		}
	}
	return admin, listeners, admin != ""
}

// connect waits for udpd (cmd) to write its ready file and connects to its
// admin API.
func connect(t *testing.T, ready string, stderr fmt.Stringer) *daemonConn {
	t.Helper()
	var admin string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		if admin, _, ok = readyFile(ready); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("udpd not ready after 20s; stderr:\n%s", stderr)
		}
	}
	conn, err := grpc.NewClient("passthrough:///"+admin, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &daemonConn{admin: admin, conn: conn, client: adminv1.NewListenerServiceClient(conn)}
}

// logFile is a process's stderr kept in a file: a pipe would stay open
// for as long as the processes an upgrade starts live.
type logFile string

func (f logFile) String() string {
	b, _ := os.ReadFile(string(f))
	return string(b)
}

// echo sends msg to addr and returns the reply.
func echo(addr netip.AddrPort, msg string) (string, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 3 {
		if _, err := c.Write([]byte(msg)); err != nil {
			return "", err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", os.ErrDeadlineExceeded
}
