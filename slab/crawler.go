package slab

import (
	"runtime"
	"sync/atomic"
	"time"
)

// The LRU crawler walks a class's LRU from the tail and reclaims expired
// and flushed items, as memcached's: on request ("lru_crawler crawl") and
// on its own from the maintenance goroutine, backing off while crawls find
// little to reclaim. Walks (crawls and key dumps) hold the class lock for a
// batch of items at a time; a cursor in the class survives the removal of
// the item it points at, so they can drop the lock between batches.

// CrawlResult is the outcome of Crawl, named after memcached's replies.
type CrawlResult uint8

// Crawl results.
const (
	CrawlOK         CrawlResult = iota // OK
	CrawlRunning                       // BUSY currently processing crawler request
	CrawlBadClass                      // BADCLASS invalid class id
	CrawlNotStarted                    // NOTSTARTED no items to crawl
	CrawlDisabled                      // CLIENT_ERROR lru crawler disabled
)

// MaxClassID is the largest class id the protocol accepts (memcached's
// MAX_NUMBER_OF_SLAB_CLASSES - 1).
const MaxClassID = 63

const (
	walkBatch       = 256 // items per class-lock hold
	crawlsPerSleep  = 1000
	autocrawlMin    = 5 * time.Second
	autocrawlMax    = time.Hour
	autocrawlFirst  = 60 * time.Second
	defaultCrawlUS  = 100
	maxCrawlSleepUS = 1000000
)

type crawler struct {
	enabled  atomic.Bool
	running  atomic.Bool
	sleepUS  atomic.Int64 // pause every crawlsPerSleep items (lru_crawler sleep)
	tocrawl  atomic.Int64 // items per class per crawl, 0 = all (lru_crawler tocrawl)
	starts   atomic.Uint64
	interval time.Duration // autocrawl period; maintenance goroutine only
	next     time.Time
}

// SetCrawler enables or disables the LRU crawler (lru_crawler
// enable|disable); it reports false when it was already in that state.
func (s *Store) SetCrawler(on bool) bool { return s.crawler.enabled.Swap(on) != on }

// CrawlerEnabled reports whether the LRU crawler is enabled.
func (s *Store) CrawlerEnabled() bool { return s.crawler.enabled.Load() }

// SetCrawlerSleep sets the pause, in microseconds, every 1000 items crawled.
func (s *Store) SetCrawlerSleep(us int64) { s.crawler.sleepUS.Store(us) }

// SetCrawlerToCrawl sets the most items checked per class per crawl (0 = all).
func (s *Store) SetCrawlerToCrawl(n int64) { s.crawler.tocrawl.Store(n) }

// CrawlerSettings returns lru_crawler_sleep and lru_crawler_tocrawl.
func (s *Store) CrawlerSettings() (sleepUS, tocrawl int64) {
	return s.crawler.sleepUS.Load(), s.crawler.tocrawl.Load()
}

// Crawl starts a background crawl of the given class ids (1..MaxClassID;
// nil = all; an empty non-nil list starts nothing) that reclaims expired
// and flushed items. Ids of classes that do not exist are accepted, as
// memcached accepts any id below 64.
func (s *Store) Crawl(ids []int) CrawlResult {
	if !s.crawler.enabled.Load() {
		return CrawlDisabled
	}
	if s.crawler.running.Load() {
		return CrawlRunning
	}
	var cls []*class
	if ids == nil {
		cls = s.classes
	}
	for _, id := range ids {
		if id < 1 || id > MaxClassID {
			return CrawlBadClass
		}
		if id <= len(s.classes) {
			cls = append(cls, s.classes[id-1])
		}
	}
	if ids != nil && len(ids) == 0 {
		return CrawlNotStarted
	}
	if !s.crawler.running.CompareAndSwap(false, true) {
		return CrawlRunning
	}
	s.crawler.starts.Add(1)
	go func() {
		s.crawl(cls)
		s.crawler.running.Store(false)
	}()
	return CrawlOK
}

// crawl reclaims the dead items of each class; it returns the items
// checked and reclaimed.
func (s *Store) crawl(cls []*class) (checked, reclaimed uint64) {
	now, fseq := s.now()
	pause := time.Duration(s.crawler.sleepUS.Load()) * time.Microsecond
	limit := int(s.crawler.tocrawl.Load())
	for _, c := range cls {
		s.walk(c, true, limit, pause, func(h uint32, b []byte, st *stripe, tag uint32) bool {
			c.crawlerChecked++
			checked++
			if dead(b, now, fseq) != alive {
				st.removeAt(st.posOf(tag, h))
				c.crawlerReclaimed++
				reclaimed++
				s.releaseLocked(c, h, b)
			}
			return true
		}, nil)
	}
	return checked, reclaimed
}

// crawlerTick runs the scheduled crawl (maintenance goroutine).
func (s *Store) crawlerTick() {
	cr := &s.crawler
	now := time.Now()
	if cr.next.IsZero() {
		cr.interval = autocrawlFirst
		cr.next = now.Add(cr.interval)
		return
	}
	if now.Before(cr.next) || !cr.enabled.Load() || !cr.running.CompareAndSwap(false, true) {
		return
	}
	cr.starts.Add(1)
	checked, reclaimed := s.crawl(s.classes)
	cr.running.Store(false)
	switch {
	case checked > 0 && reclaimed*10 > checked:
		cr.interval = max(cr.interval/2, autocrawlMin)
	case reclaimed*100 < checked || checked == 0:
		cr.interval = min(cr.interval*2, autocrawlMax)
	}
	cr.next = time.Now().Add(cr.interval)
}

// walkPacer paces a walk over class c, which runs with c.mu held: every
// walkBatch steps it drops the lock, calls between (if set), and sleeps
// pause once per crawlsPerSleep items visited (else yields).
type walkPacer struct {
	c       *class
	pause   time.Duration
	between func()
	n       int // items visited
	batch   int // steps since the last break
	slept   int // pauses so far
}

// lock locks st, the stripe of the item the walk is at. When st is busy it
// waits for it without the class lock (the lock order is stripe, then
// class) and returns false: the walk must look at its position again.
func (p *walkPacer) lock(st *stripe) bool {
	if st.mu.TryLock() {
		return true
	}
	p.c.mu.Unlock()
	st.mu.Lock()
	st.mu.Unlock()
	p.c.mu.Lock()
	return false
}

// step counts one step of the walk, taking a break when one is due.
func (p *walkPacer) step() {
	if p.batch++; p.batch < walkBatch {
		return
	}
	p.batch = 0
	p.c.mu.Unlock()
	if p.between != nil {
		p.between()
	}
	if p.pause > 0 && p.n/crawlsPerSleep > p.slept {
		p.slept = p.n / crawlsPerSleep
		time.Sleep(p.pause)
	} else {
		runtime.Gosched()
	}
	p.c.mu.Lock()
}

// walk visits up to limit items (0 = all) of c's LRU lists, from the tails (up)
// or from the head, calling fn with c.mu and the item's stripe lock held;
// fn may release the item. fn returns false to stop. Every walkBatch items
// the locks are dropped and between (if set) is called; every
// crawlsPerSleep items the walk also sleeps pause.
func (s *Store) walk(c *class, up bool, limit int, pause time.Duration,
	fn func(h uint32, b []byte, st *stripe, tag uint32) bool, between func()) {
	c.walkMu.Lock()
	defer c.walkMu.Unlock()
	p := walkPacer{c: c, pause: pause, between: between}
	if !c.links {
		s.walkInPlace(&p, limit, fn)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.cursor = 0 }()
	c.cursorUp = up
	// The lists in eviction order from the tail (COLD, WARM, HOT), or the
	// reverse from the head; then TEMP, which the crawler must reclaim
	// from too (eviction never does).
	order := [nLists]int{segCold, segWarm, segHot, segTemp}
	if !up {
		order = [nLists]int{segHot, segWarm, segCold, segTemp}
	}
	for _, seg := range order {
		if up {
			c.cursor = c.lru[seg].tail
		} else {
			c.cursor = c.lru[seg].head
		}
		for c.cursor != 0 && (limit <= 0 || p.n < limit) {
			h := c.cursor
			b := s.chunk(h)
			hv := s.hash(itemKey(b))
			st := &s.stripes[hv&s.stripeMask]
			if !p.lock(st) {
				continue // the cursor may have moved on meanwhile
			}
			if up {
				c.cursor = lruPrev(b)
			} else {
				c.cursor = lruNext(b)
			}
			p.n++
			more := fn(h, b, st, uint32(hv>>32))
			st.mu.Unlock()
			if !more {
				return
			}
			p.step()
		}
	}
}

// DumpItem describes an item to a key dump. Key is valid only during the
// callback.
type DumpItem struct {
	Key        []byte
	Exptime    int64 // absolute Unix seconds, 0 = never
	LastAccess int64 // Unix seconds
	CAS        uint64
	Fetched    bool
	Class      int
	Size       int // bytes the item takes (key, value and header)
	ValueLen   int
}

func (s *Store) dumpItem(d *DumpItem, c *class, b []byte) {
	l := s.readLayout(b)
	*d = DumpItem{
		Key:        itemKey(b),
		Exptime:    int64(itemExp(b)),
		LastAccess: int64(itemAtime(b)),
		CAS:        s.shownCAS(b),
		Fetched:    b[offBits]&bitFetched != 0,
		Class:      c.id,
		Size:       l.total,
		ValueLen:   l.vlen,
	}
}

// DumpClass calls fn for up to limit items (0 = all) of class id, from
// the LRU head (most recent first, as "stats cachedump") or from the tail
// (as the crawler's metadump). With live, expired and flushed items are
// skipped. fn returns false to stop. between, if set, is called every
// few hundred items with no lock held (to flush output).
func (s *Store) DumpClass(id, limit int, headFirst, live bool, fn func(*DumpItem) bool, between func()) {
	if id < 1 || id > len(s.classes) {
		return
	}
	c := s.classes[id-1]
	now, fseq := s.now()
	var d DumpItem
	n := 0
	s.walk(c, !headFirst, 0, 0, func(h uint32, b []byte, st *stripe, tag uint32) bool {
		if live && dead(b, now, fseq) != alive {
			return true
		}
		s.dumpItem(&d, c, b)
		n++
		return fn(&d) && (limit <= 0 || n < limit)
	}, between)
}

// DumpHash calls fn for every live item in index order (metadump hash).
func (s *Store) DumpHash(fn func(*DumpItem) bool, between func()) {
	now, fseq := s.now()
	var d DumpItem
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		for _, h := range st.hs {
			if h == 0 {
				continue
			}
			b := s.chunk(h)
			if dead(b, now, fseq) != alive {
				continue
			}
			s.dumpItem(&d, s.classOf(h), b)
			if !fn(&d) {
				st.mu.Unlock()
				return
			}
		}
		st.mu.Unlock()
		if between != nil && i%16 == 15 {
			between()
		}
	}
}
