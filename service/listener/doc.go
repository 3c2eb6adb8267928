// Package listener serves one UDP address: it binds a group of sockets that
// share the address (SO_REUSEPORT, one per worker), answers every datagram
// with its uppercase (package uppercase) to the sender's address, and counts
// what it does.
//
// The per-datagram path reads and writes in batches (recvmmsg/sendmmsg)
// into buffers allocated once, uppercases ASCII in place, takes no locks and
// allocates nothing: counters are per-worker atomics summed when read.
//
// A Listener is closed by Shutdown, which stops accepting new work, answers
// what is already queued on its sockets (up to a deadline) and then closes
// them; Serve then returns nil.
//
// listener never imports gRPC, protobuf or the admin API: it speaks Go types.
package listener
