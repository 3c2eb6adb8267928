package loadgen

import "testing"

// noSegmentation turns UDP segmentation offload off until the returned
// func runs.
func noSegmentation() func() {
	segmentation = false
	return func() { segmentation = true }
}

// TestSegmentation: flows to a loopback server send with UDP_SEGMENT (the
// server side of it is TestRunCount: every datagram arrives on its own).
// Config.NoSegmentation (udpctl bench --segment=false) sends one datagram
// per message, like ordinary clients.
func TestSegmentation(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", upper, false)
	for _, off := range []bool{false, true} {
		cfg := config(s)
		cfg.Count = 1
		cfg.NoSegmentation = off
		cfg.setDefaults()
		p, err := newPayload(cfg.Payload, cfg.Size)
		if err != nil {
			t.Fatal(err)
		}
		f, err := newFlow(&run{cfg: cfg, payload: p})
		if err != nil {
			t.Fatal(err)
		}
		defer f.conn.Close()
		want := cfg.Window
		if off {
			want = 0
		}
		if f.io.seg != want {
			t.Errorf("NoSegmentation %v: a flow sends %d datagrams per message, want %d", off, f.io.seg, want)
		}
	}
}
