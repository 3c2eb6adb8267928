// Command mangen writes the man pages of udpd (udpd.8) and of udpctl and
// each of its subcommands (udpctl.1, udpctl-listeners-start.1, …) into a
// directory, from the commands' own definitions, so that the pages say
// what --help says. make man and make install run it.
//
//	go run ./cmd/internal/mangen DIR
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/udpd/udpd/cmd/internal/buildinfo"
	"github.com/udpd/udpd/cmd/udpctl/cli"
	"github.com/udpd/udpd/cmd/udpd/daemon"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mangen DIR")
		os.Exit(2)
	}
	if err := generate(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "mangen: %v\n", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	source := "udpd " + buildinfo.Version()
	for _, p := range []struct {
		cmd     *cobra.Command
		section string
	}{
		{daemon.Command(), "8"},
		{cli.Command(), "1"},
	} {
		h := &doc.GenManHeader{Section: p.section, Source: source, Manual: "udpd manual"}
		if err := doc.GenManTree(p.cmd, h, dir); err != nil {
			return fmt.Errorf("man pages of %s: %w", p.cmd.Name(), err)
		}
	}
	return nil
}
