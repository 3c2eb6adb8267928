// Package mmsg wraps the Linux batch system calls recvmmsg and sendmmsg for
// the listener's workers and the load generator: the message headers over a
// set of buffers, the calls themselves (retried on EINTR), and the control
// message of UDP segmentation offload (UDP_SEGMENT).
//
// Two flavours of each call exist. Recv and Send go through syscall.Syscall6,
// so the Go runtime knows the thread may block and can hand its P to other
// goroutines: use them for calls that may wait. RecvNow and SendNow go
// through RawSyscall6 and keep the P: use them only with MSG_DONTWAIT, for
// calls that return at once.
//
// mmsg holds no state and never imports anything from the module.
package mmsg
