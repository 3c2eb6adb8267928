// Command udpctl sends datagrams to udpd and manages its listeners over the
// admin API. See README.md.
package main

import "github.com/udpd/udpd/cmd/udpctl/cli"

func main() { cli.Main() }
