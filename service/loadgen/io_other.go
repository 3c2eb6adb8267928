//go:build !linux

package loadgen

// batchIO is empty where there is no sendmmsg/recvmmsg: a flow sends and
// receives one datagram per system call.
type batchIO struct{}

func (f *flow) initIO() error { return nil }

// read receives one reply, waiting until it arrives or the deadline passes.
func (f *flow) read() (int, error) {
	n, err := f.conn.Read(f.recvBufs[0])
	if err != nil {
		return 0, err
	}
	f.recvLens[0] = n
	return 1, nil
}

// write sends sendBufs[:k] and returns how many it sent: all of them, or
// fewer and the error that stopped the next.
func (f *flow) write(k int) (int, error) {
	for i, b := range f.sendBufs[:k] {
		if _, err := f.conn.Write(b); err != nil {
			return i, err
		}
	}
	return k, nil
}
