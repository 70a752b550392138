package slab

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
)

// Eviction policies. Each class keeps three LRU lists (HOT, WARM, COLD);
// every item is in one of them (its segment bits) and a 2-bit hit counter
// in its header records reads. Reads take only the item's stripe lock:
// they set the counter (and, at most once per 60 s, the access time, an
// atomic field); the lists change only under the class lock, on stores,
// evictions and page moves, and then only for items whose stripe lock the
// class side holds or TryLocks, as memcached does with its item locks.
//
// Segmented LRU (the default, memcached's -o lru_segmented): new items go
// to HOT. A read marks an item fetched, a second read marks it ACTIVE (hit
// counter 1) and refreshes its access time. Each store rebalances: while
// HOT holds more than hot_lru_pct of the class's items (or its tail has
// been idle longer than hot_max_factor times the COLD tail's age) the HOT
// tail moves to WARM if active, else to COLD; while WARM holds more than
// warm_lru_pct (or idles past warm_max_factor) its tail moves back to the
// WARM head if active, else to COLD. Eviction takes the COLD tail; an
// active COLD tail moves to WARM instead (memcached moves it on the read,
// through its LRU maintainer thread; here it happens when the item reaches
// the tail, which protects it at least as long).
//
// Flat LRU (-o no_lru_maintainer, "lru mode flat"): COLD only; a read moves
// the item to the head at most once per 60 s.
//
// CLOCK (-o eviction=clock): no lists, so items carry no links (17 bytes
// of header instead of 25). A class's hand sweeps its chunks in place, page
// by page; a read increments the item's 2-bit count (no class lock, no
// move); the hand decrements a nonzero count and passes on, and evicts the
// first unread live item (expired and flushed ones are reclaimed). A new
// item takes the evicted chunk, behind the hand, so it has a whole sweep to
// be read: the classic second-chance CLOCK with counts (GCLOCK). The last
// class (items over half a page) keeps a list, used as a FIFO with the same
// second chances, because its continuation chunks have no header to read.
//
// S3-FIFO (-o eviction=s3fifo; Yang et al., SOSP'23): HOT is the small
// FIFO (10% of the class's items), COLD the main FIFO; the hit counter is
// the 2-bit frequency, which every read raises (up to 3; no rate limit).
// A new item enters with frequency 0: the main FIFO when its key hash is
// in the ghost queue (recently evicted from the small FIFO; the hit uses
// the entry up), else the small one. An item that replaces a cached one
// (set, append, incr...) is the same object to S3-FIFO: it keeps the old
// one's FIFO and frequency. Eviction from the small FIFO moves an item
// read at least once to the main FIFO, with its count, and evicts an
// unread one, remembering its hash in the ghost; eviction from the main
// FIFO reinserts a read item with its count decremented and evicts an
// unread one. libCacheSim's S3FIFO.c (default parameters) differs in two
// details: it moves to main only at frequency 2, and resets the count on
// the move; on the hit-ratio benchmark (Zipf 0.99, scan-polluted) both
// measured no better, so they are not copied.

// LRU lists of a class.
const (
	segHot  = 0
	segWarm = 1
	segCold = 2
	nSegs   = 3 // the lists eviction takes from
	// segTemp holds items stored with a TTL at most temporary_ttl
	// (temp.go); eviction never looks at it.
	segTemp = 3
	nLists  = 4
)

// Policies (Store.policy).
const (
	policyFlat = iota
	policySegmented
	policyS3FIFO
	policyClock
	policyS3Clock
)

// Eviction policy names (Config.Eviction).
const (
	EvictionLRU     = "lru"
	EvictionS3FIFO  = "s3fifo"
	EvictionClock   = "clock"
	EvictionS3Clock = "s3clock"
)

// memcached's defaults for the segmented LRU.
const (
	defaultHotPct     = 20
	defaultWarmPct    = 40
	defaultHotFactor  = 0.2
	defaultWarmFactor = 2.0

	s3SmallPct = 10 // S3-FIFO small FIFO share of a class's items (s3clock: the least, see ghost.adapt)

	hitShards = 16
)

// lruList is one LRU list of a class, guarded by the class lock.
type lruList struct {
	head, tail uint32
	n          int
}

// hitShard is one cache line of get-hit counters per LRU list.
type hitShard struct {
	n [nLists]atomic.Uint64
	_ [64 - 8*nLists]byte
}

// Per-class command counters, memcached's slab_stats ("stats slabs"):
// each counts in the class of the item the command acted on.
const (
	opSet       = iota // cmd_set: storage commands, in the class of their new item
	opDeleteHit        // delete_hits: items deleted
	opIncrHit          // incr_hits: items incremented
	opDecrHit          // decr_hits: items decremented
	opCasHit           // cas_hits: CAS matched, in the class of the replaced item
	opCasBadval        // cas_badval: CAS mismatched, in the class of the item kept
	opTouchHit         // touch_hits: items touched (touch, gat, mg T)
	nOps
)

// opShard is one cache line of per-class command counters. Like
// hitShard it is sharded by stripe and updated atomically, so that the
// write paths, which hold only a stripe lock, take no class lock for it.
type opShard struct {
	n [nOps]atomic.Uint64
	_ [64 - 8*nOps]byte
}

// countOp counts op in class c; si, the key's stripe, picks the shard.
func countOp(c *class, si int, op int) {
	c.ops[si&(hitShards-1)].n[op].Add(1)
}

// lruTune holds the segmented LRU's limits ("lru tune").
type lruTune struct {
	hotPct, warmPct       int
	hotFactor, warmFactor float64
}

// initLRU validates cfg's LRU settings and applies them to s.
func (s *Store) initLRU(cfg *Config) error {
	t := lruTune{hotPct: cfg.HotLRUPct, warmPct: cfg.WarmLRUPct,
		hotFactor: cfg.HotMaxFactor, warmFactor: cfg.WarmMaxFactor}
	if t.hotPct == 0 {
		t.hotPct = defaultHotPct
	}
	if t.warmPct == 0 {
		t.warmPct = defaultWarmPct
	}
	if t.hotFactor == 0 {
		t.hotFactor = defaultHotFactor
	}
	if t.warmFactor == 0 {
		t.warmFactor = defaultWarmFactor
	}
	if err := s.SetLRUTune(t.hotPct, t.warmPct, t.hotFactor, t.warmFactor); err != nil {
		return err
	}
	if cfg.Eviction == "" {
		// Tuning memcached's segmented LRU asks for it: someone moving a
		// tuned memcached over gets what they tuned.
		if cfg.NoLRUMaintainer || cfg.HotLRUPct != 0 || cfg.WarmLRUPct != 0 || cfg.HotMaxFactor != 0 || cfg.WarmMaxFactor != 0 {
			cfg.Eviction = EvictionLRU
		} else {
			cfg.Eviction = EvictionS3Clock
		}
	}
	switch cfg.Eviction {
	case EvictionLRU:
		cfg.Eviction = EvictionLRU
		if cfg.NoLRUMaintainer {
			s.policy.Store(policyFlat)
		} else {
			s.policy.Store(policySegmented)
		}
	case EvictionS3FIFO:
		s.policy.Store(policyS3FIFO)
		s.s3 = true
	case EvictionClock:
		s.policy.Store(policyClock)
	case EvictionS3Clock:
		s.policy.Store(policyS3Clock)
		s.s3 = true
		s.ghost.adaptive = true
	default:
		return fmt.Errorf("slab: unknown eviction policy %q (lru, s3fifo, clock or s3clock)", cfg.Eviction)
	}
	s.linkAll = cfg.Eviction != EvictionClock && cfg.Eviction != EvictionS3Clock
	return nil
}

// SetLRUTune sets the segmented LRU's limits, as memcached's "lru tune":
// the percentages of a class's items HOT and WARM may hold (together at
// most 80) and the idle-age factors (relative to the COLD tail's age)
// past which HOT and WARM items drop to COLD.
func (s *Store) SetLRUTune(hotPct, warmPct int, hotFactor, warmFactor float64) error {
	switch {
	case hotPct < 1 || warmPct < 1 || hotPct > 80 || warmPct > 80:
		return errors.New("slab: hot_lru_pct and warm_lru_pct must be between 1 and 80")
	case hotPct+warmPct > 80:
		return errors.New("slab: hot_lru_pct + warm_lru_pct must not exceed 80")
	case !(hotFactor > 0) || !(warmFactor > 0) || math.IsInf(hotFactor, 0) || math.IsInf(warmFactor, 0):
		return errors.New("slab: hot_max_factor and warm_max_factor must be greater than 0")
	}
	s.tune.Store(&lruTune{hotPct: hotPct, warmPct: warmPct, hotFactor: hotFactor, warmFactor: warmFactor})
	return nil
}

// LRUTune returns hot_lru_pct, warm_lru_pct, hot_max_factor and
// warm_max_factor.
func (s *Store) LRUTune() (hotPct, warmPct int, hotFactor, warmFactor float64) {
	t := s.tune.Load()
	return t.hotPct, t.warmPct, t.hotFactor, t.warmFactor
}

// SetLRUSegmented switches the LRU between segmented (memcached's "lru
// mode segmented") and flat ("lru mode flat"). It has no effect, and
// returns false, under S3-FIFO and CLOCK. Items keep their lists; a flat
// LRU evicts from COLD and refills COLD from the other lists when it runs
// dry.
func (s *Store) SetLRUSegmented(on bool) bool {
	if s.s3 || !s.linkAll {
		return false
	}
	if on {
		s.policy.Store(policySegmented)
	} else {
		s.policy.Store(policyFlat)
	}
	return true
}

// LRUSegmented reports whether the segmented LRU is in use.
func (s *Store) LRUSegmented() bool { return s.policy.Load() == policySegmented }

// Eviction returns the eviction policy (EvictionLRU, EvictionS3FIFO or
// EvictionClock).
func (s *Store) Eviction() string { return s.cfg.Eviction }

// listPush puts h at the head of list seg of c. c.mu and h's stripe lock
// held.
func (s *Store) listPush(c *class, seg int, h uint32, b []byte) {
	l := &c.lru[seg]
	setSeg(b, seg)
	if s.s3 {
		s.ghost.items.Add(1)
	}
	if !c.links {
		l.n++
		return
	}
	setLRUPrev(b, 0)
	setLRUNext(b, l.head)
	if l.head != 0 {
		setLRUPrev(s.chunk(l.head), h)
	} else {
		l.tail = h
	}
	l.head = h
	l.n++
}

// listRemove takes h out of its list. c.mu and h's stripe lock held. A
// walker's cursor on h moves on to h's neighbour.
func (s *Store) listRemove(c *class, h uint32, b []byte) {
	seg := itemSeg(b)
	l := &c.lru[seg]
	if s.s3 {
		s.ghost.items.Add(-1)
	}
	if !c.links {
		l.n--
		return
	}
	p, n := lruPrev(b), lruNext(b)
	if c.cursor == h {
		if c.cursorUp {
			c.cursor = p
		} else {
			c.cursor = n
		}
	}
	if p != 0 {
		setLRUNext(s.chunk(p), n)
	} else {
		l.head = n
	}
	if n != 0 {
		setLRUPrev(s.chunk(n), p)
	} else {
		l.tail = p
	}
	l.n--
}

// moveTo moves h to the head of list seg. c.mu and h's stripe lock held.
func (s *Store) moveTo(c *class, h uint32, b []byte, seg int) {
	s.listRemove(c, h, b)
	s.listPush(c, seg, h, b)
}

// linkSeg returns the list of c the new item b (handle h) enters; oldb is
// the item it replaces (nil if none). c.mu and b's stripe lock held.
func (s *Store) linkSeg(c *class, h, tag uint32, b, oldb []byte) int {
	switch s.policy.Load() {
	case policySegmented:
		return segHot
	case policyS3Clock:
		seg := s.s3Admit(c, tag, b, oldb)
		if seg == segHot && !c.links {
			s.smallPush(c, h, tag)
		}
		return seg
	case policyS3FIFO:
		return s.s3Admit(c, tag, b, oldb)
	case policyClock:
		if oldb != nil {
			setHits(b, itemHits(oldb)) // as S3-FIFO: the same object
		}
	}
	return segCold // flat LRU, CLOCK
}

// s3Admit returns the S3-FIFO queue the new item b enters: small (segHot)
// or main (segCold). c.mu and b's stripe lock held.
func (s *Store) s3Admit(c *class, tag uint32, b, oldb []byte) int {
	if oldb != nil {
		// A replaced item is the same object to S3-FIFO (a request
		// for a cached key, not a new admission): the new one keeps
		// its queue and frequency.
		setHits(b, itemHits(oldb))
		if itemSeg(oldb) == segHot {
			return segHot
		}
		return segCold
	}
	// Main on a ghost hit, and (as libCacheSim's S3FIFO) while the
	// class has never evicted and its small FIFO holds its share.
	// Under s3clock a class fills main alone: its ring costs nothing until
	// there is something to evict.
	if hit, fromMain := s.ghost.take(tag); hit {
		s.ghost.adapt(fromMain)
		c.ghostHits++
		if !fromMain {
			return segCold
		}
		// A key main evicted goes to main through small: read once
		// already, it moves on at small's end. Entering main directly
		// would starve small of new items in a class whose keys all
		// come back, leaving small's oldest to age, and the class look
		// old to the page mover.
		setHits(b, 1)
	}
	if c.evicted == 0 && (!c.links || c.lru[segHot].n*100 >= (c.items+1)*s3SmallPct) {
		return segCold
	}
	return segHot
}

// noteHit records a get hit on b (hits_to_hot/warm/cold). b's stripe lock
// held.
func (s *Store) noteHit(si int, h uint32, b []byte) {
	c := s.classOf(h)
	c.hits[si&(hitShards-1)].n[itemSeg(b)].Add(1)
}

// tailAge returns the idle seconds of the tail of list seg, 0 when empty.
// c.mu held.
func (s *Store) tailAge(c *class, seg int, now uint32) int64 {
	if !c.links {
		switch {
		case seg == segCold:
			return s.handAge(c, now) // the next the hand considers
		case seg == segHot && s.s3:
			return s.smallAge(c, now)
		}
		return 0
	}
	if t := c.lru[seg].tail; t != 0 {
		return max(0, int64(now)-int64(itemAtime(s.chunk(t))))
	}
	return 0
}

// oldestAge returns the largest idle time among c's list tails (the age
// the page mover compares). c.mu held.
func (s *Store) oldestAge(c *class, now uint32) int64 {
	var a int64
	for seg := range nSegs {
		a = max(a, s.tailAge(c, seg, now))
	}
	return a
}

// lockItem locks the stripe of the item b for the class side, which holds
// c.mu: held (the stripe the caller already holds) is used as is, any
// other is TryLocked. It returns the stripe, the key's tag, whether it was
// locked here (and must be unlocked) and false when the stripe is busy.
func (s *Store) lockItem(b []byte, held int) (st *stripe, tag uint32, locked, ok bool) {
	hv := s.hash(itemKey(b))
	si := int(hv & s.stripeMask)
	st = &s.stripes[si]
	if si == held {
		return st, uint32(hv >> 32), false, true
	}
	if !st.mu.TryLock() {
		return nil, 0, false, false
	}
	return st, uint32(hv >> 32), true, true
}

// reclaimItem frees the dead item h. c.mu and its stripe lock held.
func (s *Store) reclaimItem(c *class, st *stripe, tag, h uint32, b []byte) {
	st.removeAt(st.posOf(tag, h))
	c.reclaimed++
	if b[offBits]&bitFetched == 0 {
		c.expiredUnfetched++
	}
	s.releaseLocked(c, h, b)
}

// evictable reports whether the live item h may be evicted: not with
// evictions disabled (-M), and not while a reply is being written from it
// (pinned: evicting it would free nothing, pin.go). Every policy asks it
// before choosing a victim. h's stripe lock held.
func (s *Store) evictable(h uint32) bool {
	return !s.cfg.DisableEvictions && !s.pinned(h)
}

// evictItem evicts the live item h. c.mu and its stripe lock held.
func (s *Store) evictItem(c *class, st *stripe, tag, h uint32, b []byte, now uint32) {
	st.removeAt(st.posOf(tag, h))
	c.evicted++
	if itemExp(b) != 0 {
		c.evictedNonzero++
	}
	bits := b[offBits]
	if bits&bitFetched == 0 {
		c.evictedUnfetched++
	}
	if bits&hitsMask != 0 {
		c.evictedActive++
	}
	c.evictedTime = int64(now) - int64(itemAtime(b))
	s.noteEvicted(c, b, now)
	s.releaseLocked(c, h, b)
	s.noteEviction(c)
}

// deadTailSearch is how many items from a list's tail reclaimDeadTail
// looks at for one that it can lock (memcached's lru_pull_tail tries 5).
const deadTailSearch = 5

// reclaimDeadTail frees up to limit dead items from the tail of c's list
// seg, as memcached's lru_pull_tail without LRU_PULL_EVICT: it looks at a
// few items from the tail, reclaims the dead ones and stops at the first
// live one (the crawler finds dead items further up). Items of the stripe
// the caller holds, and of busy stripes, are skipped. It returns the items
// freed. c.mu held.
func (s *Store) reclaimDeadTail(c *class, seg, held int, now uint32, fseq uint64, limit int) int {
	const searchDepth = deadTailSearch
	freed := 0
	for freed < limit {
		n := 0
		for h, tries := c.lru[seg].tail, 0; h != 0 && tries < searchDepth && freed+n < limit; tries++ {
			b := s.chunk(h)
			prev := lruPrev(b)
			st, tag, locked, ok := s.lockItem(b, held)
			if !ok || !locked {
				h = prev
				continue
			}
			if dead(b, now, fseq) == alive {
				st.mu.Unlock()
				break
			}
			s.reclaimItem(c, st, tag, h, b)
			st.mu.Unlock()
			n++
			h = prev
		}
		if n == 0 {
			break
		}
		freed += n
	}
	return freed
}

// reclaimDeadTails frees up to limit dead items from the tails of every
// list of c (HOT, WARM, COLD and TEMP; S3-FIFO's small and main FIFOs).
// c.mu held.
func (s *Store) reclaimDeadTails(c *class, held int, now uint32, fseq uint64, limit int) int {
	freed := 0
	for seg := range c.lru {
		if c.lru[seg].n > 0 && freed < limit {
			freed += s.reclaimDeadTail(c, seg, held, now, fseq, limit-freed)
		}
	}
	return freed
}

// maintainLRU is the LRU maintainer's reclaiming (maintenance goroutine):
// memcached's maintainer thread pulls the dead items off the tails of each
// class's lists, so expired and flushed items give their memory back
// before a store needs it. Under the flat LRU (no_lru_maintainer, "lru mode
// flat") memcached's maintainer leaves COLD to the stores, and so does
// this (allocChunk). Classes whose items carry no links (CLOCK) are left to
// the crawler and the clock hand.
func (s *Store) maintainLRU() {
	now, fseq := s.now()
	flat := s.policy.Load() == policyFlat
	for _, c := range s.classes {
		c.mu.Lock()
		switch {
		case flat || !c.links:
			if c.lru[segTemp].n > 0 {
				s.reclaimTemp(c, -1, now, fseq, tempReclaimMax)
			}
		case c.items > 0:
			s.reclaimDeadTails(c, -1, now, fseq, tempReclaimMax)
		}
		c.mu.Unlock()
	}
}

// reclaimTail frees one item of c: the first expired or flushed item near
// the tail of the list eviction takes from, else (unless evictions are
// disabled) the item the policy evicts, moving protected items on its way.
// It never blocks on a stripe lock (the lock order is stripe, then class),
// and never frees an item of the stripe the caller holds. c.mu held.
func (s *Store) reclaimTail(c *class, held int, now uint32, fseq uint64) bool {
	p := s.policy.Load()
	switch {
	case p == policyClock && !c.links:
		return s.reclaimClock(c, held, now, fseq)
	case p == policyS3Clock && !c.links:
		return s.reclaimS3Clock(c, held, now, fseq)
	case p == policyS3FIFO, p == policyClock, p == policyS3Clock:
		// CLOCK's last class: every item is in COLD, S3-FIFO's main FIFO.
		return s.reclaimS3(c, held, now, fseq)
	}
	for range 10 {
		if s.evictCold(c, held, now, fseq, p == policySegmented) {
			return true
		}
		if !s.refillCold(c, held, now, fseq) {
			return false
		}
	}
	return false
}

// evictCold frees one item from COLD's tail: the first dead one among the
// last few, else the last live one, moving active ones (segmented) to WARM.
func (s *Store) evictCold(c *class, held int, now uint32, fseq uint64, segmented bool) bool {
	const searchDepth = 5
	const maxMoves = 16
	var victim uint32
	var vst *stripe
	var vtag uint32
	tries, moves := 0, 0
	for h := c.lru[segCold].tail; h != 0 && tries < searchDepth; {
		b := s.chunk(h)
		prev := lruPrev(b)
		hv := s.hash(itemKey(b))
		si := int(hv & s.stripeMask)
		if si == held {
			tries++
			h = prev
			continue
		}
		st := &s.stripes[si]
		if st != vst && !st.mu.TryLock() {
			tries++
			h = prev
			continue
		}
		tag := uint32(hv >> 32)
		if dead(b, now, fseq) != alive {
			s.reclaimItem(c, st, tag, h, b)
			if vst != nil && vst != st {
				vst.mu.Unlock()
			}
			st.mu.Unlock()
			return true
		}
		if segmented && victim == 0 && moves < maxMoves && b[offBits]&hitsMask != 0 {
			// Second chance: an active item leaves COLD for WARM.
			setHits(b, 0)
			s.moveTo(c, h, b, segWarm)
			c.movesToWarm++
			moves++
			st.mu.Unlock()
			h = prev
			continue
		}
		tries++
		if victim == 0 && s.evictable(h) {
			victim, vst, vtag = h, st, tag
		} else if st != vst {
			st.mu.Unlock()
		}
		h = prev
	}
	if victim == 0 {
		return false
	}
	s.evictItem(c, vst, vtag, victim, s.chunk(victim), now)
	vst.mu.Unlock()
	return true
}

// refillCold moves an item into COLD when eviction found nothing there:
// HOT's tail (to WARM if active), else WARM's tail. It reports progress.
func (s *Store) refillCold(c *class, held int, now uint32, fseq uint64) bool {
	if s.pullTail(c, segHot, -1, 0, held, now, fseq, false) {
		return true
	}
	return s.pullTail(c, segWarm, -1, 0, held, now, fseq, true)
}

// juggle rebalances c's HOT and WARM lists after a store (segmented LRU),
// a few moves at a time. c.mu and the held stripe locked.
func (s *Store) juggle(c *class, held int, now uint32, fseq uint64) {
	t := s.tune.Load()
	hotMax := c.items * t.hotPct / 100
	warmMax := c.items * t.warmPct / 100
	coldAge := float64(s.tailAge(c, segCold, now))
	hotAge := int64(coldAge * t.hotFactor)
	warmAge := int64(coldAge * t.warmFactor)
	for range 3 {
		moved := false
		if c.lru[segHot].n > hotMax || s.tailAge(c, segHot, now) > hotAge {
			moved = s.pullTail(c, segHot, hotMax, hotAge, held, now, fseq, false)
		}
		if c.lru[segWarm].n > warmMax || s.tailAge(c, segWarm, now) > warmAge {
			moved = s.pullTail(c, segWarm, warmMax, warmAge, held, now, fseq, false) || moved
		}
		if !moved {
			return
		}
	}
}

// pullTail moves the tail item of HOT or WARM (the last whose stripe can
// be locked among a few): a dead item is reclaimed; an active one moves to
// WARM's head (clearing ACTIVE); an inactive one moves to COLD when the
// list holds more than limit items (limit < 0: always) or the item has been
// idle longer than maxAge. force moves even active items to COLD. It
// reports whether it moved or freed an item. c.mu held.
func (s *Store) pullTail(c *class, seg, limit int, maxAge int64, held int, now uint32, fseq uint64, force bool) bool {
	const searchDepth = 5
	for h, tries := c.lru[seg].tail, 0; h != 0 && tries < searchDepth; tries++ {
		b := s.chunk(h)
		prev := lruPrev(b)
		st, tag, locked, ok := s.lockItem(b, held)
		if !ok {
			h = prev
			continue
		}
		done := true
		switch {
		case locked && dead(b, now, fseq) != alive:
			s.reclaimItem(c, st, tag, h, b)
		case b[offBits]&hitsMask != 0 && !force:
			setHits(b, 0)
			s.moveTo(c, h, b, segWarm)
			if seg == segWarm {
				c.movesWithinLRU++
			} else {
				c.movesToWarm++
			}
		case limit < 0 || c.lru[seg].n > limit || int64(now)-int64(itemAtime(b)) > maxAge:
			setHits(b, 0)
			s.moveTo(c, h, b, segCold)
			c.movesToCold++
		default:
			done = false
		}
		if locked {
			st.mu.Unlock()
		}
		return done
	}
	return false
}

// reclaimS3 frees one item of c under S3-FIFO. c.mu held.
func (s *Store) reclaimS3(c *class, held int, now uint32, fseq uint64) bool {
	const maxMoves = 64
	moves := 0
	for range maxMoves + 4 {
		small := c.lru[segHot].n > 0 && (c.lru[segHot].n*100 >= c.items*s3SmallPct || c.lru[segCold].n == 0)
		seg := segCold
		if small {
			seg = segHot
		}
		r := s.s3Step(c, seg, held, now, fseq, moves >= maxMoves)
		if r == stepNone {
			// Nothing to take from that FIFO (busy or empty): the other.
			r = s.s3Step(c, segHot+segCold-seg, held, now, fseq, moves >= maxMoves)
		}
		switch r {
		case stepFreed:
			return true
		case stepNone:
			return false
		}
		moves++
	}
	return false
}

// Outcomes of s3Step.
const (
	stepNone = iota
	stepMoved
	stepFreed
)

// s3Step looks at the tail of FIFO seg (the last whose stripe can be
// locked among a few): a dead item is reclaimed; a read one moves (small:
// to main; main: reinserted, its count decremented) unless force; else it
// is evicted (from small, remembered in the ghost). c.mu held.
func (s *Store) s3Step(c *class, seg, held int, now uint32, fseq uint64, force bool) int {
	const searchDepth = 5
	for h, tries := c.lru[seg].tail, 0; h != 0 && tries < searchDepth; tries++ {
		b := s.chunk(h)
		prev := lruPrev(b)
		hv := s.hash(itemKey(b))
		si := int(hv & s.stripeMask)
		st := &s.stripes[si]
		if si == held || !st.mu.TryLock() {
			h = prev
			continue
		}
		tag := uint32(hv >> 32)
		r := stepFreed
		hits := itemHits(b)
		switch {
		case dead(b, now, fseq) != alive:
			s.reclaimItem(c, st, tag, h, b)
		case hits > 0 && !force && seg == segHot:
			// To main, keeping its count (libCacheSim resets it; no
			// measurable difference).
			s.moveTo(c, h, b, segCold)
			c.movesToCold++
			r = stepMoved
		case hits > 0 && !force:
			setHits(b, hits-1)
			s.moveTo(c, h, b, segCold)
			c.movesWithinLRU++
			r = stepMoved
		case !s.evictable(h):
			st.mu.Unlock()
			h = prev
			continue
		default:
			if seg == segHot {
				s.ghost.add(tag)
			}
			s.evictItem(c, st, tag, h, b, now)
		}
		st.mu.Unlock()
		return r
	}
	return stepNone
}

// ghost is S3-FIFO's ghost queue: the hashes of the items most recently
// evicted from the small FIFOs, 90% as many as the cache holds (the
// paper's size, and libCacheSim's default). It is a set-associative table
// of 4-byte entries (a 16-bit fingerprint of the key's hash, the epoch of
// the insertion, a flag) updated with atomics, so classes evicting at
// once need no common lock. An epoch is 1/ghostEpochs of the window's
// insertions; an entry counts only while fewer than ghostEpochs epochs
// have passed since it was added, which makes the table a FIFO of the
// window's length.
//
// The table is made on the first eviction from a small FIFO, sized for
// the items the store holds then (a cache that never evicts needs no
// ghost), and made anew, empty, should the items outgrow it: 4 bytes for
// each of 1.125 times the window, no power-of-two rounding, so 4 to 8
// bytes an item (s3fifo's 90%, s3clock's 180%) instead of a share of -m.
type ghost struct {
	tab   atomic.Pointer[ghostTable]
	epoch atomic.Uint32 // the current epoch (its low ghostEpochBits count)
	left  atomic.Int64  // insertions left in the current epoch
	items atomic.Int64  // items in the store (S3-FIFO lists)
	small atomic.Int64  // s3clock: the small queue's share of a class's items, in ppm (0: s3SmallPct)
	// adaptive is set under s3clock: main's evictions enter the ghost
	// too, the window is ghostPctBoth of the items, and ghost hits move
	// the small queue's share (adapt). Set before the store is used.
	adaptive bool
}

// window returns how many ghost insertions an entry outlives.
func (g *ghost) window() int64 {
	pct := int64(ghostPct)
	if g.adaptive {
		pct = ghostPctBoth
	}
	return g.items.Load() * pct / 100
}

// smallShare returns the small queue's share of a class's items under
// s3clock, in ppm.
func (g *ghost) smallShare() int64 {
	if v := g.small.Load(); v > 0 {
		return v
	}
	return s3SmallPct * 10000
}

// Bounds and steps of s3clock's small queue share (ghost.adapt).
const (
	s3SmallMaxPct = 50 // the most; the least is s3SmallPct
	// s3GrowItems and s3ShrinkItems are how many items' worth of share
	// a ghost hit moves: a small-queue ghost hit grows small by one item,
	// a main one shrinks it by 1.5, so that small stays at its least on
	// a stable Zipf (measured: shrinking by 1 settled at 20% on Zipf 0.8
	// and missed 3% more there) and grows only while keys evicted from
	// small come back faster than those evicted from main.
	s3GrowItems   = 2 // in halves of an item
	s3ShrinkItems = 3
)

// adapt moves s3clock's small queue share as ARC moves its split (Megiddo
// and Modha, FAST'03): a key evicted unread from small and requested again
// (its ghost entry is from small) says small was too short to see its
// second request, a key evicted from main says main was too short. When
// the working set moves on, the new keys come back through the small
// ghost, small grows and the hand evicts yesterday's keys from a shorter
// main, which held them at counts of 3; on a stable Zipf small stays at
// its least, S3-FIFO's 10%. Only s3clock records main evictions
// (adaptive is set); under s3fifo the share stays at s3SmallPct.
func (g *ghost) adapt(fromMain bool) {
	if !g.adaptive {
		return
	}
	half := int64(1000000/2) / max(g.items.Load(), 1) // ppm of half an item
	v := g.smallShare()
	if fromMain {
		v -= s3ShrinkItems * half
	} else {
		v += s3GrowItems * half
	}
	// Load and Store, not a CAS loop: classes adapting at once may lose
	// a step, which a share that moves by a thousandth at a time affords.
	g.small.Store(min(max(v, s3SmallPct*10000), s3SmallMaxPct*10000))
}

// ghostTable holds the ghost's entries, ghostWays to a bucket. An entry
// is fingerprint<<16 | epoch<<1 | main; 0 is an empty slot (fingerprints
// are never 0).
type ghostTable struct {
	slots   []atomic.Uint32
	buckets uint64
}

const (
	ghostWays = 4
	ghostMin  = 1 << 12 // fewest entries
	// ghostPct is the ghost's length in percent of the items when it
	// holds small's evictions only (S3-FIFO's 90%); ghostPctBoth when it
	// holds main's too (s3clock), so small's evictions are remembered
	// about as long.
	ghostPct     = 90
	ghostPctBoth = 180
	// ghostEpochs is the window's length in epochs: an entry's age is
	// known to 1/256 of the window. Epochs wrap after 2^15, 128 windows:
	// an entry a bucket kept that long may count again, a rare false hit
	// that costs no more than a wrong guess of the policy.
	ghostEpochs    = 256
	ghostEpochBits = 15
	ghostEpochMask = 1<<ghostEpochBits - 1
)

// table returns the ghost's table, making or growing it to hold its window
// (ghost.window).
func (g *ghost) table() *ghostTable {
	t := g.tab.Load()
	want := max(g.window(), ghostMin)
	if t != nil && int64(len(t.slots)) >= want {
		return t
	}
	buckets := uint64(want+want/8+ghostWays-1) / ghostWays
	nt := &ghostTable{slots: make([]atomic.Uint32, buckets*ghostWays), buckets: buckets}
	if g.tab.CompareAndSwap(t, nt) {
		return nt
	}
	return g.tab.Load() // another class made one meanwhile
}

// bucket returns tag's bucket and its fingerprint in it.
func (t *ghostTable) bucket(tag uint32) ([]atomic.Uint32, uint32) {
	mixed := tag * 0x9E3779B9
	i := uint64(mixed) * t.buckets >> 32 * ghostWays
	fp := tag & 0xffff
	if fp == 0 {
		fp = 1
	}
	return t.slots[i : i+ghostWays], fp << 16
}

// add remembers tag, replacing the oldest entry of its bucket.
func (g *ghost) add(tag uint32) { g.addFrom(tag, 0) }

// addFrom remembers tag, flagged as evicted from main when main is 1.
func (g *ghost) addFrom(tag uint32, main uint32) {
	if g.left.Add(-1) < 0 {
		// Load and Store: a racing insertion may start an epoch early
		// or late by one entry, which the 1/256 resolution affords.
		g.left.Store(max(g.window()/ghostEpochs, 1))
		g.epoch.Add(1)
	}
	epoch := g.epoch.Load() & ghostEpochMask
	bk, fp := g.table().bucket(tag)
	oldest, age := 0, uint32(0)
	for i := range bk {
		e := bk[i].Load()
		if e == 0 {
			oldest = i
			break
		}
		if a := (epoch - e>>1) & ghostEpochMask; a >= age {
			oldest, age = i, a
		}
	}
	bk[oldest].Store(fp | epoch<<1 | main)
}

// take reports whether tag is in the ghost, and forgets it; fromMain
// reports that its entry is of an eviction from main (s3clock).
func (g *ghost) take(tag uint32) (hit, fromMain bool) {
	t := g.tab.Load()
	if t == nil {
		return false, false
	}
	epoch := g.epoch.Load() & ghostEpochMask
	bk, fp := t.bucket(tag)
	for i := range bk {
		e := bk[i].Load()
		if e&0xffff0000 == fp && (epoch-e>>1)&ghostEpochMask < ghostEpochs {
			bk[i].CompareAndSwap(e, 0)
			return true, e&1 != 0
		}
	}
	return false, false
}
