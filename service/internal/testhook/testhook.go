// Package testhook holds switches that tests flip to put the daemon in a
// state it otherwise refuses to enter. They are for tests only: the
// daemon's code reads them and never sets them, and a test that sets one
// restores it (t.Cleanup) before it ends. Like grpc-go's internal test
// hooks, they live in an internal package, out of reach of other modules.
package testhook

import "sync/atomic"

// NoLoopGuards, while true, makes every listener made from then on answer
// datagrams that its loop guards would refuse: neither the exact guard
// (a datagram from the listener's own address) nor the echo detector
// stops it, so a listener sent one datagram from its own address answers
// itself for ever. A listener reads it once, when it makes its workers;
// what it read holds until the listener stops, and the datagram path
// pays nothing for it. Tests use it to keep a worker busy without pause
// (service/admin TestBusyWorkerDoesNotStallDaemon).
var NoLoopGuards atomic.Bool
