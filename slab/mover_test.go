package slab

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func classID(s *Store, size int) int {
	return s.classFor(s.layoutFor(8, size, false)).id
}

func classInfo(s *Store, id int) ClassStats {
	for _, cs := range s.Classes() {
		if cs.ID == id {
			return cs
		}
	}
	return ClassStats{ID: id}
}

func waitMove(t *testing.T, s *Store) {
	t.Helper()
	for i := 0; s.mv.running.Load(); i++ {
		if i > 5000 {
			t.Fatal("reassign did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

// checkStore verifies the class and index invariants: every LRU item is
// indexed under its key, counts agree and free lists hold free chunks.
// checkSmallRing checks s3clock's small queue of class c (c.mu held):
// every small item has an entry in the ring, the count of small items is
// right, and the compacted ring holds little more than them.
func checkSmallRing(t *testing.T, s *Store, c *class, pt *pageTable) {
	t.Helper()
	inRing := map[uint32]bool{}
	for i := range c.small.n {
		inRing[uint32(c.small.peek(i)>>32)] = true
	}
	small := 0
	for pg, ci := range pt.cls {
		if pg == 0 || int(ci) != c.id-1 {
			continue
		}
		for i := range s.carved(c, uint32(pg)) {
			h := uint32(pg)<<s.chunkBits | uint32(i)
			if b := s.chunk(h); isItem(b) && itemSeg(b) == segHot {
				small++
				if !inRing[h] {
					t.Errorf("class %d: small item %x not in the ring", c.id, h)
				}
			}
		}
	}
	if small != c.lru[segHot].n {
		t.Errorf("class %d: %d small items, %d counted", c.id, small, c.lru[segHot].n)
	}
	// Entries pile up between compactions; compacted, what is left is
	// the small items' (and, rarely, a main item's of the same key).
	s.smallCompact(c)
	if c.small.n > small+small/10+16 {
		t.Errorf("class %d: ring of %d entries for %d small items", c.id, c.small.n, small)
	}
}

func checkStore(t *testing.T, s *Store) {
	t.Helper()
	indexed := 0
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		for _, h := range st.hs {
			if h != 0 {
				indexed++
			}
		}
		st.mu.Unlock()
	}
	items := 0
	pt := s.pt.Load()
	for _, c := range s.classes {
		c.mu.Lock()
		n := 0
		for pg, ci := range pt.cls {
			if c.links || pg == 0 || int(ci) != c.id-1 {
				continue
			}
			for i := range s.carved(c, uint32(pg)) {
				if isItem(s.chunk(uint32(pg)<<s.chunkBits | uint32(i))) {
					n++
				}
			}
		}
		for seg := range nLists {
			if !c.links {
				break
			}
			ln, prev := 0, uint32(0)
			for h := c.lru[seg].head; h != 0; h = lruNext(s.chunk(h)) {
				if int(pt.cls[h>>s.chunkBits]) != c.id-1 {
					t.Errorf("class %d: item on a page of class %d", c.id, pt.cls[h>>s.chunkBits]+1)
				}
				if lruPrev(s.chunk(h)) != prev {
					t.Errorf("class %d list %d: broken prev link at %x", c.id, seg, h)
				}
				prev = h
				ln++
			}
			if prev != c.lru[seg].tail || ln != c.lru[seg].n {
				t.Errorf("class %d list %d: tail %x (want %x), %d items linked, %d counted",
					c.id, seg, c.lru[seg].tail, prev, ln, c.lru[seg].n)
			}
			n += ln
		}
		if n != c.items {
			t.Errorf("class %d: %d items linked, %d counted", c.id, n, c.items)
		}
		if !c.links && s.s3 {
			checkSmallRing(t, s, c, pt)
		}
		for h := c.free; h != 0; h = freeNext(s.chunk(h)) {
			if !isFree(s.chunk(h)) || int(pt.cls[h>>s.chunkBits]) != c.id-1 {
				t.Errorf("class %d: bad free chunk %x", c.id, h)
				break
			}
		}
		pages := 0
		for _, ci := range pt.cls[1:] {
			if int(ci) == c.id-1 {
				pages++
			}
		}
		if pages != c.pages {
			t.Errorf("class %d: %d pages in the table, %d counted", c.id, pages, c.pages)
		}
		items += n
		c.mu.Unlock()
	}
	if items != indexed {
		t.Errorf("%d items in LRUs, %d indexed", items, indexed)
	}
}

func TestReassign(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 8 << 20, Maintenance: -1, Automove: AutomoveDisabled})
	small := strings.Repeat("s", 100)
	for i := 0; i < 200000; i++ {
		set(t, s, fmt.Sprintf("s%d", i), small, nil)
	}
	src := classID(s, 100)
	dst := classID(s, 10000)
	before := classInfo(s, src)
	if before.TotalPages < 3 {
		t.Fatalf("class %d has %d pages", src, before.TotalPages)
	}
	if r := s.Reassign(src, src); r != ReassignSame {
		t.Fatalf("same: %v", r)
	}
	if r := s.Reassign(src, len(s.classes)+1); r != ReassignBadClass {
		t.Fatalf("bad: %v", r)
	}
	if r := s.Reassign(dst, src); r != ReassignNoSpare {
		t.Fatalf("nospare: %v", r)
	}
	if r := s.Reassign(0, dst); r != ReassignNoSpare {
		t.Fatalf("nospare pool: %v", r)
	}
	if r := s.Reassign(src, dst); r != ReassignOK {
		t.Fatalf("reassign: %v", r)
	}
	waitMove(t, s)
	after := classInfo(s, src)
	if after.TotalPages != before.TotalPages-1 || classInfo(s, dst).TotalPages != 1 {
		t.Fatalf("pages: src %d -> %d, dst %d", before.TotalPages, after.TotalPages, classInfo(s, dst).TotalPages)
	}
	st := s.Stats()
	if st.SlabsMoved != 1 || st.SlabReassignEvictionsNomem == 0 {
		t.Fatalf("stats %+v", st)
	}
	checkStore(t, s)
	// The moved page stores 10 KB values past the budget.
	big := strings.Repeat("B", 10000)
	for i := 0; i < 50; i++ {
		set(t, s, fmt.Sprintf("b%d", i), big, nil)
	}
	if v, _, ok := get(s, "b49"); !ok || v != big {
		t.Fatal("big value lost")
	}
	// To the pool and back.
	if r := s.Reassign(src, 0); r != ReassignOK {
		t.Fatalf("to pool: %v", r)
	}
	waitMove(t, s)
	if s.Stats().SlabGlobalPagePool != 1 {
		t.Fatal("page not in pool")
	}
	for i := 50; i < 200; i++ { // the 10 KB class takes the pool page
		set(t, s, fmt.Sprintf("b%d", i), big, nil)
	}
	if s.Stats().SlabGlobalPagePool != 0 {
		t.Fatal("pool page not taken")
	}
	checkStore(t, s)
	// Surviving small items still read back correctly.
	hits := 0
	for i := 0; i < 200000; i++ {
		if v, _, ok := get(s, fmt.Sprintf("s%d", i)); ok {
			if v != small {
				t.Fatalf("s%d corrupt", i)
			}
			hits++
		}
	}
	if hits == 0 {
		t.Fatal("no small item survived")
	}
}

func TestReassignRescues(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 16 << 20, Maintenance: -1, Automove: AutomoveDisabled})
	v := strings.Repeat("r", 100)
	id := classID(s, 100)
	per := s.classes[id-1].perPage
	n := per * 3
	for i := 0; i < n; i++ {
		set(t, s, fmt.Sprintf("k%d", i), v, nil)
	}
	// Delete two thirds, spread over all pages: the rest fits elsewhere.
	for i := 0; i < n; i++ {
		if i%3 != 0 {
			s.Delete([]byte(fmt.Sprintf("k%d", i)), 0, false, 0)
		}
	}
	if !s.movePage(id, 0) {
		t.Fatal("move failed")
	}
	st := s.Stats()
	if st.SlabReassignEvictionsNomem != 0 || st.SlabReassignRescues == 0 {
		t.Fatalf("want rescues only: %+v", st)
	}
	for i := 0; i < n; i += 3 {
		if got, _, ok := get(s, fmt.Sprintf("k%d", i)); !ok || got != v {
			t.Fatalf("k%d lost after rescue", i)
		}
	}
	checkStore(t, s)
}

func TestReassignLargeItems(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 16 << 20, MaxItemSize: 4 << 20, Maintenance: -1, Automove: AutomoveDisabled})
	big := bytes.Repeat([]byte("L"), 3<<20) // chained over 4 full pages
	for i := 0; i < 3; i++ {
		if r, _ := s.Set([]byte(fmt.Sprint("L", i)), big, nil); r != Stored {
			t.Fatal(r)
		}
	}
	last := len(s.classes)
	for s.movePage(last, 0) {
		checkStore(t, s)
	}
	if classInfo(s, last).TotalPages != 1 {
		t.Fatalf("pages left: %d", classInfo(s, last).TotalPages)
	}
	for i := 0; i < 3; i++ {
		v, _, ok := s.Get(nil, []byte(fmt.Sprint("L", i)), nil)
		if ok {
			t.Fatalf("L%d survived its pages (%d bytes)", i, len(v))
		}
	}
}

// TestReassignConcurrent moves pages back and forth while clients read,
// write and delete in both classes. Run with -race.
func TestReassignConcurrent(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 8 << 20, Maintenance: -1, Automove: AutomoveDisabled})
	a, b := classID(s, 100), classID(s, 3000)
	va, vb := strings.Repeat("a", 100), strings.Repeat("b", 3000)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			var buf []byte
			for !stop.Load() {
				k := r.Intn(20000)
				val := va
				if k%4 == 0 {
					val = vb
				}
				key := []byte(fmt.Sprintf("k%d", k))
				switch r.Intn(10) {
				case 0:
					s.Delete(key, 0, false, 0)
				case 1, 2, 3:
					s.Set(key, []byte(val), nil)
				default:
					var ok bool
					buf, _, ok = s.Get(buf[:0], key, nil)
					if ok && string(buf) != val {
						t.Errorf("%s: corrupt value", key)
						stop.Store(true)
					}
				}
			}
		}(w)
	}
	deadline := time.Now().Add(time.Second)
	moves := 0
	for time.Now().Before(deadline) && !stop.Load() {
		if s.movePage(a, b) {
			moves++
		}
		if s.movePage(b, a) {
			moves++
		}
	}
	stop.Store(true)
	wg.Wait()
	checkStore(t, s)
	if moves == 0 {
		t.Fatal("no page moved")
	}
	t.Logf("%d moves, %+v", moves, s.Stats())
}

// TestCalcification fills the cache with 100 B values, then switches to
// 10 KB values: with automove the 10 KB class gets the pages back and its
// hit ratio recovers. Time is virtual: one automove sample per 100 ms.
func TestCalcification(t *testing.T) {
	for _, tc := range []struct {
		mode     int
		eviction string
	}{{AutomoveWindowed, EvictionLRU}, {AutomoveAggressive, EvictionLRU}, {AutomoveWindowed, EvictionClock}, {AutomoveWindowed, EvictionS3Clock}} {
		mode := tc.mode
		t.Run(fmt.Sprint("mode", mode, tc.eviction), func(t *testing.T) {
			s, clk := newTestStore(t, Config{MemoryLimit: 16 << 20, Maintenance: -1, Automove: mode, Eviction: tc.eviction})
			small := []byte(strings.Repeat("s", 100))
			for i := 0; i < 150000; i++ {
				s.Set([]byte(fmt.Sprintf("small%d", i)), small, nil)
			}
			big := []byte(strings.Repeat("B", 10000))
			const keys = 1200 // 12 MB of 10 KB values: fits in 16 MB
			r := rand.New(rand.NewSource(1))
			var buf []byte
			recovered := -1
			for tick := 0; tick < 600 && recovered < 0; tick++ {
				hits, gets := 0, 0
				for i := 0; i < 2000; i++ {
					key := []byte(fmt.Sprintf("big%d", r.Intn(keys)))
					var ok bool
					buf, _, ok = s.Get(buf[:0], key, nil)
					gets++
					if ok {
						hits++
					} else {
						s.Set(key, big, nil)
					}
				}
				clk.advance(100 * time.Millisecond)
				if mode == AutomoveWindowed {
					if src, dst := s.automoveNext(); src >= 0 {
						s.movePage(src, dst)
					}
				} else {
					select {
					case dst := <-s.mv.evictKick:
						s.automoveAggressive(dst)
					default:
					}
				}
				if float64(hits)/float64(gets) > 0.9 {
					recovered = tick
				}
			}
			if recovered < 0 {
				t.Fatalf("10 KB hit ratio did not recover: %+v", classInfo(s, classID(s, 10000)))
			}
			t.Logf("mode %d: hit ratio > 90%% after %.1f s (virtual), %d pages moved", mode,
				float64(recovered+1)/10, s.Stats().SlabsMoved)
			checkStore(t, s)
		})
	}
}

// TestGradientMoverFavorsSmallItems runs cache-aside over keys of equal
// popularity, a fifth of them with 10 KB values and the rest with 100 B
// ones, in a cache that holds a third of the data. A hit is a hit whatever
// the size, so the small items are worth 100 times more per byte: the
// gradient mover (s3clock's) must give their class the pages memcached's
// age balancing gives the large one, and miss less. Time is virtual: one
// automove sample per 100 ms.
func TestGradientMoverFavorsSmallItems(t *testing.T) {
	missRatio := func(decide func(*Store) (int, int)) float64 {
		s, clk := newTestStore(t, Config{MemoryLimit: 16 << 20, Maintenance: -1, Eviction: EvictionS3Clock})
		small := []byte(strings.Repeat("s", 100))
		big := []byte(strings.Repeat("B", 10000))
		const keys = 25000 // 5,000 of 10 KB (50 MB) and 20,000 of 100 B (2 MB)
		r := rand.New(rand.NewSource(1))
		var buf []byte
		misses, gets := 0, 0
		for tick := 0; tick < 400; tick++ {
			for i := 0; i < 1000; i++ {
				k := r.Intn(keys)
				key := []byte(fmt.Sprintf("key%d", k))
				var ok bool
				buf, _, ok = s.Get(buf[:0], key, nil)
				if tick >= 300 {
					gets++
				}
				if !ok {
					if tick >= 300 {
						misses++
					}
					v := small
					if k%5 == 0 {
						v = big
					}
					s.Set(key, v, nil)
				}
			}
			clk.advance(100 * time.Millisecond)
			if src, dst := decide(s); src >= 0 {
				s.movePage(src, dst)
			}
		}
		checkStore(t, s)
		return float64(misses) / float64(gets)
	}
	age := missRatio((*Store).automoveDecide)
	grad := missRatio((*Store).automoveNext)
	t.Logf("miss ratio: age balancing %.4f, gradient %.4f", age, grad)
	if grad > age*0.9 {
		t.Errorf("gradient mover missed %.4f, age balancing %.4f: want at least 10%% fewer misses", grad, age)
	}
}

// TestTrimToLimit lowers the memory limit (cache_memlimit) under a full
// store: the maintenance goroutine's trimToLimit empties pages of the
// largest class and gives them back until the store is within the limit,
// and pages taken again later come from those given back.
func TestTrimToLimit(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 16 << 20, Maintenance: -1})
	val := []byte(strings.Repeat("v", 1000))
	for i := range 40000 {
		s.Set([]byte(fmt.Sprintf("k%d", i)), val, nil)
	}
	if n := s.npages.Load(); n != 16 {
		t.Fatalf("%d pages at -m 16", n)
	}
	s.SetMemoryLimit(8 << 20)
	for range 20 {
		s.trimToLimit()
	}
	if n, r := s.npages.Load(), len(s.released); n != 8 || r != 8 {
		t.Fatalf("after lowering -m to 8: %d pages, %d given back; want 8 and 8", n, r)
	}
	checkStore(t, s)
	s.SetMemoryLimit(16 << 20)
	for i := range 40000 {
		s.Set([]byte(fmt.Sprintf("k%d", i)), val, nil)
	}
	if n, r := s.npages.Load(), len(s.released); n != 16 || r != 0 {
		t.Fatalf("after raising -m to 16 again: %d pages, %d given back; want 16 and 0", n, r)
	}
	if got := s.Stats().TotalMalloced; got != 16<<20 {
		t.Errorf("total_malloced %d, want %d", got, 16<<20)
	}
	checkStore(t, s)
}

func TestCrawlerReclaims(t *testing.T) {
	s, clk := newTestStore(t, Config{Maintenance: -1})
	for i := 0; i < 5000; i++ {
		exp := int64(0)
		if i%2 == 0 {
			exp = clk.sec() + 10
		}
		set(t, s, fmt.Sprintf("k%d", i), "value", &SetOptions{Exptime: exp})
	}
	clk.advance(11 * time.Second)
	s.crawl(s.classes)
	st := s.Stats()
	if st.CrawlerReclaimed != 2500 || st.CrawlerItemsChecked != 5000 || st.CurrItems != 2500 {
		t.Fatalf("crawl: %+v", st)
	}
	s.FlushAll(clk.Now())
	set(t, s, "after", "v", nil)
	if r := s.Crawl([]int{1, 2}); r != CrawlOK {
		t.Fatalf("crawl: %v", r)
	}
	for s.crawler.running.Load() {
		time.Sleep(time.Millisecond)
	}
	// The store of "after" may reclaim a few dead items at the tails of
	// HOT and WARM itself (the segmented LRU's rebalancing).
	if st := s.Stats(); st.CurrItems != 1 || st.CrawlerReclaimed+st.Reclaimed != 5000 {
		t.Fatalf("after flush: %+v", st)
	}
	if _, _, ok := get(s, "after"); !ok {
		t.Fatal("live item reclaimed")
	}
	if r := s.Crawl([]int{64}); r != CrawlBadClass {
		t.Fatal(r)
	}
	if r := s.Crawl([]int{}); r != CrawlNotStarted {
		t.Fatal(r)
	}
	s.SetCrawler(false)
	if r := s.Crawl(nil); r != CrawlDisabled {
		t.Fatal(r)
	}
	checkStore(t, s)
}

func TestDump(t *testing.T) {
	s, clk := newTestStore(t, Config{Maintenance: -1, Eviction: EvictionLRU}) // dumps in recency order
	set(t, s, "a", "0123456789", nil)
	set(t, s, "b", "0123456789", &SetOptions{Exptime: clk.sec() + 100})
	set(t, s, "gone", "x", &SetOptions{Exptime: clk.sec() + 1})
	clk.advance(2 * time.Second)
	var keys []string
	s.DumpClass(1, 0, true, false, func(d *DumpItem) bool {
		keys = append(keys, fmt.Sprintf("%s:%d:%d", d.Key, d.ValueLen, d.Exptime))
		return true
	}, nil)
	want := []string{"gone:1:" + fmt.Sprint(t0+1), "b:10:" + fmt.Sprint(t0+100), "a:10:0"}
	if fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("cachedump order %v, want %v", keys, want)
	}
	keys = keys[:0]
	s.DumpClass(1, 1, true, false, func(d *DumpItem) bool { keys = append(keys, string(d.Key)); return true }, nil)
	if len(keys) != 1 {
		t.Fatalf("limit: %v", keys)
	}
	keys = keys[:0]
	s.DumpClass(1, 0, false, true, func(d *DumpItem) bool { keys = append(keys, string(d.Key)); return true }, nil)
	if fmt.Sprint(keys) != "[a b]" {
		t.Fatalf("metadump: %v", keys)
	}
	n := 0
	s.DumpHash(func(d *DumpItem) bool { n++; return true }, nil)
	if n != 2 {
		t.Fatalf("hash dump: %d", n)
	}
}
