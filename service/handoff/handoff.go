//go:build unix

// Package handoff passes a running daemon's open sockets and files to a new
// process of it, for an upgrade in which nothing queued is lost and nothing
// is refused: the kernel sockets stay the same objects, only the process
// reading them changes.
//
// The old process (Start) runs the new binary with the files at
// descriptors 4, 5, … and a unix socket to talk over at descriptor 3,
// named by $UDPD_HANDOFF_FD. It sends the files' names and an opaque
// description (what the files are for), and waits for the new process to
// report ready, for it to exit, or for a deadline; on any failure the new
// process is killed and the old one goes on as if nothing happened. Once
// the new process is ready the old one stops reading, and sends one last
// message (its counters, say) with Child.Finish before it exits.
//
// The new process (Inherit) takes the files, reports Ready (or Fail with
// the reason, which the old process reports in turn), and reads the last
// message with Parent.Wait.
//
// Why not cloudflare/tableflip: it can pass per-worker sockets (as named
// files), but its set of passed files only grows (Fds has no way to forget
// one, and replacing one drops the old duplicate unclosed), so after a
// failed upgrade the sockets of every listener stopped later would stay
// bound in the old process; it allows one Upgrader per process, re-executes
// os.Args[0] through $PATH rather than the running binary, and still needs
// a second channel for the counters. Inheriting descriptors through
// syscall.StartProcess and one unix socket is all this needs.
//
// handoff knows nothing of listeners, gRPC or protobuf. It needs unix
// descriptor passing: on Windows, Start fails and Inherit finds nothing.
package handoff

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// EnvFD names the descriptor of the hand-off socket in the new process.
const EnvFD = "UDPD_HANDOFF_FD"

// firstFile is the descriptor of the first passed file in the new process
// (0-2 are stdio, 3 the hand-off socket).
const firstFile = 4

// ErrFailed is returned (wrapped, with the reason) by Start when the new
// process did not start, exited or failed before it was ready, or was not
// ready in time. The old process is untouched.
var ErrFailed = errors.New("upgrade failed")

// File is one descriptor to pass: a socket, a listener, a locked file.
type File struct {
	Name string
	Conn syscall.Conn
}

// message is one line on the hand-off socket.
type message struct {
	Files []string        `json:"files,omitempty"` // old → new: names, in descriptor order
	State json.RawMessage `json:"state,omitempty"` // old → new: what the files are
	Ready bool            `json:"ready,omitempty"` // new → old
	Error string          `json:"error,omitempty"` // new → old: why it gives up
	Final json.RawMessage `json:"final,omitempty"` // old → new: the last word
}

// Options say what to start.
type Options struct {
	Path string   // the binary
	Name string   // its argv[0]; "" means Path
	Args []string // its arguments, without argv[0]
	Env  []string // its environment, without EnvFD; nil: this process's
	// Timeout is how long the new process has to report ready.
	Timeout time.Duration
}

// Child is a new process that reported ready.
type Child struct {
	Pid   int
	conn  *net.UnixConn
	enc   *json.Encoder
	exits chan error // the process's Wait result
}

// Start starts the new process, passes it files and state, and waits
// until it reports ready. It returns an error wrapping ErrFailed if the
// process cannot start, exits or fails before it is ready, is not ready
// within opts.Timeout, or ctx ends first; the process is killed then, and
// nothing of this process has changed.
func Start(ctx context.Context, opts Options, files []File, state any) (*Child, error) {
	st, err := json.Marshal(state)
	if err != nil {
		return nil, fmt.Errorf("upgrade: state: %w", err)
	}
	pair, err := socketpair()
	if err != nil {
		return nil, fmt.Errorf("upgrade: socketpair: %w", err)
	}
	mine := os.NewFile(uintptr(pair[0]), "handoff")
	defer mine.Close() // conn has its own descriptor
	fc, err := net.FileConn(mine)
	if err != nil {
		unix.Close(pair[1])
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	conn := fc.(*net.UnixConn)
	theirs := pair[1]

	// Duplicates of every file, closed here once the child has them: the
	// originals stay with their owners, unchanged (File() would make them
	// blocking, and os.StartProcess would through Fd()).
	fds := []uintptr{0, 1, 2, uintptr(theirs)}
	dups := []int{theirs}
	defer func() {
		for _, fd := range dups {
			unix.Close(fd)
		}
	}()
	names := make([]string, len(files))
	for i, f := range files {
		fd, err := dupConn(f.Conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("upgrade: pass %s: %w", f.Name, err)
		}
		dups = append(dups, fd)
		fds = append(fds, uintptr(fd))
		names[i] = f.Name
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(withoutEnv(env, EnvFD), EnvFD+"=3")
	argv0 := opts.Name
	if argv0 == "" {
		argv0 = opts.Path
	}
	pid, err := syscall.ForkExec(opts.Path, append([]string{argv0}, opts.Args...), &syscall.ProcAttr{Env: env, Files: fds})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("upgrade: start %s: %w: %w", opts.Path, err, ErrFailed)
	}
	c := &Child{Pid: pid, conn: conn, enc: json.NewEncoder(conn), exits: make(chan error, 1)}
	proc, _ := os.FindProcess(pid) // never fails on unix
	go func() {
		ps, err := proc.Wait()
		if err == nil && !ps.Success() {
			err = errors.New(ps.String())
		} else if err == nil {
			err = errors.New("exit status 0")
		}
		c.exits <- err
		conn.Close() // ends a wait for its message
	}()
	fail := func(format string, args ...any) (*Child, error) {
		proc.Kill()
		<-c.exits
		return nil, fmt.Errorf("upgrade: new udpd (pid %d) "+format+": %w", append([]any{pid}, append(args, ErrFailed)...)...)
	}
	// exitedOr reports a process that has exited, or else the other failure.
	exitedOr := func(format string, args ...any) (*Child, error) {
		select {
		case err := <-c.exits:
			c.exits <- err
			return fail("exited before it was ready (%v)", err)
		case <-time.After(time.Second):
			return fail(format, args...)
		}
	}
	if err := c.enc.Encode(message{Files: names, State: st}); err != nil {
		return exitedOr("did not take the sockets: %v", err)
	}

	got := make(chan message, 1)
	readErr := make(chan error, 1)
	go func() {
		var m message
		if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&m); err != nil {
			readErr <- err
			return
		}
		got <- m
	}()
	timer := time.NewTimer(opts.Timeout)
	defer timer.Stop()
	select {
	case m := <-got:
		if m.Error != "" {
			return fail("failed: %s", m.Error)
		}
		if !m.Ready {
			return fail("sent %+v, want ready", m)
		}
		return c, nil
	case <-readErr:
		// The process closed the socket: it exited (or is exiting).
		return exitedOr("closed the hand-off socket before it was ready")
	case err := <-c.exits:
		c.exits <- err
		return fail("exited before it was ready (%v)", err)
	case <-timer.C:
		return fail("was not ready within %v", opts.Timeout)
	case <-ctx.Done():
		return fail("was not ready when the request ended (%v)", context.Cause(ctx))
	}
}

// Finish sends the new process the last message (final, as JSON) and
// closes the hand-off socket. The new process runs on by itself.
func (c *Child) Finish(final any) error {
	defer c.conn.Close()
	b, err := json.Marshal(final)
	if err != nil {
		return fmt.Errorf("upgrade: final message: %w", err)
	}
	if err := c.enc.Encode(message{Final: b}); err != nil {
		return fmt.Errorf("upgrade: final message: %w", err)
	}
	return nil
}

// Parent is the process that started this one to hand over to it.
type Parent struct {
	files map[string]*os.File
	state json.RawMessage
	conn  *net.UnixConn
	dec   *json.Decoder
	enc   *json.Encoder
}

// Inherit returns the hand-over that started this process, or nil if none
// did ($UDPD_HANDOFF_FD unset). It unsets the variable and reads the files'
// names and the state (into state, a pointer). Files not taken with File
// are closed by Ready and Fail.
func Inherit(state any) (*Parent, error) {
	v, ok := os.LookupEnv(EnvFD)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFD)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("hand-over: %s=%q is not a descriptor", EnvFD, v)
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "handoff")
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("hand-over: %w", err)
	}
	p := &Parent{conn: fc.(*net.UnixConn), files: map[string]*os.File{}}
	p.dec = json.NewDecoder(p.conn)
	p.enc = json.NewEncoder(p.conn)
	var m message
	if err := p.dec.Decode(&m); err != nil {
		p.conn.Close()
		return nil, fmt.Errorf("hand-over: read the sockets' names: %w", err)
	}
	for i, name := range m.Files {
		unix.CloseOnExec(firstFile + i)
		p.files[name] = os.NewFile(uintptr(firstFile+i), name)
	}
	if err := json.Unmarshal(m.State, state); err != nil {
		p.Fail(err)
		return nil, fmt.Errorf("hand-over: state: %w", err)
	}
	return p, nil
}

// File returns the passed file of that name (nil if there is none); the
// caller owns it.
func (p *Parent) File(name string) *os.File {
	f := p.files[name]
	delete(p.files, name)
	return f
}

// Ready tells the old process that this one serves, and closes the files
// not taken.
func (p *Parent) Ready() error {
	p.closeRest()
	if err := p.enc.Encode(message{Ready: true}); err != nil {
		return fmt.Errorf("hand-over: report ready: %w", err)
	}
	return nil
}

// Fail tells the old process why this one gives up (before exiting), and
// closes everything.
func (p *Parent) Fail(err error) {
	p.closeRest()
	p.enc.Encode(message{Error: err.Error()})
	p.conn.Close()
}

// Wait reads the old process's last message into final (a pointer) and
// closes the hand-off socket. It fails if the old process went away
// without one, or ctx ends first.
func (p *Parent) Wait(ctx context.Context, final any) error {
	defer p.conn.Close()
	stop := context.AfterFunc(ctx, func() { p.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	var m message
	if err := p.dec.Decode(&m); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return fmt.Errorf("hand-over: wait for the old process: %w", err)
	}
	if err := json.Unmarshal(m.Final, final); err != nil {
		return fmt.Errorf("hand-over: final message: %w", err)
	}
	return nil
}

func (p *Parent) closeRest() {
	for name, f := range p.files {
		f.Close()
		delete(p.files, name)
	}
}

// dupConn duplicates c's descriptor (close-on-exec; ForkExec clears it in
// the child) without changing c.
func dupConn(c syscall.Conn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	return fd, derr
}

func withoutEnv(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if len(kv) > len(name) && kv[:len(name)] == name && kv[len(name)] == '=' {
			continue
		}
		out = append(out, kv)
	}
	return out
}
