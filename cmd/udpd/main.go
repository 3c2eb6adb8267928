// Command udpd serves UDP listeners that answer each datagram with its
// uppercase, managed at run time over a gRPC admin API. See README.md.
package main

import "github.com/udpd/udpd/cmd/udpd/daemon"

func main() { daemon.Main() }
