// Package listener serves one UDP address: it binds a group of sockets that
// share the address (SO_REUSEPORT, one per worker), answers every datagram
// with its uppercase (package uppercase) to the sender's address, and counts
// what it does.
//
// That is the Linux worker (worker_linux.go). On other systems, and on
// Linux with the udpd_portable build tag, a listener is one socket served
// by the portable worker (worker_portable.go): one datagram per read and
// write, with the same policy (gate.go), counters and drain, and no
// batching, pktinfo or kernel drop counts.
//
// On Linux the per-datagram path reads and writes in batches (recvmmsg/sendmmsg)
// into buffers allocated with the first datagram and then reused,
// uppercases ASCII in place, and allocates nothing; counters are per-worker
// atomics summed when read. It takes no lock, except the sharded one of the
// optional per-source rate limit. A Policy says what is never answered
// (loops, over-limit sources, replies too much larger than the request);
// besides it, each worker keeps a small fixed table of the replies it
// just sent, per peer, and stops answering a peer that keeps sending them
// back (an echo loop with another responder, on any ports: echoloop.go).
//
// On Linux the sockets stay out of the Go netpoller while their workers are
// busy (raw non-blocking reads, a blocking read in the kernel when the queue
// is empty, the netpoller only for long idle spells), and a worker that never
// finds its queue empty yields through the netpoller every few hundred
// datagrams: wait_linux.go. Replies of a batch to one destination leave as
// one UDP_SEGMENT message (gso_linux.go), and receives take UDP_GRO
// (gro_linux.go).
//
// A listener on a wildcard address (0.0.0.0, [::]) reads each datagram's
// destination from a control message (IP_PKTINFO, IPV6_RECVPKTINFO) and
// sends the reply from it, so replies leave from the address that was
// asked, and a datagram from its own destination is known for a loop.
//
// A Listener is closed by Shutdown, which answers what its sockets hold
// until a read finds them empty (up to a deadline) and then closes them;
// Serve then returns nil.
//
// listener never imports gRPC, protobuf or the admin API: it speaks Go types.
package listener
