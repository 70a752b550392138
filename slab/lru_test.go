package slab

import (
	"bytes"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// classStatsFor returns the stats of the class holding items of fillClass's
// shape with values of size bytes.
func classStatsFor(t *testing.T, s *Store, size int) ClassStats {
	t.Helper()
	id := s.classFor(s.layoutFor(len("k0000"), size, false)).id
	for _, c := range s.Classes() {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("class %d not in use", id)
	return ClassStats{}
}

// segOf returns the list holding key, or -1.
func segOf(s *Store, key string) int {
	st, _, tag := s.stripeFor([]byte(key))
	st.mu.Lock()
	defer st.mu.Unlock()
	_, h := s.find(st, tag, []byte(key))
	if h == 0 {
		return -1
	}
	return itemSeg(s.chunk(h))
}

func TestSegmentedFill(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionLRU})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	c := classStatsFor(t, s, size)
	hotMax := per * defaultHotPct / 100
	if c.NumberHot != hotMax || c.NumberWarm != 0 || c.NumberCold != per-hotMax || c.Items != per {
		t.Fatalf("after fill: hot %d warm %d cold %d items %d (per page %d)",
			c.NumberHot, c.NumberWarm, c.NumberCold, c.Items, per)
	}
	if c.MovesToCold != uint64(per-hotMax) {
		t.Fatalf("moves_to_cold %d", c.MovesToCold)
	}
	// The oldest items went to COLD, the newest stayed in HOT.
	if segOf(s, "k0") != segCold || segOf(s, "k"+strconv.Itoa(per-1)) != segHot {
		t.Fatalf("k0 in %d, newest in %d", segOf(s, "k0"), segOf(s, "k"+strconv.Itoa(per-1)))
	}
	checkStore(t, s)
}

func TestSegmentedActiveSurvivesEviction(t *testing.T) {
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionLRU})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	clk.advance(5 * time.Second)
	// k0 read twice (fetched, then ACTIVE); k1 read once (only fetched).
	for _, k := range []string{"k0", "k0", "k1"} {
		if _, _, ok := get(s, k); !ok {
			t.Fatalf("%s missing", k)
		}
	}
	c := classStatsFor(t, s, size)
	if c.HitsToCold != 3 || c.HitsToHot != 0 {
		t.Fatalf("hits_to_cold %d hits_to_hot %d", c.HitsToCold, c.HitsToHot)
	}
	fillClass(t, s, "n", 2, size)
	// k0 (active at the COLD tail) moved to WARM; k1 and k2 were evicted.
	if segOf(s, "k0") != segWarm {
		t.Fatalf("k0 in list %d, want WARM", segOf(s, "k0"))
	}
	for _, k := range []string{"k1", "k2"} {
		if _, _, ok := get(s, k); ok {
			t.Fatalf("%s not evicted", k)
		}
	}
	if _, _, ok := get(s, "k3"); !ok {
		t.Fatal("k3 evicted out of order")
	}
	c = classStatsFor(t, s, size)
	if c.Evicted != 2 || c.MovesToWarm != 1 || c.NumberWarm != 1 || c.EvictedActive != 0 {
		t.Fatalf("evicted %d moves_to_warm %d number_warm %d evicted_active %d",
			c.Evicted, c.MovesToWarm, c.NumberWarm, c.EvictedActive)
	}
	st := s.Stats()
	if st.Evictions != 2 || st.EvictedUnfetched != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkStore(t, s)
}

func TestSegmentedHotToWarm(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionLRU})
	const size = 900
	fillClass(t, s, "k", 10, size) // hot limit 2 of 10
	last := "k9"
	if segOf(s, last) != segHot {
		t.Fatalf("%s not in HOT", last)
	}
	get(s, last)
	get(s, last) // ACTIVE
	if c := classStatsFor(t, s, size); c.HitsToHot != 2 {
		t.Fatalf("hits_to_hot %d", c.HitsToHot)
	}
	// More stores push it to the HOT tail: active, it goes to WARM.
	fillClass(t, s, "n", 3, size)
	if segOf(s, last) != segWarm {
		t.Fatalf("%s in list %d, want WARM", last, segOf(s, last))
	}
	if c := classStatsFor(t, s, size); c.MovesToWarm != 1 {
		t.Fatalf("moves_to_warm %d", c.MovesToWarm)
	}
	checkStore(t, s)
}

func TestSegmentedWarmLimits(t *testing.T) {
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, WarmLRUPct: 10})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	// Make every COLD item active, then evict: they all flow to WARM,
	// which then sheds its inactive tail to COLD.
	clk.advance(time.Second)
	for i := 0; i < per; i++ {
		k := "k" + strconv.Itoa(i)
		if segOf(s, k) == segCold {
			get(s, k)
			get(s, k)
		}
	}
	fillClass(t, s, "n", per, size)
	c := classStatsFor(t, s, size)
	warmMax := c.Items * 10 / 100
	if c.NumberWarm > warmMax+1 || c.MovesToWarm == 0 || c.MovesToCold == 0 {
		t.Fatalf("warm %d (max %d) moves_to_warm %d moves_to_cold %d", c.NumberWarm, warmMax, c.MovesToWarm, c.MovesToCold)
	}
	// An active WARM tail is kept in WARM (moves_within_lru) when active
	// COLD items push WARM over its share.
	for _, p := range []string{"k", "n"} {
		for i := 0; i < per; i++ {
			k := p + strconv.Itoa(i)
			if segOf(s, k) >= segWarm {
				get(s, k)
				get(s, k)
			}
		}
	}
	fillClass(t, s, "m", per/2, size)
	if c := classStatsFor(t, s, size); c.MovesWithinLRU == 0 {
		t.Fatalf("moves_within_lru %d %+v", c.MovesWithinLRU, c)
	}
	checkStore(t, s)
}

func TestSegmentedAgeLimits(t *testing.T) {
	s, clk := newTestStore(t, Config{MemoryLimit: 8 << 20, Maintenance: -1, Eviction: EvictionLRU})
	const size = 900
	fillClass(t, s, "k", 50, size) // 10 in HOT, 40 in COLD
	clk.advance(100 * time.Second)
	// COLD tail age 100 s: HOT items idle > 20 s drop to COLD on the next
	// stores, though HOT is not over its share.
	fillClass(t, s, "n", 1, size)
	c := classStatsFor(t, s, size)
	if c.NumberHot >= 10 || c.AgeHot != 100 || c.OldestAge != 100 {
		t.Fatalf("hot %d age_hot %d age %d", c.NumberHot, c.AgeHot, c.OldestAge)
	}
	checkStore(t, s)
}

func TestFlatLRUMode(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionLRU})
	if !s.LRUSegmented() || s.Eviction() != EvictionLRU {
		t.Fatal("eviction=lru is not the segmented LRU")
	}
	fillClass(t, s, "k", 10, 900)
	if !s.SetLRUSegmented(false) || s.LRUSegmented() {
		t.Fatal("lru mode flat")
	}
	// Flat: new items go to COLD; eviction still drains HOT when COLD
	// runs dry.
	fillClass(t, s, "n", 2*perPage(s, 900), 900)
	if segOf(s, "n0") != segCold && segOf(s, "n0") != -1 {
		t.Fatal("flat LRU stored into HOT")
	}
	checkStore(t, s)
	s2, _ := newTestStore(t, Config{NoLRUMaintainer: true})
	if s2.LRUSegmented() {
		t.Fatal("no_lru_maintainer kept the segmented LRU")
	}
}

func TestLRUTune(t *testing.T) {
	for _, cfg := range []Config{
		{HotLRUPct: 50, WarmLRUPct: 40},
		{HotMaxFactor: -1},
		{Eviction: "arc"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	s, _ := newTestStore(t, Config{HotLRUPct: 30, WarmLRUPct: 50, HotMaxFactor: 0.5, WarmMaxFactor: 3})
	if h, w, hf, wf := s.LRUTune(); h != 30 || w != 50 || hf != 0.5 || wf != 3 {
		t.Fatalf("tune %d %d %v %v", h, w, hf, wf)
	}
	if s.SetLRUTune(40, 41, 1, 1) == nil || s.SetLRUTune(10, 10, 0, 1) == nil {
		t.Fatal("bad tune accepted")
	}
	if err := s.SetLRUTune(10, 10, 1, 1); err != nil {
		t.Fatal(err)
	}
}

// TestS3FIFO runs S3-FIFO's transitions under both of its forms: over
// LRU lists (s3fifo) and over CLOCK's link-free items (s3clock).
func TestS3FIFO(t *testing.T) {
	for _, ev := range []string{EvictionS3FIFO, EvictionS3Clock} {
		t.Run(ev, func(t *testing.T) { testS3FIFO(t, ev) })
	}
}

func testS3FIFO(t *testing.T, ev string) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: ev})
	if s.Eviction() != ev || s.SetLRUSegmented(true) {
		t.Fatal("eviction policy")
	}
	const size = 900
	val := string(bytes.Repeat([]byte("v"), size))
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	// Filling (no eviction yet): the small FIFO keeps its 10% of the
	// items, the rest go to main.
	// Under s3clock main takes them all (the ring costs nothing before
	// evictions), and the keys stored once evictions began enter small.
	c := classStatsFor(t, s, size)
	wantSmall, prefix := (per*s3SmallPct+99)/100, "k"
	if ev == EvictionS3Clock {
		wantSmall, prefix = 0, "p"
	}
	if c.NumberHot != wantSmall || c.NumberHot+c.NumberCold != per {
		t.Fatalf("fill: small %d main %d", c.NumberHot, c.NumberCold)
	}
	if ev == EvictionS3Clock {
		fillClass(t, s, prefix, per/5, size)
	}
	var small []string // oldest first
	for i := 0; i < per; i++ {
		if k := prefix + strconv.Itoa(i); segOf(s, k) == segHot {
			small = append(small, k)
		}
	}
	a, b := small[0], small[1]
	get(s, a) // read once: moves to main when it reaches the small tail
	n := 0
	for segOf(s, a) == segHot {
		set(t, s, "n"+strconv.Itoa(n), val, nil)
		n++
	}
	if segOf(s, a) != segCold {
		t.Fatalf("%s in list %d, want main", a, segOf(s, a))
	}
	if c := classStatsFor(t, s, size); c.MovesToCold != 1 {
		t.Fatalf("moves_to_cold %d", c.MovesToCold)
	}
	// b, unread, is evicted from small into the ghost ...
	for segOf(s, b) != -1 {
		set(t, s, "n"+strconv.Itoa(n), val, nil)
		n++
	}
	if segOf(s, a) != segCold {
		t.Fatalf("%s evicted", a)
	}
	// ... and stored again, it enters main.
	set(t, s, b, val, nil)
	if segOf(s, b) != segCold {
		t.Fatalf("ghost hit %s in list %d, want main", b, segOf(s, b))
	}
	// A key never evicted enters small.
	set(t, s, "fresh", val, nil)
	if segOf(s, "fresh") != segHot {
		t.Fatal("fresh key not in small")
	}
	checkStore(t, s)
}

func TestS3FIFOMainReinsertion(t *testing.T) {
	for _, ev := range []string{EvictionS3FIFO, EvictionS3Clock} {
		t.Run(ev, func(t *testing.T) { testS3FIFOMainReinsertion(t, ev) })
	}
}

func testS3FIFOMainReinsertion(t *testing.T, ev string) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: ev})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	// Read everything once: the whole small FIFO drains into main.
	for i := 0; i < per; i++ {
		get(s, "k"+strconv.Itoa(i))
	}
	get(s, "k0")
	get(s, "k0")
	fillClass(t, s, "n", per, size)
	c := classStatsFor(t, s, size)
	// (s3clock fills main alone: nothing moves from small before evictions.)
	if c.MovesToCold == 0 && ev == EvictionS3FIFO || c.MovesWithinLRU == 0 || c.Evicted == 0 {
		t.Fatalf("moves_to_cold %d reinsertions %d evicted %d", c.MovesToCold, c.MovesWithinLRU, c.Evicted)
	}
	// k0 had two more hits than the rest of main: it outlives them.
	if _, _, ok := get(s, "k0"); !ok {
		t.Fatal("frequent item evicted")
	}
	checkStore(t, s)
}

// TestLRUPoliciesConcurrent runs a lazy-loading mix with page moves and
// crawls under every policy (run with -race).
func TestLRUPoliciesConcurrent(t *testing.T) {
	for _, cfg := range []Config{
		{MemoryLimit: 4 << 20, Maintenance: -1},
		{MemoryLimit: 4 << 20, Maintenance: -1, NoLRUMaintainer: true},
		{MemoryLimit: 4 << 20, Maintenance: -1, Eviction: EvictionS3FIFO},
		{MemoryLimit: 4 << 20, Maintenance: -1, Eviction: EvictionClock},
	} {
		s, clk := newTestStore(t, cfg)
		var wg sync.WaitGroup
		ops := 4000
		if testing.Short() {
			ops = 1500
		}
		for g := 0; g < 6; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(int64(g)))
				var buf []byte
				val := make([]byte, 2000)
				for i := 0; i < ops; i++ {
					key := []byte("k" + strconv.Itoa(int(rng.ExpFloat64()*800)))
					var ok bool
					buf, _, ok = s.Get(buf[:0], key, nil)
					switch {
					case !ok:
						s.Set(key, val[:100+rng.Intn(len(val)-100)], &SetOptions{Exptime: clk.sec() + int64(rng.Intn(5))})
					case rng.Intn(20) == 0:
						s.Delete(key, 0, false, 0)
					}
					if g == 0 && i%500 == 0 {
						clk.advance(time.Second)
						s.Reassign(-1, 1+rng.Intn(s.NumClasses()))
						s.Classes()
					}
					if g == 1 && i%700 == 0 {
						s.crawl(s.classes)
						s.DumpClass(1+rng.Intn(8), 0, true, true, func(*DumpItem) bool { return true }, nil)
					}
				}
			}(g)
		}
		wg.Wait()
		for s.mv.running.Load() {
			time.Sleep(time.Millisecond)
		}
		checkStore(t, s)
	}
}

// s3State returns key's list and hit counter (-1, 0 when absent).
func s3State(s *Store, key string) (seg, hits int) {
	st, _, tag := s.stripeFor([]byte(key))
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, h := s.find(st, tag, []byte(key)); h != 0 {
		b := s.chunk(h)
		return itemSeg(b), itemHits(b)
	}
	return -1, 0
}

// setS3Hits sets key's hit counter.
func setS3Hits(t *testing.T, s *Store, key string, n int) {
	t.Helper()
	st, _, tag := s.stripeFor([]byte(key))
	st.mu.Lock()
	defer st.mu.Unlock()
	_, h := s.find(st, tag, []byte(key))
	if h == 0 {
		t.Fatalf("%s missing", key)
	}
	setHits(s.chunk(h), n)
}

// tailKey returns the key at the tail of list seg of the class holding
// 900-byte fillClass items.
func tailKey(s *Store, seg int) string {
	c := s.classFor(s.layoutFor(len("k0000"), 900, false))
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.lru[seg].tail; h != 0 {
		return string(itemKey(s.chunk(h)))
	}
	return ""
}

// inGhost reports (and forgets) whether key's hash is in the ghost.
func inGhost(s *Store, key string) bool {
	_, _, tag := s.stripeFor([]byte(key))
	hit, _ := s.ghost.take(tag)
	return hit
}

// TestS3FIFOReadBumpsFrequency: every read counts, up to 3, with no
// 60-second rate limit (unlike the LRU's access time).
func TestS3FIFOReadBumpsFrequency(t *testing.T) {
	for _, step := range []time.Duration{0, time.Second, 2 * updateInterval * time.Second} {
		s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionS3FIFO})
		fillClass(t, s, "k", 3, 900)
		for i, want := range []int{1, 2, 3, 3, 3} {
			clk.advance(step)
			if _, _, ok := get(s, "k1"); !ok {
				t.Fatal("k1 missing")
			}
			if _, hits := s3State(s, "k1"); hits != want {
				t.Fatalf("step %v: after %d reads freq %d, want %d", step, i+1, hits, want)
			}
		}
		// A get that does not bump (meta mg without bump) leaves it.
		s.Get(nil, []byte("k2"), &GetOptions{NoBump: true})
		if _, hits := s3State(s, "k2"); hits != 0 {
			t.Fatalf("NoBump read counted: freq %d", hits)
		}
	}
}

// TestS3FIFOTailTransitions drives one eviction step at the tail of each
// FIFO for each frequency.
func TestS3FIFOTailTransitions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		seg, hits int
		wantSeg   int // -1: evicted
		wantHits  int
		wantGhost bool
	}{
		{"small unread: evicted to the ghost", segHot, 0, -1, 0, true},
		{"small read once: to main, count kept", segHot, 1, segCold, 1, false},
		{"small read 3 times: to main, count kept", segHot, 3, segCold, 3, false},
		{"main unread: evicted, not to the ghost", segCold, 0, -1, 0, false},
		{"main read once: reinserted, count 0", segCold, 1, segCold, 0, false},
		{"main read 3 times: reinserted, count 2", segCold, 3, segCold, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionS3FIFO})
			fillClass(t, s, "k", perPage(s, 900), 900)
			key := tailKey(s, tc.seg)
			setS3Hits(t, s, key, tc.hits)
			c := s.classFor(s.layoutFor(len("k0000"), 900, false))
			now, fseq := s.now()
			c.mu.Lock()
			r := s.s3Step(c, tc.seg, -1, now, fseq, false)
			head := c.lru[segCold].head
			c.mu.Unlock()
			want := stepMoved
			if tc.wantSeg < 0 {
				want = stepFreed
			}
			if r != want {
				t.Fatalf("s3Step = %d, want %d", r, want)
			}
			seg, hits := s3State(s, key)
			if seg != tc.wantSeg || hits != tc.wantHits {
				t.Fatalf("%s: list %d freq %d, want %d and %d", key, seg, hits, tc.wantSeg, tc.wantHits)
			}
			if seg == segCold && string(itemKey(s.chunk(head))) != key {
				t.Fatalf("%s not at the main head", key)
			}
			if g := inGhost(s, key); g != tc.wantGhost {
				t.Fatalf("in ghost %v, want %v", g, tc.wantGhost)
			}
			checkStore(t, s)
		})
	}
}

// TestS3FIFOGhostHit: a key evicted from small comes back into main with
// frequency 0, and its ghost entry is used up.
func TestS3FIFOGhostHit(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: EvictionS3FIFO})
	per := perPage(s, 900)
	fillClass(t, s, "k", per, 900)
	key := tailKey(s, segHot)
	for i := 0; segOf(s, key) != -1; i++ {
		set(t, s, "n"+strconv.Itoa(i), strings.Repeat("v", 900), nil)
	}
	set(t, s, key, strings.Repeat("v", 900), nil)
	if seg, hits := s3State(s, key); seg != segCold || hits != 0 {
		t.Fatalf("ghost hit: list %d freq %d, want main and 0", seg, hits)
	}
	if inGhost(s, key) {
		t.Fatal("ghost entry not used up")
	}
	checkStore(t, s)
}

// TestReplaceKeepsS3State: storing a cached key again keeps its FIFO and
// frequency under S3-FIFO; the segmented LRU still puts it in HOT.
func TestReplaceKeepsS3State(t *testing.T) {
	for _, tc := range []struct {
		name      string
		eviction  string
		seg, hits int
		wantSeg   int
		wantHits  int
	}{
		{"s3fifo small unread", EvictionS3FIFO, segHot, 0, segHot, 0},
		{"s3fifo small read", EvictionS3FIFO, segHot, 2, segHot, 2},
		{"s3fifo main unread", EvictionS3FIFO, segCold, 0, segCold, 0},
		{"s3fifo main read", EvictionS3FIFO, segCold, 3, segCold, 3},
		{"segmented cold active", EvictionLRU, segCold, 1, segHot, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, Eviction: tc.eviction})
			fillClass(t, s, "k", 20, 900)
			key := tailKey(s, tc.seg)
			setS3Hits(t, s, key, tc.hits)
			set(t, s, key, strings.Repeat("w", 900), nil)
			if seg, hits := s3State(s, key); seg != tc.wantSeg || hits != tc.wantHits {
				t.Fatalf("%s after set: list %d freq %d, want %d and %d", key, seg, hits, tc.wantSeg, tc.wantHits)
			}
			// So does append's new, larger item.
			if r, _ := s.Set([]byte(key), []byte("x"), &SetOptions{Mode: ModeAppend}); r != Stored {
				t.Fatalf("append: %v", r)
			}
			if seg, hits := s3State(s, key); seg != tc.wantSeg || hits != tc.wantHits {
				t.Fatalf("%s after append: list %d freq %d, want %d and %d", key, seg, hits, tc.wantSeg, tc.wantHits)
			}
			checkStore(t, s)
		})
	}
}

// TestS3ClockRing checks s3clock's small-queue ring against what makes its
// entries stale: deletes, replacements (the replacement keeps its place in
// small), page moves and endless overwrites, which must not grow it.
func TestS3ClockRing(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 2 << 20, Maintenance: -1, Eviction: EvictionS3Clock})
	const size = 900
	val := string(bytes.Repeat([]byte("v"), size))
	per := perPage(s, size)
	fillClass(t, s, "k", 2*per, size) // two pages, evictions started
	fillClass(t, s, "n", per/2, size)
	var small []string
	for i := range per / 2 {
		if k := "n" + strconv.Itoa(i); segOf(s, k) == segHot {
			small = append(small, k)
		}
	}
	if len(small) < 4 {
		t.Fatalf("only %d new items in small", len(small))
	}
	s.Delete([]byte(small[0]), 0, false, 0)
	set(t, s, small[1], val+"x", nil) // replaced: a new chunk, still small
	if segOf(s, small[1]) != segHot {
		t.Fatalf("replaced small item in list %d", segOf(s, small[1]))
	}
	checkStore(t, s)
	// Overwrites of the same small keys, with no eviction needed: the
	// ring's stale entries are dropped, it does not grow with them.
	for i := range 20 * smallCompactSlack {
		set(t, s, small[2+i%2], val, nil)
	}
	checkStore(t, s)
	// A page move copies small items: the copies keep their place.
	c := s.classFor(s.layoutFor(len("k0000"), size, false))
	if !s.movePage(c.id, 0) {
		t.Fatal("page not moved")
	}
	checkStore(t, s)
	// Eviction goes on through the ring: every unread item leaves.
	fillClass(t, s, "m", 3*per, size)
	checkStore(t, s)
	if st := s.Stats(); st.Evictions == 0 {
		t.Fatal("no evictions")
	}
}

// TestS3ClockScanResistance stores a burst of one-off keys twice the
// cache's size into a full cache whose items were all read: under s3clock
// the burst leaves through the small queue and 90% of the read items stay
// (the segmented LRU keeps fewer: the burst pushes them through COLD).
func TestS3ClockScanResistance(t *testing.T) {
	const size = 900
	kept, hot := map[string]int{}, 0
	for _, ev := range []string{EvictionS3Clock, EvictionLRU} {
		s, clk := newTestStore(t, Config{MemoryLimit: 4 << 20, Maintenance: -1, Eviction: ev})
		per := perPage(s, size)
		hot = 3 * per
		fillClass(t, s, "h", hot, size)
		for range 2 {
			for i := range hot {
				get(s, "h"+strconv.Itoa(i))
			}
			clk.advance(2 * updateInterval * time.Second)
		}
		fillClass(t, s, "scan", 8*per, size)
		for i := range hot {
			if _, _, ok := get(s, "h"+strconv.Itoa(i)); ok {
				kept[ev]++
			}
		}
		checkStore(t, s)
	}
	if kept[EvictionS3Clock]*10 < 9*hot || kept[EvictionS3Clock] <= kept[EvictionLRU] {
		t.Fatalf("hot items kept after a scan: %v", kept)
	}
	t.Logf("hot items kept after a scan: %v", kept)
}

// TestGhostAdapt checks s3clock's small queue share: a ghost hit on a key
// small evicted grows it by an item's worth, one on a key main evicted
// shrinks it by 1.5, within [s3SmallPct, s3SmallMaxPct]; the ghost tells
// the two apart.
func TestGhostAdapt(t *testing.T) {
	var g ghost
	g.adaptive = true
	g.items.Store(1000) // an item is 1000 ppm
	g.add(1)
	g.addFrom(2, 1)
	if hit, main := g.take(1); !hit || main {
		t.Fatalf("small's eviction: hit %v main %v", hit, main)
	}
	if hit, main := g.take(2); !hit || !main {
		t.Fatalf("main's eviction: hit %v main %v", hit, main)
	}
	if hit, _ := g.take(2); hit {
		t.Fatal("ghost entry not used up")
	}
	base := int64(s3SmallPct * 10000)
	if got := g.smallShare(); got != base {
		t.Fatalf("initial share %d, want %d", got, base)
	}
	g.adapt(false)
	g.adapt(false)
	if got := g.smallShare(); got != base+2000 {
		t.Fatalf("after two small ghost hits %d, want %d", got, base+2000)
	}
	g.adapt(true)
	if got := g.smallShare(); got != base+500 {
		t.Fatalf("after a main ghost hit %d, want %d", got, base+500)
	}
	for range 10 {
		g.adapt(true)
	}
	if got := g.smallShare(); got != base {
		t.Fatalf("share %d below its least %d", got, base)
	}
	for range 100000 {
		g.adapt(false)
	}
	if got := g.smallShare(); got != s3SmallMaxPct*10000 {
		t.Fatalf("share %d above its most %d", got, s3SmallMaxPct*10000)
	}
	g.adaptive = false
	g.small.Store(0)
	g.adapt(false)
	if got := g.smallShare(); got != base {
		t.Fatalf("s3fifo's share moved to %d", got)
	}
}

// TestS3ClockShift stores new keys, twice the cache's size, into a full
// cache whose items were all read but are read no more (a working set that
// moved on). With small's share at its least they leave through small, as
// a scan would; once the share is above it (keys small evicted came back,
// ghost.adapt), main's hand moves with small's steps and evicts
// yesterday's keys, until small holds its most share of the items.
func TestS3ClockShift(t *testing.T) {
	const size = 900
	val := string(bytes.Repeat([]byte("v"), size))
	var old, kept [2]int
	for i, share := range []int64{0, 20 * 10000} {
		s, clk := newTestStore(t, Config{MemoryLimit: 4 << 20, Maintenance: -1, Eviction: EvictionS3Clock})
		per := perPage(s, size)
		old[i] = 3 * per
		fillClass(t, s, "old", old[i], size)
		for k := range old[i] {
			get(s, "old"+strconv.Itoa(k))
		}
		clk.advance(2 * updateInterval * time.Second)
		for k := range 8 * per {
			s.ghost.small.Store(share) // pinned: a false ghost hit (16-bit fingerprints) would move it
			set(t, s, "new"+strconv.Itoa(k), val, nil)
		}
		for k := range old[i] {
			if _, _, ok := get(s, "old"+strconv.Itoa(k)); ok {
				kept[i]++
			}
		}
		c := s.classFor(s.layoutFor(len("new0000"), size, false))
		c.mu.Lock()
		small, items := c.lru[segHot].n, c.items
		c.mu.Unlock()
		if small*100 > items*s3SmallMaxPct+100 {
			t.Fatalf("small holds %d of %d items", small, items)
		}
		checkStore(t, s)
	}
	t.Logf("of %d unread old items, kept %d (share at its least), %d (20%%)", old[0], kept[0], kept[1])
	if kept[0]*10 < 9*old[0] || kept[1]*10 > 7*kept[0] {
		t.Fatalf("old items kept: %v of %v", kept, old)
	}
}
