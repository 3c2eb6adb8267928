package listener

import (
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"time"
)

// The echo-loop rule. A loop between udpd and another echo- or
// uppercase-style responder (another udpd, an echo service, …) has one
// signature whatever the ports: every datagram the other side sends is
// byte-identical to a reply this listener just sent it, since the other
// side only sends back what it got. Clients do not do that many times in
// a row: the textbook client and `udpctl send` send what a user typed,
// and `udpctl bench` sends lower-case letters and gets upper-case ones.
//
// So a worker remembers, per peer (address and port) and reply, a hash of
// the replies it sent in the last echoWindow; a request that is one of
// them is an echo. A peer that sends echoLimit echoes in a row, each
// within echoWindow of the previous one, is not answered for
// echoBlockFor: none of its datagrams are, and each counts in
// LoopBlocked. Any request that is not an echo ends the run.
const (
	echoLimit    = 16
	echoWindow   = time.Second
	echoBlockFor = 10 * time.Second

	echoReplySlots = 4096 // recent replies, all peers (direct-mapped)
	echoPeerSlots  = 1024 // peers with a run of echoes or a block
)

// echoGuard is one worker's loop detector: only that worker uses it, so it
// takes no lock, and after its tables are made (with the first datagram)
// it allocates nothing. Both tables are direct-mapped by a keyed hash, so
// a colliding entry replaces the older one: a lost reply entry or run only
// delays detection, and a spray of sources cannot target a slot without
// knowing the worker's random seed.
type echoGuard struct {
	seed    maphash.Seed // for the hash of a whole payload
	k0, k1  uint64       // random keys of the slot hashes
	replies []echoReply
	peers   []echoPeer
}

type echoReply struct {
	key uint64 // slot hash of peer, length and first bytes; 0: empty
	sum uint64 // hash of the whole reply
	at  int64  // when it was sent
}

type echoPeer struct {
	key          uint64 // slot hash of the peer; 0: empty
	run          uint32 // echoes in a row
	last         int64  // time of the last echo
	blockedUntil int64
}

func (g *echoGuard) init() {
	g.seed = maphash.MakeSeed()
	var k [16]byte
	rand.Read(k[:])
	g.k0, g.k1 = binary.LittleEndian.Uint64(k[:]), binary.LittleEndian.Uint64(k[8:])
	g.replies = make([]echoReply, echoReplySlots)
	g.peers = make([]echoPeer, echoPeerSlots)
}

// mix is the finaliser of MurmurHash3: every input bit flips about half
// the output bits. Keyed with random keys, it spreads peers over the
// tables at the cost of a few multiplications.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// peer returns the slot hash of a peer (address and port); never 0.
func (g *echoGuard) peer(p netip.AddrPort) uint64 {
	if g.replies == nil {
		g.init()
	}
	a := p.Addr().As16()
	h := mix(binary.LittleEndian.Uint64(a[:8]) ^ g.k0)
	h = mix(h ^ binary.LittleEndian.Uint64(a[8:]) ^ g.k1)
	return mix(h^uint64(p.Port())) | 1
}

// replyKey hashes a peer's slot hash with the length and first bytes of a
// payload: it finds the slot of a reply cheaply, so that only a request
// that looks like one pays for hashing all its bytes. Never 0.
func (g *echoGuard) replyKey(pk uint64, b []byte) uint64 {
	var head [16]byte
	copy(head[:], b)
	h := mix(pk ^ uint64(len(b)) ^ g.k1)
	h = mix(h ^ binary.LittleEndian.Uint64(head[:8]))
	return mix(h^binary.LittleEndian.Uint64(head[8:])) | 1
}

// refuse reports whether the request req from the peer pk (see peer)
// must not be answered: the peer is blocked, or req is the echo that
// completes a loop. now is the listener's monotonic clock.
func (g *echoGuard) refuse(pk uint64, req []byte, now int64) bool {
	p := &g.peers[pk%echoPeerSlots]
	mine := p.key == pk
	if mine && now < p.blockedUntil {
		return true
	}
	rk := g.replyKey(pk, req)
	r := &g.replies[rk%echoReplySlots]
	if r.key != rk || now-r.at > int64(echoWindow) || r.sum != maphash.Bytes(g.seed, req) {
		if mine {
			p.run = 0 // not an echo: the run ends
		}
		return false
	}
	// An echo: this peer sent back a reply it just got.
	if !mine || now-p.last > int64(echoWindow) {
		*p = echoPeer{key: pk}
	}
	p.run++
	p.last = now
	if p.run < echoLimit {
		return false
	}
	p.run = 0
	p.blockedUntil = now + int64(echoBlockFor)
	return true
}

// sent remembers the reply sent to the peer pk.
func (g *echoGuard) sent(pk uint64, reply []byte, now int64) {
	rk := g.replyKey(pk, reply)
	g.replies[rk%echoReplySlots] = echoReply{key: rk, sum: maphash.Bytes(g.seed, reply), at: now}
}
