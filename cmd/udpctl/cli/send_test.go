package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// lateServer is a UDP server on loopback that answers with the uppercase
// of each datagram, except the first: that one it answers only when the
// second arrives (so after the client's timeout), just before it answers
// the second. It reports on lateSent once both replies are sent.
func lateServer(t *testing.T) (addr string, lateSent <-chan struct{}) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 2048)
		var first []byte
		for n := 0; ; n++ {
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed by the test, or the test hangs: give up
			}
			req := append([]byte(nil), buf[:m]...)
			switch n {
			case 0:
				first = req
				continue
			case 1:
				pc.WriteTo(bytes.ToUpper(first), from)
				pc.WriteTo(bytes.ToUpper(req), from)
				close(sent)
			default:
				pc.WriteTo(bytes.ToUpper(req), from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String(), sent
}

// A reply that arrives late, after the request was sent again, must not be
// taken for the reply to the next line.
func TestSendLateReplyIsNotTheNextLinesReply(t *testing.T) {
	addr, lateSent := lateServer(t)
	stdin, w := io.Pipe()
	feed := make(chan error, 1)
	go func() {
		defer w.Close()
		if _, err := io.WriteString(w, "one\n"); err != nil {
			feed <- err
			return
		}
		select {
		case <-lateSent:
		case <-time.After(10 * time.Second):
			feed <- errors.New("the server never got the request again")
			return
		}
		// Both replies to "one" are on their way over loopback; let them
		// arrive before the next line is sent.
		time.Sleep(100 * time.Millisecond)
		_, err := io.WriteString(w, "two\nthree\n")
		feed <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := Run(ctx, []string{"send", "--server", addr, "--reply-timeout", "100ms"}, stdin, &out, &errOut)
	stdin.Close()
	if err := <-feed; err != nil {
		t.Fatal(err)
	}
	if code != ExitOK {
		t.Fatalf("send exited %d: %s", code, errOut.String())
	}
	if got, want := out.String(), "ONE\nTWO\nTHREE\n"; got != want {
		t.Errorf("send printed %q, want %q", got, want)
	}
}

// A reply to an earlier attempt of the same request is its answer, even
// when it comes after that attempt timed out.
func TestSendAcceptsLateReplyToEarlierAttempt(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		// Answer only the first datagram, and only once the second
		// attempt has come (so after the first timed out); ignore the
		// rest.
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		first := bytes.ToUpper(buf[:n])
		if _, _, err := pc.ReadFrom(buf); err != nil {
			return
		}
		pc.WriteTo(first, from)
	}()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), []string{"send", "--server", pc.LocalAddr().String(), "--reply-timeout", "100ms", "--retries", "5", "-o", "json", "late"}, nil, &out, &errOut)
	<-done
	if code != ExitOK {
		t.Fatalf("send exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `"reply": "LATE"`) || strings.Contains(out.String(), `"attempts": 1,`) {
		t.Errorf("send printed %s, want the reply LATE after more than one attempt", out.String())
	}
}

// echoServer is a UDP server on loopback that answers each datagram with
// its uppercase.
func echoServer(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			pc.SetReadDeadline(time.Now().Add(10 * time.Second))
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return pc.LocalAddr().String()
}
