package slab

import (
	"strconv"
	"testing"
	"time"
)

func TestClockLayout(t *testing.T) {
	clock, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Eviction: EvictionClock})
	lists, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Eviction: EvictionLRU})
	for _, tc := range []struct {
		name       string
		s          *Store
		vlen       int
		total      int
		links, ext bool
		firstChunk int
	}{
		{"clock small", clock, 100, hdrSize + 5 + 100, false, false, 72},
		// Too much slack in its class (2320-byte chunks): length stored.
		{"clock coarse class", clock, 1860 - hdrSize - 5, 1860 + 4, false, true, 72},
		{"clock half page", clock, 1<<19 - hdrSize - 5, 1 << 19, false, false, 72},
		{"clock last class", clock, 1<<19 - hdrSize - 4, 1<<19 + 1 + 4 + linkBytes, true, true, 72},
		{"lists small", lists, 100, hdrSize + linkBytes + 5 + 100, true, false, 80},
	} {
		l := tc.s.layoutFor(5, tc.vlen, false)
		if l.total != tc.total || (l.linkOff != 0) != tc.links || l.ext != tc.ext {
			t.Errorf("%s: total %d links at %d ext %v, want %d, links %v ext %v", tc.name, l.total, l.linkOff, l.ext, tc.total, tc.links, tc.ext)
		}
		if got := tc.s.classes[0].size; got != tc.firstChunk {
			t.Errorf("%s: smallest chunk %d, want %d", tc.name, got, tc.firstChunk)
		}
	}
}

// TestClockSecondChance follows the hand through one full page of a
// class: read items are passed over (their count decremented), unread ones
// evicted in page order.
func TestClockSecondChance(t *testing.T) {
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionClock})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	clk.advance(30 * time.Second)
	// stats items "age": the item the hand considers next.
	if c := classStatsFor(t, s, size); c.OldestAge != 30 {
		t.Fatalf("age %d, want 30", c.OldestAge)
	}
	for i := range 10 {
		get(s, "k"+strconv.Itoa(i))
	}
	get(s, "k5")
	get(s, "k5")
	readSurvive := func(when string) {
		t.Helper()
		for i := range 10 {
			if _, _, ok := get(s, "k"+strconv.Itoa(i)); !ok {
				t.Fatalf("read item k%d evicted %s", i, when)
			}
		}
	}
	fillClass(t, s, "n", 1, size)
	if _, _, ok := get(s, "k10"); ok {
		t.Fatal("k10, the first unread item after the hand, survived")
	}
	readSurvive("on the first eviction")
	if c := classStatsFor(t, s, size); c.Evicted != 1 || c.EvictedUnfetched != 1 || c.Items != per || c.NumberCold != per {
		t.Fatalf("after one eviction: %+v", c)
	}
	// The rest of the page goes, then the hand wraps around: k0..k9 were
	// read once more above (count 1 again) and pass; n0, unread, goes.
	fillClass(t, s, "m", per-11, size)
	fillClass(t, s, "x", 1, size)
	if _, _, ok := get(s, "n0"); ok {
		t.Fatal("unread n0 survived the second sweep")
	}
	readSurvive("on the second sweep")
	checkStore(t, s)
}

// TestClockLastClassFIFO: items over half a page keep a list under CLOCK
// and are evicted oldest first, read ones getting a second chance.
func TestClockLastClassFIFO(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 2 << 20, Maintenance: -1, Eviction: EvictionClock, MaxItemSize: 3 << 20})
	big := string(make([]byte, 600<<10))
	set(t, s, "a", big, nil)
	set(t, s, "b", big, nil)
	get(s, "a")
	set(t, s, "c", big, nil)
	if _, _, ok := get(s, "b"); ok {
		t.Fatal("b, unread and oldest after a's second chance, survived")
	}
	if _, _, ok := get(s, "a"); !ok {
		t.Fatal("read item a evicted")
	}
	checkStore(t, s)
}
