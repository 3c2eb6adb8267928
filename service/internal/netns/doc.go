// Package netns gives tests a network namespace of their own, and sends
// datagrams with any source address into it, as an attacker with a raw
// socket would. Namespaces are named after the test process and a random
// suffix, so that tests running at the same time never meet, and are
// removed when the test ends. Only loopback and the documentation ranges
// belong in them. It is for tests only.
package netns
