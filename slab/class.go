package slab

import "sync"

// poolClass marks a page of the global page pool in pageTable.cls.
const poolClass = 0xFF

// class is one slab class: chunks of one size carved from pages, a free
// list and an LRU list, all guarded by mu.
//
// walkMu serialises the walkers of the class's LRU (crawler, dumps); a
// walker takes it before any stripe or class lock.
type class struct {
	mu      sync.Mutex
	walkMu  sync.Mutex
	id      int // 1-based
	size    int // chunk size
	perPage int

	free  uint32 // free-list head, linked through the chunks (markFree)
	nfree int
	cur   uint32 // page being carved, 0 = none
	curN  int    // chunks carved from cur

	// lru are the class's LRU lists (segHot, segWarm, segCold, segTemp),
	// head = most recent. The flat LRU uses COLD only; S3-FIFO uses HOT as
	// its small FIFO and COLD as its main FIFO. TEMP holds the items of
	// the temporary-TTL LRU under any policy (temp.go). Without links
	// (CLOCK) only the counts are kept.
	lru [nLists]lruList
	// links: the class's items carry LRU links and sit in the lists;
	// false under CLOCK (but for the last class), whose hand sweeps the
	// class's chunks in place from hand.
	links bool
	hand  uint32
	// reap is where the last in-place search for dead items stopped, in a
	// class without lists (reclaimDeadInPlace); apart from hand so that
	// the search gives no item a second chance or takes one away.
	reap uint32
	// small is S3-FIFO's small queue in classes without lists under
	// s3clock (s3clock.go).
	small smallRing

	pages, used, items int
	bytes              uint64

	// inflight counts chunks handed out by allocItem whose item is not yet
	// linked into the LRU: the page mover waits for it to drop to 0 so
	// that no chunk of a page it empties is being written.
	inflight int
	// moving is the page being emptied by the mover, 0 = none: its chunks
	// are not carved, and chunks freed on it do not return to the free list.
	moving     uint32
	movingFree int // chunks of the moving page known to be free
	// cursor is the next item a walker visits (0 = none or done); unlinking
	// that item advances it, so the walker can drop mu between items.
	cursor   uint32
	cursorUp bool // walking tail to head (via prev) rather than head to tail

	movesToCold, movesToWarm, movesWithinLRU uint64
	evictedActive                            uint64
	// hits counts get hits per LRU list, sharded by stripe (atomic: the get
	// path holds no class lock).
	hits [hitShards]hitShard
	// ops counts commands per class (opSet...), sharded as hits.
	ops [hitShards]opShard

	crawlerReclaimed, crawlerChecked uint64
	evictedPrev, oomPrev             uint64 // automove samples
	// ghostHits counts items linked whose key was in the ghost (s3clock):
	// the hits the class would have had with more memory, which the
	// gradient page mover (automoveGradient) weighs per page.
	ghostHits, ghostHitsPrev uint64

	evicted, evictedNonzero, evictedUnfetched uint64
	evictedTime                               int64
	reclaimed, expiredUnfetched               uint64
	oom                                       uint64
	_                                         [64]byte
}

// pageTable maps a page number to its memory and its class. It is replaced
// (copy on grow) and published atomically, so readers never lock.
type pageTable struct {
	pages [][]byte
	cls   []uint8 // index into Store.classes
}

// chunk returns the chunk for handle h.
func (s *Store) chunk(h uint32) []byte {
	pt := s.pt.Load()
	pg := h >> s.chunkBits
	size := s.classes[pt.cls[pg]].size
	off := int(h&s.chunkMask) * size
	return pt.pages[pg][off : off+size : off+size]
}

// classOf returns the class of the chunk with handle h.
func (s *Store) classOf(h uint32) *class {
	return s.classes[s.pt.Load().cls[h>>s.chunkBits]]
}

// classFor returns the class for an item of layout l.
func (s *Store) classFor(l layout) *class {
	if l.cls != nil {
		return l.cls
	}
	if l.nchunks > 1 {
		return s.classes[len(s.classes)-1]
	}
	lo, hi := 0, len(s.classes)-1
	for lo < hi {
		m := (lo + hi) / 2
		if s.classes[m].size >= l.total {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return s.classes[lo]
}

// reclaimDeadBeforeGrowing frees dead items of c, when c would otherwise
// take a new page: one from the tails of its lists, or, in a class without
// lists, every dead one among a page's worth of chunks from where the last
// search stopped. When no page could be taken anyway (memory is full), it
// leaves the dead items to eviction, which takes them first. c.mu held.
func (s *Store) reclaimDeadBeforeGrowing(c *class, held int, now uint32, fseq uint64) bool {
	if c.links {
		return s.reclaimDeadTails(c, held, now, fseq, 1) > 0
	}
	if s.poolLen.Load() == 0 && (s.npages.Load()+1)*int64(s.pageSize) > s.limit.Load() {
		return false
	}
	return s.reclaimDeadInPlace(c, held, now, fseq, c.perPage) > 0
}

// newPage hands a page to class ci if the budget allows it; it returns the
// page number or 0. A class's first page is granted even past the budget,
// as memcached does, so that a small -m still stores every size; unlike
// memcached, the maintenance goroutine then takes a page from the largest
// class and gives its memory back (trimToLimit), so the store is over -m
// only for a moment.
// A page of the global pool (freed by the mover) is taken first, budget or
// not: it is already counted.
func (s *Store) newPage(ci int, first bool) uint32 {
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	if n := len(s.pool); n > 0 {
		pg := s.pool[n-1]
		s.pool = s.pool[:n-1]
		s.poolLen.Store(int64(n - 1))
		s.setPageClass(pg, uint8(ci))
		return pg
	}
	n := s.npages.Load()
	if !first && (n+1)*int64(s.pageSize) > s.limit.Load() || n+1 > int64(s.maxPages) {
		return 0
	}
	if k := len(s.released); k > 0 {
		pg := s.released[k-1]
		s.released = s.released[:k-1]
		s.setPageClass(pg, uint8(ci))
		s.npages.Store(n + 1)
		return pg
	}
	old := s.pt.Load()
	var p []byte
	if s.mem != nil {
		if p = s.memPage(len(old.pages)); p == nil {
			return 0 // the memory file is full
		}
	} else {
		p = s.arenas.page(s.pageSize)
	}
	nt := &pageTable{pages: append(old.pages, p), cls: append(old.cls, uint8(ci))}
	s.pt.Store(nt)
	s.npages.Store(n + 1)
	return uint32(len(nt.pages) - 1)
}

// allocChunk takes one chunk of c, reclaiming or evicting from c's LRU
// tail when the budget is exhausted. c.mu must be held. held is the stripe
// the caller holds locked (its items are never evicted).
//
// Dead items give their memory back before new memory is taken, as in
// memcached's do_item_alloc_pull: under the flat LRU every allocation
// first reclaims the dead items at COLD's tail (memcached's
// lru_pull_tail before slabs_alloc); under the other policies the
// maintenance goroutine reclaims dead tails in the background
// (maintainLRU), and an allocation that would take a new page first
// looks for a dead item at the tails.
func (s *Store) allocChunk(c *class, held int, now uint32, fseq uint64) uint32 {
	if c.lru[segCold].n > 0 && s.policy.Load() == policyFlat {
		s.reclaimDeadTail(c, segCold, held, now, fseq, deadTailSearch)
	}
	for {
		if c.free != 0 {
			h := c.free
			b := s.chunk(h)
			c.free = freeNext(b)
			c.nfree--
			c.used++
			b[offSlack] = slackBusy
			return h
		}
		if c.cur != 0 && c.curN < c.perPage {
			h := c.cur<<s.chunkBits | uint32(c.curN)
			c.curN++
			c.used++
			s.chunk(h)[offSlack] = slackBusy
			return h
		}
		if c.items > 0 && s.reclaimDeadBeforeGrowing(c, held, now, fseq) {
			continue
		}
		if pg := s.newPage(c.id-1, c.pages == 0); pg != 0 {
			s.adoptPage(c, pg)
			continue
		}
		// TEMP items are never evicted, but expired ones may wait for the
		// maintenance tick: take one rather than fail.
		if !s.reclaimTail(c, held, now, fseq) && s.reclaimTemp(c, held, now, fseq, 1) == 0 {
			return 0
		}
	}
}

// freeChunk puts chunk h on c's free list. c.mu must be held. A chunk of
// the page being moved is only marked free.
func (s *Store) freeChunk(c *class, h uint32) {
	b := s.chunk(h)
	c.used--
	if h>>s.chunkBits == c.moving {
		markFree(b, 0)
		c.movingFree++
		return
	}
	markFree(b, c.free)
	c.free = h
	c.nfree++
}

// allocItem allocates the chunks for an item of layout l and writes its
// chain table. It returns the head handle or 0 when memory is exhausted.
func (s *Store) allocItem(l layout, held int, now uint32, fseq uint64) uint32 {
	c := s.classFor(l)
	c.mu.Lock()
	h := s.allocChunk(c, held, now, fseq)
	if h == 0 {
		c.oom++
		c.mu.Unlock()
		return 0
	}
	if l.nchunks > 1 {
		b := s.chunk(h)
		for i := 1; i < l.nchunks; i++ {
			ch := s.allocChunk(c, held, now, fseq)
			if ch == 0 {
				for j := 1; j < i; j++ {
					s.freeChunk(c, chainHandle(b, l, j))
				}
				s.freeChunk(c, h)
				c.oom++
				c.mu.Unlock()
				return 0
			}
			le.PutUint32(b[l.tableOff+4*(i-1):], ch)
		}
	}
	c.inflight++
	c.mu.Unlock()
	return h
}

// lruLink puts the new item h at the head of LRU list seg of c and
// accounts for it. c.mu and h's stripe lock held.
func (s *Store) lruLink(c *class, h uint32, b []byte, l layout, seg int) {
	setSlack(b, l)
	s.listPush(c, seg, h, b)
	c.items++
	c.bytes += uint64(l.total)
	c.inflight--
}

// lruUnlink removes h from its LRU list. c.mu and h's stripe lock held.
func (s *Store) lruUnlink(c *class, h uint32, b []byte) { s.listRemove(c, h, b) }

// releaseLocked unlinks h from its LRU and frees its chunks. c.mu held;
// the item must already be out of the index.
func (s *Store) releaseLocked(c *class, h uint32, b []byte) {
	l := s.readLayout(b)
	s.sizeCount(b, l, -1)
	s.lruUnlink(c, h, b)
	c.items--
	c.bytes -= uint64(l.total)
	if s.retire(h, b) {
		return // pinned by a reply in flight: its last Unpin frees it (pin.go)
	}
	s.freeChunks(c, h, b, l)
}

// freeChunks frees the chunks of the item h (head chunk b, layout l),
// which is out of the index and the LRU. c.mu held.
func (s *Store) freeChunks(c *class, h uint32, b []byte, l layout) {
	for i := 1; i < l.nchunks; i++ {
		s.freeChunk(c, chainHandle(b, l, i))
	}
	s.freeChunk(c, h)
}

// release frees an item that the caller (holding its stripe lock) has
// just removed from the index.
func (s *Store) release(h uint32, b []byte) {
	c := s.classOf(h)
	c.mu.Lock()
	s.releaseLocked(c, h, b)
	c.mu.Unlock()
}

// bump moves h to the head of its LRU list and sets its access time (the
// flat LRU's read). The caller holds h's stripe lock.
func (s *Store) bump(h uint32, b []byte, now uint32) {
	c := s.classOf(h)
	c.mu.Lock()
	setAtime(b, now)
	seg := itemSeg(b)
	if c.lru[seg].head != h {
		s.listRemove(c, h, b)
		s.listPush(c, seg, h, b)
	}
	c.mu.Unlock()
}

// Liveness of an item.
const (
	alive = iota
	expired
	flushed
)

// dead reports whether the item is flushed or expired. The item's stripe
// lock must be held.
func dead(b []byte, now uint32, fseq uint64) int {
	if itemCAS(b) <= fseq {
		return flushed
	}
	if e := itemExp(b); e != 0 && e <= now {
		return expired
	}
	return alive
}
