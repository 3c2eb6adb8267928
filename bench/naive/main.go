// Command naive is the textbook Go UDP uppercase server, the "naive Go loop"
// reference of bench/compare.sh: one ReadFromUDP, bytes.ToUpper and one
// WriteToUDP per datagram, on one socket.
//
//	go run ./bench/naive --listen 127.0.0.1:13002
//
// It prints "listening on ADDR" once bound (port 0 picks a free port) and
// runs until it is killed. It is a baseline, not a correct udpd: bytes.ToUpper
// uses Go's simple case mapping ("straße" stays "STRAßE") and turns bytes
// that are not valid UTF-8 into U+FFFD, and every reply allocates. Compare
// it with udpd on ASCII payloads only.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:12000", "UDP `host:port` to serve (port 0 picks a free port)")
	flag.Parse()

	addr, err := net.ResolveUDPAddr("udp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", conn.LocalAddr())

	buf := make([]byte, 65536)
	for {
		n, peer, err := conn.ReadFromUDP(buf)
		if err != nil {
			log.Print(err)
			continue
		}
		if _, err := conn.WriteToUDP(bytes.ToUpper(buf[:n]), peer); err != nil {
			log.Print(err)
		}
	}
}
