package slab

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
	"weak"
)

// Slab page rebalancing, as memcached's slab mover: a page is taken from
// one class (or the global page pool), emptied and given to another class
// (or the pool).
//
// Emptying a page: under the source class lock the page stops being carved
// and its free chunks leave the free list (class.moving makes chunks freed
// on it later stay off the list). The mover then waits until no chunk
// handed out by allocItem is still unlinked (class.inflight), so every
// chunk of the page is either free (markFree) or a linked item, and then
// takes each item's stripe with TryLock (the lock order is stripe, then
// class): a live item is copied to a free chunk of the class when there is
// one ("rescued"), otherwise evicted; an expired or flushed one is
// reclaimed. Items whose stripe is busy are retried after dropping the
// class lock. When every chunk of the page is free, the page changes class
// in a new page table, published atomically; no handle into it survives.

// Automove modes (slabs automove, -o slab_automove).
const (
	AutomoveOff        = 0 // pages move only on "slabs reassign"
	AutomoveWindowed   = 1 // memcached's default: windowed age/eviction balancing
	AutomoveAggressive = 2 // move a page to a class on each of its evictions
)

// ReassignResult is the outcome of Reassign, named after memcached's
// replies to "slabs reassign".
type ReassignResult uint8

// Reassign results.
const (
	ReassignOK       ReassignResult = iota // OK
	ReassignRunning                        // BUSY currently processing reassign request
	ReassignBadClass                       // BADCLASS invalid src or dst class id
	ReassignNoSpare                        // NOSPARE source class has no spare pages
	ReassignSame                           // SAME src and dst class are identical
	ReassignDisabled                       // CLIENT_ERROR slab reassignment disabled (Config.NoSlabReassign)
)

// memcached's slab_automove.c thresholds.
const (
	minPagesFree      = 1.5 // free chunks beyond this many pages: excess
	minPagesReclaim   = 2.5 // ... and beyond this many: give a page to the pool
	minPagesForSource = 2   // a source class keeps more pages than this
	defaultWindow     = 30
	defaultAgeRatio   = 0.8
	defaultTick       = 100 * time.Millisecond
)

type amSample struct {
	evicted, excessFree bool
	age                 int64
	ghostHits           uint32 // automoveGradient
}

// mover is the slab rebalancing state.
type mover struct {
	running   atomic.Bool  // a page move is in progress (reassign or automove)
	mode      atomic.Int32 // Automove*
	ageRatio  atomic.Uint64
	evictKick chan int // mode 2: class ids that just evicted

	moved, rescues, evictionsNomem, inlineReclaim, busyItems atomic.Uint64
	aborted                                                  atomic.Uint64 // moves given up (maxMovePasses)

	// automove samples, used by the maintenance goroutine only
	window  [][]amSample // per class, a ring of window samples
	samples int
	// cooldown is how many more samples automoveGradient takes before
	// it may move another page.
	cooldown int
}

func (m *mover) init(nclasses, window int, mode int) {
	m.mode.Store(int32(mode))
	m.setAgeRatio(defaultAgeRatio)
	m.evictKick = make(chan int, 1)
	m.window = make([][]amSample, nclasses)
	for i := range m.window {
		m.window[i] = make([]amSample, window)
	}
}

func (m *mover) setAgeRatio(r float64) { m.ageRatio.Store(uint64(r * 1e6)) }

// SetAutomove sets the automove mode (0, 1 or 2).
func (s *Store) SetAutomove(mode int) { s.mv.mode.Store(int32(mode)) }

// Automove returns the automove mode.
func (s *Store) Automove() int { return int(s.mv.mode.Load()) }

// SetAutomoveRatio sets slab_automove_ratio: a page moves from the oldest
// class to the youngest evicting one when young age < old age * ratio.
func (s *Store) SetAutomoveRatio(r float64) { s.mv.setAgeRatio(r) }

// NumClasses returns the number of slab classes (memcached's
// power_largest).
func (s *Store) NumClasses() int { return len(s.classes) }

// Reassign starts moving one page from class src to class dst, as
// memcached's "slabs reassign": class 0 is the global page pool and src -1
// picks a source. The move runs in the background; ReassignRunning is
// returned while one is in progress.
func (s *Store) Reassign(src, dst int) ReassignResult {
	if s.cfg.NoSlabReassign {
		return ReassignDisabled
	}
	if s.mv.running.Load() {
		return ReassignRunning
	}
	if src == dst {
		return ReassignSame
	}
	if src == -1 {
		src = s.pickSource(dst)
	}
	n := len(s.classes)
	if src < 0 || src > n || dst < 0 || dst > n {
		return ReassignBadClass
	}
	if s.classPages(src) < 2 {
		return ReassignNoSpare
	}
	if !s.mv.running.CompareAndSwap(false, true) {
		return ReassignRunning
	}
	go func() {
		s.movePage(src, dst)
		s.mv.running.Store(false)
	}()
	return ReassignOK
}

// classPages returns class id's page count; id 0 is the global pool.
func (s *Store) classPages(id int) int {
	if id == 0 {
		return int(s.poolLen.Load())
	}
	c := s.classes[id-1]
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pages
}

// pickSource chooses a class to give a page to dst: the one with the
// oldest LRU tail among those with more than one page; -1 if none.
func (s *Store) pickSource(dst int) int {
	now, _ := s.now()
	best, bestAge := -1, int64(-1)
	for _, c := range s.classes {
		if c.id == dst {
			continue
		}
		c.mu.Lock()
		if c.pages > 1 {
			age := s.oldestAge(c, now)
			if age > bestAge {
				best, bestAge = c.id, age
			}
		}
		c.mu.Unlock()
	}
	return best
}

// movePage moves one page from class src to class dst (0 = the pool) and
// reports whether it did. It may wait for busy items.
func (s *Store) movePage(src, dst int) bool {
	var pg uint32
	if src == 0 {
		s.pageMu.Lock()
		if n := len(s.pool); n > 0 {
			pg = s.pool[n-1]
			s.pool = s.pool[:n-1]
			s.poolLen.Store(int64(n - 1))
		}
		s.pageMu.Unlock()
	} else {
		pg = s.emptyPage(s.classes[src-1])
	}
	if pg == 0 {
		return false
	}
	s.givePage(pg, dst)
	s.mv.moved.Add(1)
	return true
}

// givePage hands the empty page pg to class dst, or to the pool (dst 0).
//
// A page joins or leaves a class in the page table only under that class's
// lock, and joins already adopted (its chunks marked free): so whoever
// holds a class lock sees exactly the class's pages there, and the CLOCK
// hand and in-place walks, which scan them, never read a page that is
// changing hands.
func (s *Store) givePage(pg uint32, dst int) {
	if dst == 0 {
		s.pageMu.Lock()
		s.setPageClass(pg, poolClass)
		s.pool = append(s.pool, pg)
		s.poolLen.Store(int64(len(s.pool)))
		s.pageMu.Unlock()
		return
	}
	c := s.classes[dst-1]
	c.mu.Lock()
	s.pageMu.Lock()
	s.setPageClass(pg, uint8(dst-1))
	s.pageMu.Unlock()
	s.adoptPage(c, pg)
	c.mu.Unlock()
}

// setPageClass publishes a page table in which pg belongs to class index
// ci. pageMu held. The class slice is copied: readers of older tables keep
// seeing the old class, and none of them holds a handle into pg.
func (s *Store) setPageClass(pg uint32, ci uint8) {
	old := s.pt.Load()
	cls := make([]uint8, len(old.cls))
	copy(cls, old.cls)
	cls[pg] = ci
	s.pt.Store(&pageTable{pages: old.pages, cls: cls})
}

// adoptPage adds the empty page pg (already c's in the page table) to c:
// it becomes the page being carved, or its chunks join the free list. c.mu
// held.
func (s *Store) adoptPage(c *class, pg uint32) {
	c.pages++
	if c.cur == 0 || c.curN >= c.perPage {
		// Carved lazily; marked free now all the same, so that a page
		// scan (CLOCK, a warm restart) never takes a previous owner's
		// bytes for an item.
		for i := range c.perPage {
			markFree(s.chunk(pg<<s.chunkBits|uint32(i)), 0)
		}
		c.cur, c.curN = pg, 0
		return
	}
	for i := c.perPage - 1; i >= 0; i-- {
		h := pg<<s.chunkBits | uint32(i)
		markFree(s.chunk(h), c.free)
		c.free = h
		c.nfree++
	}
}

// pickPage chooses the page of c to empty: the lowest-numbered (oldest)
// page that is not being carved, else the one being carved. c.mu held.
func (s *Store) pickPage(c *class) uint32 {
	pt := s.pt.Load()
	ci := uint8(c.id - 1)
	var cur uint32
	for pg := 1; pg < len(pt.cls); pg++ {
		if pt.cls[pg] != ci {
			continue
		}
		if uint32(pg) == c.cur {
			cur = c.cur
			continue
		}
		return uint32(pg)
	}
	return cur
}

// emptyPage takes one page out of c, evicting or rescuing its items, and
// returns it (0 when c has fewer than two pages).
func (s *Store) emptyPage(c *class) uint32 {
	c.mu.Lock()
	if c.pages < 2 || c.moving != 0 {
		c.mu.Unlock()
		return 0
	}
	pg := s.pickPage(c)
	if pg == 0 {
		c.mu.Unlock()
		return 0
	}
	limit := c.perPage
	if pg == c.cur {
		limit = c.curN
		c.cur, c.curN = 0, 0
	}
	c.moving = pg
	c.movingFree = 0
	var prev uint32
	for h := c.free; h != 0; {
		next := freeNext(s.chunk(h))
		if h>>s.chunkBits == pg {
			if prev == 0 {
				c.free = next
			} else {
				markFree(s.chunk(prev), next)
			}
			c.nfree--
			c.movingFree++
		} else {
			prev = h
		}
		h = next
	}
	c.mu.Unlock()

	settled := false // no chunk of pg is allocated but unlinked
	last := c == s.classes[len(s.classes)-1]
	for pass := 0; ; pass++ {
		c.mu.Lock()
		if pass >= maxMovePasses {
			// A reservation still being filled, or an item pinned by a
			// client that does not read its reply, can hold a chunk of
			// the page for as long as the client likes: give up this
			// move rather than wait for it.
			s.abortMove(c, pg, last)
			c.mu.Unlock()
			s.mv.aborted.Add(1)
			return 0
		}
		if !settled && c.inflight == 0 {
			settled = true
		}
		if settled {
			if c.movingFree < limit {
				if last {
					s.clearLastPage(c, pg)
				} else {
					s.clearPage(c, pg, limit)
				}
			}
			if c.movingFree >= limit {
				c.moving, c.movingFree = 0, 0
				c.pages--
				// The page leaves the class in the page table while its lock
				// is held (see givePage).
				s.pageMu.Lock()
				s.setPageClass(pg, poolClass)
				s.pageMu.Unlock()
				c.mu.Unlock()
				return pg
			}
		}
		c.mu.Unlock()
		backoff(pass)
	}
}

// maxMovePasses bounds the passes emptyPage makes over a page (about
// 1.5 s with backoff's sleeps) before it gives the page back to its class.
var maxMovePasses = 2000 // a variable for tests

// abortMove ends the move of page pg of c: the page's free chunks return
// to the free list and chunks freed on it later go there too. last: c is
// the last class (one chunk per page, which may be a continuation chunk
// without a header). c.mu held.
func (s *Store) abortMove(c *class, pg uint32, last bool) {
	free := c.movingFree
	c.moving, c.movingFree = 0, 0
	if last {
		if free > 0 {
			markFree(s.chunk(pg<<s.chunkBits), c.free)
			c.free = pg << s.chunkBits
			c.nfree++
		}
		return
	}
	for i := c.perPage - 1; i >= 0; i-- {
		h := pg<<s.chunkBits | uint32(i)
		if b := s.chunk(h); isFree(b) {
			markFree(b, c.free)
			c.free = h
			c.nfree++
		}
	}
}

func backoff(pass int) {
	if pass < 10 {
		runtime.Gosched()
		return
	}
	time.Sleep(time.Duration(min(pass, 1000)) * time.Microsecond)
}

// clearPage frees the items on page pg of c (a class of single-chunk
// items), up to a batch; busy ones stay for the next pass. c.mu held.
func (s *Store) clearPage(c *class, pg uint32, limit int) {
	now, fseq := s.now()
	const batch = 512
	done := 0
	for i := 0; i < limit && done < batch; i++ {
		h := pg<<s.chunkBits | uint32(i)
		b := s.chunk(h)
		if !isItem(b) {
			continue
		}
		done++
		hv := s.hash(itemKey(b))
		st := &s.stripes[hv&s.stripeMask]
		if !st.mu.TryLock() {
			s.mv.busyItems.Add(1)
			continue
		}
		pos := st.posOf(uint32(hv>>32), h)
		if pos < 0 { // cannot happen: a linked item is indexed under its stripe lock
			st.mu.Unlock()
			continue
		}
		if s.pinned(h) { // a reply is being written from it: wait (pin.go)
			st.mu.Unlock()
			s.mv.busyItems.Add(1)
			continue
		}
		switch {
		case dead(b, now, fseq) != alive:
			st.removeAt(pos)
			c.reclaimed++
			s.mv.inlineReclaim.Add(1)
			s.releaseLocked(c, h, b)
		case s.rescue(c, st, pos, h, b):
			s.mv.rescues.Add(1)
		default:
			st.removeAt(pos)
			s.mv.evictionsNomem.Add(1)
			s.releaseLocked(c, h, b)
		}
		st.mu.Unlock()
	}
}

// rescue copies the item h to a free chunk of c off the moving page and
// puts the copy in its place in the LRU and the index. c.mu and the item's
// stripe lock held.
func (s *Store) rescue(c *class, st *stripe, pos int, h uint32, b []byte) bool {
	var nh uint32
	switch {
	case c.free != 0:
		nh = c.free
		c.free = freeNext(s.chunk(nh))
		c.nfree--
	case c.cur != 0 && c.curN < c.perPage:
		nh = c.cur<<s.chunkBits | uint32(c.curN)
		c.curN++
	default:
		return false
	}
	c.used++
	nb := s.chunk(nh)
	copy(nb, b)
	st.hs[pos] = nh
	s.freeChunk(c, h)
	if !c.links {
		if s.s3 && itemSeg(nb) == segHot {
			s.smallPush(c, nh, uint32(s.hash(itemKey(nb))>>32)) // the old entry is stale now
		}
		return true
	}
	lst := &c.lru[itemSeg(nb)]
	p, n := lruPrev(nb), lruNext(nb)
	if p != 0 {
		setLRUNext(s.chunk(p), nh)
	} else {
		lst.head = nh
	}
	if n != 0 {
		setLRUPrev(s.chunk(n), nh)
	} else {
		lst.tail = nh
	}
	if c.cursor == h {
		c.cursor = nh
	}
	return true
}

// clearLastPage frees the item owning the page pg of the last class (one
// chunk per page: an item's head or one of its continuation chunks).
// c.mu held.
func (s *Store) clearLastPage(c *class, pg uint32) {
	for seg := range nLists {
		if s.clearLastPageList(c, pg, seg) {
			return
		}
	}
}

// clearLastPageList looks for the owner of pg in list seg of c and frees
// it; it reports whether it found it. c.mu held.
func (s *Store) clearLastPageList(c *class, pg uint32, seg int) bool {
	now, fseq := s.now()
	for h := c.lru[seg].tail; h != 0; {
		b := s.chunk(h)
		prev := lruPrev(b)
		hv := s.hash(itemKey(b))
		st := &s.stripes[hv&s.stripeMask]
		if !st.mu.TryLock() {
			s.mv.busyItems.Add(1)
			h = prev
			continue
		}
		l := s.readLayout(b)
		owns := h>>s.chunkBits == pg
		for i := 1; i < l.nchunks && !owns; i++ {
			owns = chainHandle(b, l, i)>>s.chunkBits == pg
		}
		if owns && s.pinned(h) { // a reply is being written from it: wait (pin.go)
			st.mu.Unlock()
			s.mv.busyItems.Add(1)
			return true
		}
		if owns {
			if pos := st.posOf(uint32(hv>>32), h); pos >= 0 {
				st.removeAt(pos)
				if dead(b, now, fseq) != alive {
					c.reclaimed++
					s.mv.inlineReclaim.Add(1)
				} else {
					s.mv.evictionsNomem.Add(1)
				}
				s.releaseLocked(c, h, b)
			}
			st.mu.Unlock()
			return true
		}
		st.mu.Unlock()
		h = prev
	}
	return false
}

// startMaintenance starts the background goroutine that runs automove and
// the LRU crawler's scheduled crawls. It holds the store only weakly, so
// an abandoned store is collected and the goroutine ends; Close ends it
// at once.
func (s *Store) startMaintenance(tick time.Duration) {
	wp := weak.Make(s)
	stop, kick := s.stop, s.mv.evictKick
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			dst := -1
			select {
			case <-stop:
				return
			case <-t.C:
			case dst = <-kick:
			}
			s := wp.Value()
			if s == nil {
				return
			}
			if dst > 0 {
				s.automoveAggressive(dst)
			} else {
				s.maintain()
			}
		}
	}()
}

// Close stops the store's background goroutines. The store stays usable.
func (s *Store) Close() {
	s.stopped.Do(func() { close(s.stop) })
}

// maintain is one tick of the background goroutine.
func (s *Store) maintain() {
	// With no_slab_reassign memcached runs no page mover, so its automove
	// decisions move nothing; the mode is still reported as set.
	if s.mv.mode.Load() == AutomoveWindowed && !s.cfg.NoSlabReassign {
		if src, dst := s.automoveNext(); src >= 0 && s.mv.running.CompareAndSwap(false, true) {
			s.movePage(src, dst)
			s.mv.running.Store(false)
		}
	}
	if !s.cfg.NoSlabReassign {
		s.trimToLimit()
	}
	s.maintainLRU()
	s.crawlerTick()
	s.collectIndex()
}

// collectIndex runs a garbage collection once the index tables replaced
// by stripe growth add up to 1/64 of the memory limit (at least 4 MiB).
// The pages make the live heap about as large as -m, so the Go pacer
// would otherwise let that garbage pile up to -m before collecting it,
// and the process would hold it as RSS. The heap holds few pointers (the
// pages and tables are pointer-free), so a collection costs about a
// millisecond whatever the number of items.
//
// The collection also returns the freed memory to the kernel at once
// (debug.FreeOSMemory): left to the background scavenger, the old tables
// stayed in RSS for seconds, about 8 bytes an item while a cache fills.
// Garbage below that share is collected too once the index has stopped
// growing (no table freed since the last tick), so a cache that has filled
// keeps none of it.
func (s *Store) collectIndex() {
	freed := s.idxFreed.Load()
	if freed >= max(s.limit.Load()/64, 4<<20) || freed >= 1<<20 && freed == s.idxFreedSeen {
		s.idxFreed.Add(-freed)
		s.idxFreedSeen = 0
		debug.FreeOSMemory()
		return
	}
	s.idxFreedSeen = freed
}

// noteEviction is called (c.mu held) when c evicts an item.
func (s *Store) noteEviction(c *class) {
	if s.mv.mode.Load() == AutomoveAggressive && !s.cfg.NoSlabReassign {
		select {
		case s.mv.evictKick <- c.id:
		default:
		}
	}
}

// automoveAggressive (mode 2) moves a page to the evicting class dst.
func (s *Store) automoveAggressive(dst int) {
	if s.mv.mode.Load() != AutomoveAggressive || !s.mv.running.CompareAndSwap(false, true) {
		return
	}
	defer s.mv.running.Store(false)
	if s.poolLen.Load() > 0 {
		s.movePage(0, dst)
		return
	}
	if src := s.pickSource(dst); src > 0 {
		s.movePage(src, dst)
	}
}

// automoveNext takes one automove sample and returns the page move to
// make, (-1, -1) for none: by ghost hits per page under s3clock, whose
// ghost tells each class's worth (automoveGradient), else by memcached's
// age balancing (automoveDecide).
func (s *Store) automoveNext() (int, int) {
	if s.ghost.adaptive {
		return s.automoveGradient()
	}
	return s.automoveDecide()
}

// automoveDecide takes one sample of every class and returns the move
// memcached's slab_automove_run would make: (src, dst), or (-1, -1).
func (s *Store) automoveDecide() (int, int) {
	m := &s.mv
	now, _ := s.now()
	wsize := len(m.window[0])
	slot := m.samples % wsize
	src, dst := -1, -1
	oldest, youngest := -1, -1
	var oldestAge int64
	youngestAge := int64(1<<62 - 1)
	youngestEvicting := false
	for i, c := range s.classes {
		c.mu.Lock()
		ev := c.evicted + c.oom
		smp := amSample{evicted: ev != c.evictedPrev}
		c.evictedPrev = ev
		free := c.pages*c.perPage - c.used
		smp.excessFree = float64(free) > float64(c.perPage)*minPagesFree
		smp.age = s.oldestAge(c, now)
		pages := c.pages
		c.mu.Unlock()
		w := m.window[i]
		w[slot] = smp
		var nev, nfree int
		var ageSum int64
		for _, x := range w {
			if x.evicted {
				nev++
			}
			if x.excessFree {
				nfree++
			}
			ageSum += x.age
		}
		age := ageSum / int64(wsize)
		if float64(free) > float64(c.perPage)*minPagesReclaim && nfree >= wsize && pages > 1 {
			src, dst = c.id, 0
			break
		}
		if age > oldestAge && pages > minPagesForSource {
			oldest, oldestAge = c.id, age
		}
		if age < youngestAge && nev > wsize/2 {
			youngest, youngestAge = c.id, age
			youngestEvicting = smp.evicted
		}
	}
	m.samples++
	if src >= 0 {
		return src, dst
	}
	ratio := float64(m.ageRatio.Load()) / 1e6
	if m.samples >= wsize && youngest > 0 && oldest > 0 && youngest != oldest && youngestEvicting &&
		float64(youngestAge) < float64(oldestAge)*ratio {
		if s.poolLen.Load() > 0 {
			return 0, youngest
		}
		return oldest, youngest
	}
	return -1, -1
}

// trimToLimit gives one page back to the kernel while the store holds
// more pages than -m: one of the global pool, else one emptied out of the
// class with the most pages. A store goes over -m when a class takes its
// first page with memory full (newPage: memcached grants it, and keeps
// it, which at -m 16 with values of 100 B–10 KB left memcached and
// gocached at 1.6 times -m), or when "cache_memlimit" lowers the limit.
func (s *Store) trimToLimit() {
	if s.mem != nil || s.npages.Load()*int64(s.pageSize) <= s.limit.Load() ||
		!s.mv.running.CompareAndSwap(false, true) {
		return
	}
	defer s.mv.running.Store(false)
	var pg uint32
	s.pageMu.Lock()
	if n := len(s.pool); n > 0 {
		pg = s.pool[n-1]
		s.pool = s.pool[:n-1]
		s.poolLen.Store(int64(n - 1))
	}
	s.pageMu.Unlock()
	if pg == 0 {
		var src *class
		most := 1
		for _, c := range s.classes {
			c.mu.Lock()
			if c.pages > most {
				src, most = c, c.pages
			}
			c.mu.Unlock()
		}
		if src == nil {
			return
		}
		if pg = s.emptyPage(src); pg == 0 {
			return
		}
	}
	s.pageMu.Lock()
	s.setPageClass(pg, poolClass)
	p := s.pt.Load().pages[pg]
	if offHeapPages {
		discardPage(p)
	}
	s.released = append(s.released, pg)
	s.npages.Add(-1)
	s.pageMu.Unlock()
}

// Gradient page mover thresholds (automoveGradient).
const (
	// gradMinHits is the fewest ghost hits in the window that make a
	// class a destination: fewer are noise.
	gradMinHits = 16
	// gradMargin is how many times the source's ghost hits per page the
	// destination's must be (hysteresis: no page moves back and forth
	// between classes of about equal worth).
	gradMargin = 1.5
	// gradCooldown is how many samples follow a move before the next, so
	// that the window sees the effect of one move before another.
	gradCooldown = 1
)

// automoveGradient takes one sample of every class and returns the page
// move the default policy (s3clock) makes: (src, dst), or (-1, -1).
//
// memcached's mover (automoveDecide) balances the classes' eviction ages,
// which approximates one LRU over all items: a byte of a 10 KB item is
// worth as much as a byte of a 100 B one. But a hit is a hit whatever the
// item's size, so a page of small items is worth more. The ghost tells
// each class's worth at the margin (Cliffhanger, Cidon et al., NSDI'16):
// a key whose item the class evicted and that is requested again is a hit
// the class would have had with more memory. A page therefore moves from
// the class with the fewest ghost hits per page to the evicting class with
// the most, when the latter has gradMargin times as many. A class that
// does not evict has no ghost hits, so its spare pages go first; a class
// keeps at least one page. Measured with values of 100 B–10 KB at -m 64
// (gocached-bench hitratio): see the README.
func (s *Store) automoveGradient() (int, int) {
	m := &s.mv
	wsize := len(m.window[0])
	slot := m.samples % wsize
	m.samples++
	src, dst := -1, -1
	var srcGrad, dstGrad float64
	for i, c := range s.classes {
		c.mu.Lock()
		ev := c.evicted + c.oom
		evicted := ev != c.evictedPrev
		c.evictedPrev = ev
		gh := c.ghostHits - c.ghostHitsPrev
		c.ghostHitsPrev = c.ghostHits
		pages := c.pages
		c.mu.Unlock()
		w := m.window[i]
		w[slot] = amSample{evicted: evicted, ghostHits: uint32(min(gh, 1<<32-1))}
		var nev int
		var hits uint64
		for _, x := range w {
			if x.evicted {
				nev++
			}
			hits += uint64(x.ghostHits)
		}
		if pages == 0 {
			continue
		}
		grad := float64(hits) / float64(pages)
		if evicted && nev > wsize/2 && hits >= gradMinHits && grad > dstGrad {
			dst, dstGrad = c.id, grad
		}
		if pages > 1 && (src < 0 || grad < srcGrad) {
			src, srcGrad = c.id, grad
		}
	}
	if m.cooldown > 0 {
		m.cooldown--
		return -1, -1
	}
	if dst < 0 || m.samples < wsize {
		return -1, -1
	}
	if s.poolLen.Load() > 0 {
		m.cooldown = gradCooldown
		return 0, dst
	}
	if src < 0 || src == dst || dstGrad < srcGrad*gradMargin {
		return -1, -1
	}
	m.cooldown = gradCooldown
	return src, dst
}
