package bench

import (
	"math/rand/v2"
	"testing"
)

// TestShiftingWorkingSet checks the shift distribution: within a working
// set keys stay in [offset, offset+n), and each Period (over all
// connections) moves the offset on by a tenth of the key space, a measured
// run continuing where its warm-up stopped.
func TestShiftingWorkingSet(t *testing.T) {
	d, err := ParseDist("shift:0.99:1000")
	if err != nil || d.Kind != "shift" || d.S != 0.99 || d.Period != 1000 {
		t.Fatalf("ParseDist: %+v, %v", d, err)
	}
	for _, bad := range []string{"shift:0", "shift:0.99:0", "shift:0.99:x", "shift:1:2:3"} {
		if _, err := ParseDist(bad); err == nil {
			t.Errorf("ParseDist(%q) accepted", bad)
		}
	}
	const n, conns = 1000, 4
	g := newKeyGen(d, n, rand.New(rand.NewPCG(1, 2)), 0)
	g.shift = newShifter(d, conns)
	for epoch := range uint64(3) {
		for range d.Period / conns {
			if k := g.next(); k < epoch*n/10 || k >= epoch*n/10+n {
				t.Fatalf("epoch %d: key %d", epoch, k)
			}
		}
	}
	d.Start = 2 * d.Period // a measured run after two periods of warm-up
	if sh := newShifter(d, conns); sh.next(n) != 2*n/10 {
		t.Fatal("measured run does not continue the warm-up's shifts")
	}
}

// TestDefaultWorkloads checks the suite's key spaces: their data is
// keysPerMem times the memory, whatever the value sizes.
func TestDefaultWorkloads(t *testing.T) {
	ws := DefaultWorkloads(64, 4.6)
	if len(ws) != 5 {
		t.Fatalf("%d workloads", len(ws))
	}
	for _, w := range ws {
		avg := float64(w.Size+max(w.Size, w.SizeMax)) / 2
		if data := float64(w.Keys) * avg / (64 << 20); data < 4.5 || data > 4.7 {
			t.Errorf("%s: key data %.2f x -m", w.Name, data)
		}
	}
}
