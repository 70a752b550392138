package slab

// The CLOCK policy's hand and in-place walks (lru.go explains the
// policy). Both visit a class's chunks page by page in page-number order;
// only chunks that hold linked items (isItem) are read, and those only
// once their stripe is locked.

// clockMaxSweep bounds the chunks one eviction passes over before it
// evicts the next live item it can lock, read or not: with 2-bit counts a
// full sweep may find every item read.
const clockMaxSweep = 1024

// nextChunk returns the chunk after h in c's in-place order (h = 0: the
// first), wrapping around; 0 when c has no chunk to visit. Chunks not yet
// carved and the page being emptied are skipped. c.mu held.
func (s *Store) nextChunk(c *class, pt *pageTable, h uint32) uint32 {
	ci := uint8(c.id - 1)
	pg := h >> s.chunkBits
	if h != 0 && int(pg) < len(pt.cls) && pt.cls[pg] == ci && pg != c.moving {
		if i := int(h&s.chunkMask) + 1; i < s.carved(c, pg) {
			return h + 1
		}
	}
	n := len(pt.cls)
	for k := 1; k <= n; k++ {
		p := (int(pg) + k) % n
		if p != 0 && pt.cls[p] == ci && uint32(p) != c.moving && s.carved(c, uint32(p)) > 0 {
			return uint32(p) << s.chunkBits
		}
	}
	return 0
}

// carved returns how many chunks of c's page pg have been handed out at
// least once. c.mu held.
func (s *Store) carved(c *class, pg uint32) int {
	if pg == c.cur {
		return c.curN
	}
	return c.perPage
}

// reclaimClock frees one item of c, a class without lists: the hand
// reclaims the first dead item it meets, passes over read ones (their
// count decremented) and TEMP ones, and evicts the first unread one;
// after clockMaxSweep chunks it evicts whatever live item comes next. It
// never blocks on a stripe lock and never frees an item of the stripe the
// caller holds. c.mu held.
func (s *Store) reclaimClock(c *class, held int, now uint32, fseq uint64) bool {
	pt := s.pt.Load()
	for step := 0; step < 2*clockMaxSweep; step++ {
		freed, end := s.handStep(c, pt, held, now, fseq, step < clockMaxSweep)
		if end {
			return false
		}
		if freed {
			return true
		}
	}
	return false
}

// handStep moves c's hand on by one chunk and acts on the item there: a
// dead one is reclaimed; a TEMP one is passed over; with secondChance (the
// hand's first sweep) so are S3-FIFO's small items (they leave through
// small's ring, s3clock.go) and read ones, their count decremented;
// otherwise an evictable item is evicted. freed reports an item freed, end
// that the class has no chunk. It never blocks on a stripe lock and never
// frees an item of the stripe the caller holds. c.mu held.
func (s *Store) handStep(c *class, pt *pageTable, held int, now uint32, fseq uint64, secondChance bool) (freed, end bool) {
	h := s.nextChunk(c, pt, c.hand)
	if h == 0 {
		return false, true
	}
	c.hand = h
	b := s.chunk(h)
	if !isItem(b) {
		return false, false
	}
	hv := s.hash(itemKey(b))
	si := int(hv & s.stripeMask)
	st := &s.stripes[si]
	if si == held || !st.mu.TryLock() {
		return false, false
	}
	defer st.mu.Unlock()
	tag := uint32(hv >> 32)
	switch hits := itemHits(b); {
	case dead(b, now, fseq) != alive:
		s.reclaimItem(c, st, tag, h, b)
	case itemSeg(b) == segTemp: // never evicted (temp.go)
		return false, false
	case s.s3 && itemSeg(b) == segHot && secondChance:
		return false, false
	case hits > 0 && secondChance:
		setHits(b, hits-1)
		c.movesWithinLRU++
		return false, false
	case !s.evictable(h):
		return false, false
	default:
		if s.ghost.adaptive && itemSeg(b) == segCold {
			s.ghost.addFrom(tag, 1) // s3clock: main's evictions tell small's share (ghost.adapt)
		}
		s.evictItem(c, st, tag, h, b, now)
	}
	return true, false
}

// reclaimDeadInPlace frees the expired and flushed items among up to limit
// chunks of c, a class without lists, visited from c.reap on: the in-place
// counterpart of reclaimDeadTails. Like the hand, it never blocks on a
// stripe lock and never frees an item of the stripe the caller holds. It
// returns the items freed. c.mu held.
func (s *Store) reclaimDeadInPlace(c *class, held int, now uint32, fseq uint64, limit int) int {
	pt := s.pt.Load()
	freed := 0
	for step := 0; step < limit; step++ {
		h := s.nextChunk(c, pt, c.reap)
		if h == 0 {
			break
		}
		c.reap = h
		b := s.chunk(h)
		if !isItem(b) {
			continue
		}
		st, tag, locked, _ := s.lockItem(b, held)
		if !locked {
			continue
		}
		if dead(b, now, fseq) != alive {
			s.reclaimItem(c, st, tag, h, b)
			freed++
		}
		st.mu.Unlock()
	}
	return freed
}

// handAge returns the idle seconds of the item under c's hand (the next
// the hand would consider, so about the oldest), 0 when there is none.
// c.mu held.
func (s *Store) handAge(c *class, now uint32) int64 {
	pt := s.pt.Load()
	h := c.hand
	for range 8 {
		if h = s.nextChunk(c, pt, h); h == 0 {
			return 0
		}
		if b := s.chunk(h); isItem(b) {
			return max(0, int64(now)-int64(itemAtime(b)))
		}
	}
	return 0
}

// walkInPlace is walk for a class without lists: it visits the items of
// p.c in page order, over the pages the class held when it started.
// c.walkMu held; it takes and releases c.mu.
func (s *Store) walkInPlace(p *walkPacer, limit int, fn func(h uint32, b []byte, st *stripe, tag uint32) bool) {
	c := p.c
	ci := uint8(c.id - 1)
	var pages []uint32
	for pg, cl := range s.pt.Load().cls {
		if pg != 0 && cl == ci {
			pages = append(pages, uint32(pg))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pg := range pages {
		for i := 0; i < s.carved(c, pg) && (limit <= 0 || p.n < limit); i++ {
			if s.pt.Load().cls[pg] != ci {
				break // moved to another class meanwhile
			}
			h := pg<<s.chunkBits | uint32(i)
			if b := s.chunk(h); isItem(b) {
				hv := s.hash(itemKey(b))
				st := &s.stripes[hv&s.stripeMask]
				if !p.lock(st) {
					i-- // look at the chunk again
					continue
				}
				p.n++
				more := fn(h, b, st, uint32(hv>>32))
				st.mu.Unlock()
				if !more {
					return
				}
			}
			p.step()
		}
	}
}
