package slab

// S3-FIFO over CLOCK's link-free items (-o eviction=s3clock, the default;
// lru.go compares the policies). Items carry no LRU links, as under CLOCK:
// 17 bytes of header. S3-FIFO's three queues are kept as:
//
//   - main (segCold): CLOCK's hand sweeping the class's chunks in place. A
//     read raises the item's 2-bit count; the hand decrements a nonzero
//     count and passes on (main's reinsertion), and evicts the first unread
//     item. A new item takes a freed chunk, behind the hand, so the hand's
//     order is main's FIFO order.
//   - small (segHot): a ring of (handle, key tag) entries per class, in
//     admission order; the hand passes small items over. The ring is the
//     only per-item cost of the queue: 8 bytes per small item, about a
//     tenth of the items (0.8 bytes an item).
//   - ghost: the store's ghost table of the key hashes evicted (lru.go),
//     shared with the list-based S3-FIFO. Under s3clock it remembers main's
//     evictions too, flagged, for the small queue's share.
//
// New items enter small, or main when their key is in the ghost as an
// eviction from small; a key main evicted enters small read once, so it
// moves to main at small's end. An item that replaces a cached one keeps
// its queue and count. Eviction takes from small while small holds at
// least its share of the class's items: the oldest small item moves to
// main if it was read, else is evicted and remembered in the ghost.
// Otherwise the hand evicts from main. The share adapts as ARC's split
// (ghost.adapt): from S3-FIFO's 10% up to 50% while keys small evicted
// come back faster than those main evicted, as when the working set
// moves on and main still holds yesterday's keys at high counts. Unless
// the share is at its least (keys main evicted have been coming back),
// each step of small also moves main's hand one chunk (handStep), so main
// turns over with the misses, not only with what enters it; what the
// hand evicts leaves small more than its share, up to the most share.
// One-off keys (scans, crawlers) leave through small without touching
// main's read items.
//
// Ring entries go stale when their item is deleted, replaced or moved by
// the page mover (the replacement or copy is pushed anew): an entry counts
// only while its chunk still holds a small item of the same key tag, which
// is checked when it is taken. Stale and duplicate entries are dropped
// when the ring holds twice as many entries as small items (plus a
// slack), so it stays within about twice the small queue. The last class (items over half a page) keeps
// lists, as under CLOCK, and runs the list-based S3-FIFO.

// smallRing is a class's small FIFO: entries are handle<<32 | key tag,
// oldest at head. Guarded by the class lock.
type smallRing struct {
	e    []uint64
	head int
	n    int
}

func (r *smallRing) push(v uint64) {
	if r.n == len(r.e) {
		e := make([]uint64, max(64, 2*len(r.e)))
		for i := range r.n {
			e[i] = r.e[(r.head+i)%len(r.e)]
		}
		r.e, r.head = e, 0
	}
	r.e[(r.head+r.n)%len(r.e)] = v
	r.n++
}

func (r *smallRing) pop() uint64 {
	v := r.e[r.head]
	r.head = (r.head + 1) % len(r.e)
	r.n--
	return v
}

// peek returns the i-th oldest entry.
func (r *smallRing) peek(i int) uint64 { return r.e[(r.head+i)%len(r.e)] }

// smallCompactSlack is how many entries beyond twice the small queue the
// ring may hold before its stale entries are dropped.
const smallCompactSlack = 1024

// smallPush appends the new small item h (key tag tag) to c's ring. c.mu
// held.
func (s *Store) smallPush(c *class, h, tag uint32) {
	if c.small.n >= 2*c.lru[segHot].n+smallCompactSlack {
		s.smallCompact(c)
	}
	c.small.push(uint64(h)<<32 | uint64(tag))
}

// smallCompact drops the ring entries whose chunk no longer holds an item
// of their key tag, and all but the newest entry of a chunk (overwrites of
// a key may put it back in a chunk it had before). c.mu held.
func (s *Store) smallCompact(c *class) {
	r := &c.small
	if r.n == 0 {
		return
	}
	pt := s.pt.Load()
	seen := make(map[uint32]struct{}, r.n/2)
	keep := 0 // kept entries, packed at the ring's end, newest last
	for i := r.n - 1; i >= 0; i-- {
		v := r.peek(i)
		h := uint32(v >> 32)
		if _, dup := seen[h]; dup {
			continue
		}
		if b := s.classChunk(c, pt, h); b != nil && uint32(s.hash(itemKey(b))>>32) == uint32(v) {
			seen[h] = struct{}{}
			keep++
			r.e[(r.head+r.n-keep)%len(r.e)] = v
		}
	}
	r.head = (r.head + r.n - keep) % len(r.e)
	r.n = keep
}

// classChunk returns chunk h if it is a carved chunk of c holding a linked
// item, else nil (the handle of a stale ring entry may point into a page
// that has since changed class). c.mu held.
func (s *Store) classChunk(c *class, pt *pageTable, h uint32) []byte {
	pg := h >> s.chunkBits
	if pg == 0 || int(pg) >= len(pt.cls) || pt.cls[pg] != uint8(c.id-1) || int(h&s.chunkMask) >= s.carved(c, pg) {
		return nil
	}
	if b := s.chunk(h); isItem(b) {
		return b
	}
	return nil
}

// reclaimS3Clock frees one item of c, a class without lists, under
// S3-FIFO over CLOCK. c.mu held.
func (s *Store) reclaimS3Clock(c *class, held int, now uint32, fseq uint64) bool {
	const maxMoves = 64
	for range maxMoves {
		small := c.lru[segHot].n
		if small == 0 || int64(small)*1000000 < int64(c.items)*s.ghost.smallShare() && c.lru[segCold].n > 0 {
			break
		}
		// Unless the share is at its least (main's evictions have been
		// coming back faster than small's: main is too short), each step
		// of small also moves main's hand one chunk, which evicts an
		// item unread since the hand last passed it. Main otherwise turns
		// over only as fast as items enter it, a fraction of the misses:
		// yesterday's hot keys sat there for most of a shift's period
		// (-m 64 shifting: 1.045x memcached's misses, 0.996x with the
		// step; stepping even at the least share gave 0.982x but cost
		// Zipf 0.8 1%). The share is rarely exactly at its least, so in
		// practice small grows past its share by what the hand evicts
		// (measured: 18% of the items on Zipf 0.99, 50% with 30% scans);
		// hence the bound at the most share: beyond, small ate main
		// under scans and its ring cost 3% more RSS.
		if s.ghost.smallShare() > s3SmallPct*10000 && int64(small)*100 < int64(c.items)*s3SmallMaxPct {
			if freed, _ := s.handStep(c, s.pt.Load(), held, now, fseq, true); freed {
				return true
			}
		}
		switch s.smallStep(c, held, now, fseq) {
		case stepFreed:
			return true
		case stepNone:
			return s.reclaimClock(c, held, now, fseq)
		}
	}
	if s.reclaimClock(c, held, now, fseq) {
		return true
	}
	// Main had nothing to give (empty, or every item busy): small.
	for range maxMoves {
		switch s.smallStep(c, held, now, fseq) {
		case stepFreed:
			return true
		case stepNone:
			return false
		}
	}
	return false
}

// smallStep takes the oldest small item whose stripe can be locked among a
// few: a dead one is reclaimed, a read one moves to main (keeping its
// count), an unread one is evicted and its key remembered in the ghost.
// Stale entries are dropped on the way; entries of busy stripes go back
// to the ring's end. c.mu held.
func (s *Store) smallStep(c *class, held int, now uint32, fseq uint64) int {
	const searchDepth = 8
	pt := s.pt.Load()
	busy := 0
	for c.small.n > 0 && busy < searchDepth {
		v := c.small.pop()
		h, tag := uint32(v>>32), uint32(v)
		b := s.classChunk(c, pt, h)
		if b == nil {
			continue
		}
		hv := s.hash(itemKey(b))
		if uint32(hv>>32) != tag {
			continue
		}
		si := int(hv & s.stripeMask)
		st := &s.stripes[si]
		if si == held || !st.mu.TryLock() {
			c.small.push(v)
			busy++
			continue
		}
		if itemSeg(b) != segHot {
			st.mu.Unlock() // the chunk now holds a main or TEMP item of the same tag
			continue
		}
		r := stepFreed
		switch {
		case dead(b, now, fseq) != alive:
			s.reclaimItem(c, st, tag, h, b)
		case itemHits(b) > 0:
			s.moveTo(c, h, b, segCold)
			c.movesToCold++
			r = stepMoved
		case s.cfg.DisableEvictions:
			c.small.push(v)
			st.mu.Unlock()
			busy++
			continue
		default:
			s.ghost.add(tag)
			s.evictItem(c, st, tag, h, b, now)
		}
		st.mu.Unlock()
		return r
	}
	return stepNone
}

// smallAge returns the idle seconds of the oldest small item of c (age_hot
// in "stats items"), 0 when there is none. c.mu held.
func (s *Store) smallAge(c *class, now uint32) int64 {
	pt := s.pt.Load()
	for i := range min(c.small.n, 8) {
		if b := s.classChunk(c, pt, uint32(c.small.peek(i)>>32)); b != nil {
			return max(0, int64(now)-int64(itemAtime(b)))
		}
	}
	return 0
}
