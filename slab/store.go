package slab

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
)

// Store is a concurrency-safe item store.
//
// Locking: each key belongs to one index stripe (a mutex and a hash
// table); each item to one slab class (a mutex, a free list and an LRU).
// The lock order is stripe, then class, then the page allocator. Eviction,
// which runs under a class lock, only TryLocks the victim's stripe and
// skips the item when that fails, as memcached does with its item locks.
// A plain get takes only its stripe lock (with the flat LRU, plus the
// class lock when it bumps the item, at most once per 60 s per item); the
// eviction policies (lru.go) act on reads when items reach a list's tail. LRU walkers (crawler,
// key dumps) first take the class's walkMu; the page mover (mover.go)
// works under the class lock and TryLocks stripes like eviction. The full
// order is walkMu, stripe, class, pageMu.
type Store struct {
	cfg   Config
	clock Clock
	// phase is how far into its second the store started (ns): its
	// seconds turn over at that phase, as memcached's clock, which a
	// once-a-second timer from process start advances. So an item stored
	// with a TTL of 1 just after start lives the rest of that second, not
	// until the wall clock's next second, which may be a millisecond away.
	phase     int64
	pageSize  int
	chunkBits uint32
	chunkMask uint32
	maxPages  int

	classes []*class

	pt     atomic.Pointer[pageTable]
	pageMu sync.Mutex
	npages atomic.Int64
	limit  atomic.Int64
	pool   []uint32 // global page pool (pageMu)
	// released are pages given back to the kernel to bring the store
	// under -m (trimToLimit): not counted in npages, taken again before
	// new memory (pageMu).
	released []uint32
	poolLen  atomic.Int64 // len(pool), for lock-free reads

	policy   atomic.Int32            // policyFlat, policySegmented, policyS3FIFO, policyClock (lru.go)
	tune     atomic.Pointer[lruTune] // segmented LRU limits
	s3       bool                    // S3-FIFO (fixed at New)
	linkAll  bool                    // every item carries LRU links: all but CLOCK (fixed at New)
	halfSize int                     // the chunk-max class's chunk size (Config.SlabChunkMax): larger items go to the last class
	ghost    ghost                   // S3-FIFO ghost queue
	temp     atomic.Uint64           // TEMP LRU: tempOn | uint32(temporary_ttl) (temp.go)

	onEvict evictHook // eviction callback (evicthook.go), nil = none
	pins    pinTable  // items pinned by replies in flight (pin.go)

	mv      mover   // slab rebalancing (mover.go)
	crawler crawler // LRU crawler (crawler.go)
	stop    chan struct{}
	stopped sync.Once

	seed       maphash.Seed
	stripes    []stripe
	stripeMask uint64
	idxFreed   atomic.Int64 // bytes of index tables replaced since the last collectIndex
	// idxFreedSeen is idxFreed at the last maintenance tick (maintain's
	// goroutine only).
	idxFreedSeen int64

	cas      atomic.Uint64 // last CAS / store sequence handed out
	flushSeq atomic.Uint64 // items with a sequence <= this are flushed
	flushAt  atomic.Int64  // pending delayed flush (Unix ns), 0 = none

	mem    *memFile // Config.MemoryFile (persist.go), nil = pages from arenas
	arenas *arenas  // page memory without a memory file (arena.go; pageMu)

	sizes sizesState // "stats sizes" histogram (sizes.go)
}

const (
	maxClasses = 63 // classes the growth factor makes, with the chunk-max and full-page ones
	// MaxSlabSizes is the most chunk sizes Config.SlabSizes takes:
	// memcached's MAX_NUMBER_OF_SLAB_CLASSES less its chunk-max class and
	// the unused id 0. gocached adds its full-page class after them.
	MaxSlabSizes    = 62
	maxClassesTotal = MaxSlabSizes + 2
	maxItemSizeHard = 1 << 30
)

// New returns a Store for cfg, with defaults filled in.
func New(cfg Config) (*Store, error) {
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = 64 << 20
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 1 << 20
	}
	if cfg.GrowthFactor == 0 {
		cfg.GrowthFactor = 1.25
	}
	if cfg.MinChunkSize == 0 {
		cfg.MinChunkSize = 48
	}
	if cfg.MaxItemSize == 0 {
		cfg.MaxItemSize = 1 << 20
	}
	if cfg.SlabChunkMax == 0 {
		cfg.SlabChunkMax = cfg.PageSize / 2
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	switch {
	case cfg.MemoryLimit < 0:
		return nil, errors.New("slab: negative memory limit")
	case cfg.PageSize < 1024 || cfg.PageSize%8 != 0 || cfg.PageSize > maxItemSizeHard:
		return nil, fmt.Errorf("slab: page size %d must be a multiple of 8 between 1 KiB and 1 GiB", cfg.PageSize)
	case !(cfg.GrowthFactor > 1):
		return nil, errors.New("slab: growth factor must be greater than 1")
	case cfg.MinChunkSize < 0 || cfg.MinChunkSize > cfg.PageSize/4:
		return nil, fmt.Errorf("slab: minimum chunk size %d out of range", cfg.MinChunkSize)
	case cfg.MaxItemSize < 0 || cfg.MaxItemSize > maxItemSizeHard:
		return nil, fmt.Errorf("slab: max item size %d out of range (at most 1 GiB)", cfg.MaxItemSize)
	case cfg.SlabChunkMax < 8 || cfg.SlabChunkMax > cfg.PageSize || cfg.PageSize%cfg.SlabChunkMax != 0:
		return nil, fmt.Errorf("slab: chunk max %d must be at least 8 and divide the page size %d", cfg.SlabChunkMax, cfg.PageSize)
	}
	if err := checkSlabSizes(cfg.SlabSizes, cfg.SlabChunkMax); err != nil {
		return nil, err
	}
	s := &Store{
		cfg:      cfg,
		clock:    cfg.Clock,
		phase:    cfg.Clock.Now() % 1e9,
		pageSize: cfg.PageSize,
		halfSize: cfg.SlabChunkMax,
		seed:     maphash.MakeSeed(),
	}
	s.limit.Store(cfg.MemoryLimit)
	s.arenas = newArenas(s, cfg.LargePages)
	if err := s.initLRU(&cfg); err != nil {
		return nil, err
	}
	s.initTemp(&cfg)
	s.cfg = cfg

	// Size classes as memcached's slabs_init: grow by the factor, 8-byte
	// aligned, until the chunk max (half a page unless slab_chunk_max
	// says otherwise); then a class of the chunk max and a full-page
	// class that also carries the chunks of items larger than a page.
	// Below fineClassMax the steps are then split to 8 bytes while class
	// ids remain (refineSmall). slab_sizes replaces the factor's classes
	// with its own list, as given (rounded up to 8), as memcached does.
	half := s.halfSize
	hdr := hdrSize
	if s.linkAll {
		hdr += linkBytes
	}
	var sizes []int
	if cfg.SlabSizes != nil {
		for _, sz := range cfg.SlabSizes {
			sizes = append(sizes, (sz+7)&^7)
		}
	} else {
		size := float64(hdr + cfg.MinChunkSize)
		for len(sizes) < maxClasses-2 && size < float64(half)/cfg.GrowthFactor {
			sz := (int(size) + 7) &^ 7
			if n := len(sizes); n > 0 && sz <= sizes[n-1] {
				sz = sizes[n-1] + 8
			}
			sizes = append(sizes, sz)
			size = float64(sz) * cfg.GrowthFactor
		}
		sizes = refineSmall(sizes, maxClasses-2)
	}
	sizes = append(sizes, half, s.pageSize)
	for i, sz := range sizes {
		s.classes = append(s.classes, &class{id: i + 1, size: sz, perPage: s.pageSize / sz,
			links: s.linkAll || i == len(sizes)-1})
	}
	s.chunkBits = uint32(bits.Len(uint(s.classes[0].perPage - 1)))
	s.chunkMask = 1<<s.chunkBits - 1
	s.maxPages = 1<<(32-s.chunkBits) - 1 // page 0 is never used: handle 0 is nil
	s.pt.Store(&pageTable{pages: [][]byte{nil}, cls: []uint8{0}})

	mode := cfg.Automove
	switch mode {
	case 0:
		mode = AutomoveWindowed
	case AutomoveDisabled:
		mode = AutomoveOff
	}
	s.mv.init(len(s.classes), defaultWindow, mode)
	s.crawler.enabled.Store(!cfg.NoLRUCrawler)
	s.crawler.sleepUS.Store(defaultCrawlUS)
	if cfg.CrawlerSleep > 0 {
		s.crawler.sleepUS.Store(int64(cfg.CrawlerSleep))
	}
	s.crawler.tocrawl.Store(int64(cfg.CrawlerToCrawl))
	s.stop = make(chan struct{})

	ns := minStripes
	for ns < maxStripes && int64(ns)*stripeItems < cfg.MemoryLimit/int64(s.classes[0].size) {
		ns *= 2
	}
	s.stripes = make([]stripe, ns)
	s.stripeMask = uint64(ns - 1)
	for i := range s.stripes {
		s.stripes[i].init(initStripeSlots)
	}
	if cfg.MemoryFile != "" {
		if err := s.openMemoryFile(); err != nil {
			return nil, err
		}
	}
	if cfg.TrackSizes {
		itemMax := cfg.TrackSizesItemMax
		if itemMax == 0 {
			itemMax = cfg.MaxItemSize
		}
		s.startSizes(itemMax)
		if cfg.TrackSizesNoItems {
			s.sizes.hist.Load().casMin = 1 // above every item's CAS, 0 with DisableCAS
		}
	}
	if cfg.Maintenance >= 0 {
		tick := cfg.Maintenance
		if tick == 0 {
			tick = defaultTick
		}
		s.startMaintenance(tick)
	}
	return s, nil
}

// checkSlabSizes validates Config.SlabSizes (the command line checks
// them first, with memcached's messages).
func checkSlabSizes(sizes []int, chunkMax int) error {
	if sizes == nil {
		return nil
	}
	// An empty non-nil list is valid: memcached's "-o slab_sizes=-" leaves
	// only the chunk-max class.
	if len(sizes) > MaxSlabSizes {
		return fmt.Errorf("slab: %d slab sizes given, at most %d", len(sizes), MaxSlabSizes)
	}
	last := 0
	for _, sz := range sizes {
		// memcached requires more than 8 bytes between given sizes, so
		// that no two classes round up to the same chunk size.
		if sz <= last+8 || sz > chunkMax {
			return fmt.Errorf("slab: slab sizes %v must ascend by more than 8 bytes, up to %d", sizes, chunkMax)
		}
		last = sz
	}
	return nil
}

// fineClassMax bounds the chunk sizes refineSmall splits: below it the
// factor's steps (24 to 48 bytes with -f 1.25) would waste a fifth of a
// small item on average, the bulk of the per-item overhead.
const fineClassMax = 192

// refineSmall inserts classes between the factor's sizes below
// fineClassMax, largest gap first, until every step there is 8 bytes or
// the list holds max classes. The factor and the minimum still set the
// first class and every class above fineClassMax.
func refineSmall(sizes []int, max int) []int {
	for len(sizes) < max {
		best, gap := -1, 8
		for i := 0; i+1 < len(sizes) && sizes[i] < fineClassMax; i++ {
			if g := sizes[i+1] - sizes[i]; g > gap {
				best, gap = i, g
			}
		}
		if best < 0 {
			break
		}
		mid := (sizes[best] + gap/2 + 7) &^ 7
		if mid >= sizes[best+1] {
			mid = sizes[best] + 8
		}
		sizes = append(sizes[:best+1], append([]int{mid}, sizes[best+1:]...)...)
	}
	return sizes
}

// Config returns the effective configuration (defaults filled in).
func (s *Store) Config() Config {
	c := s.cfg
	c.MemoryLimit = s.limit.Load()
	return c
}

func (s *Store) hash(key []byte) uint64 { return maphash.Bytes(s.seed, key) }

// stripeFor returns key's stripe, its index and the hash tag.
func (s *Store) stripeFor(key []byte) (*stripe, int, uint32) {
	hv := s.hash(key)
	si := int(hv & s.stripeMask)
	return &s.stripes[si], si, uint32(hv >> 32)
}

// now returns the current Unix second and the flush sequence, applying a
// delayed flush whose time has come.
func (s *Store) now() (uint32, uint64) {
	ns := s.clock.Now()
	if at := s.flushAt.Load(); at != 0 && ns >= at && s.flushAt.CompareAndSwap(at, 0) {
		s.raiseFlushSeq(s.cas.Load())
	}
	sec := (ns - s.phase) / 1e9
	if sec < 0 {
		sec = 0
	}
	return uint32(min(sec, math.MaxUint32)), s.flushSeq.Load()
}

// Now returns the store's time in Unix seconds, turning over at the phase
// the store started in (see phase). Callers that compare their own times
// with items' (TTLs, last access) must use it, not the wall clock's
// seconds, which may be one ahead.
func (s *Store) Now() int64 {
	sec, _ := s.now()
	return int64(sec)
}

// SecondStart returns the clock time (Unix nanoseconds) at which the
// store's second sec (as Now counts) begins.
func (s *Store) SecondStart(sec int64) int64 { return sec*1e9 + s.phase }

func (s *Store) raiseFlushSeq(v uint64) {
	for {
		cur := s.flushSeq.Load()
		if v <= cur || s.flushSeq.CompareAndSwap(cur, v) {
			return
		}
	}
}

func (s *Store) nextCAS() uint64 { return s.cas.Add(1) }

// shownCAS is the CAS reported to callers and compared by CAS commands.
func (s *Store) shownCAS(b []byte) uint64 {
	if s.cfg.DisableCAS {
		return 0
	}
	return itemCAS(b)
}

// expTime converts an API exptime to the stored form: 0 never, a time in
// the past (or negative) 1, which is always expired.
func expTime(e int64) uint32 {
	switch {
	case e == 0:
		return 0
	case e < 0:
		return 1
	case e > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(e)
}

// lookup finds key's live item under the held stripe lock, removing (and
// counting in get_expired or get_flushed) an expired or flushed one. It returns the slot, handle, head chunk and why
// an item was dropped (alive when none was).
func (s *Store) lookup(st *stripe, tag uint32, key []byte, now uint32, fseq uint64) (int, uint32, []byte, int) {
	pos, h := s.find(st, tag, key)
	if h == 0 {
		return -1, 0, nil, alive
	}
	b := s.chunk(h)
	if why := dead(b, now, fseq); why != alive {
		// memcached's do_item_get counts the dead item it drops, whatever
		// the command (get, set, delete, incr, touch, meta).
		if why == expired {
			st.ctr.getExpired++
		} else {
			st.ctr.getFlushed++
		}
		st.removeAt(pos)
		s.release(h, b)
		return -1, 0, nil, why
	}
	return pos, h, b, alive
}

// unlinkAt removes the item at pos from the index and frees it.
func (s *Store) unlinkAt(st *stripe, pos int, h uint32, b []byte) {
	st.removeAt(pos)
	s.release(h, b)
}

// link publishes a fully written new item: into the index (replacing the
// item at pos when pos >= 0) and at the head of its class's LRU. The old
// item, if any, is freed.
//
// si is st's index. The segmented LRU rebalances the class's lists here.
func (s *Store) link(st *stripe, si int, tag uint32, pos int, old uint32, oldb []byte, h uint32, b []byte, l layout, now uint32, fseq uint64) {
	c := s.classOf(h)
	c.mu.Lock()
	seg := segTemp
	if !s.isTemp(itemExp(b), now) {
		seg = s.linkSeg(c, h, tag, b, oldb)
	}
	s.lruLink(c, h, b, l, seg)
	s.sizeCount(b, l, 1)
	if s.policy.Load() == policySegmented {
		s.juggle(c, si, now, fseq)
	}
	c.mu.Unlock()
	if pos >= 0 {
		st.hs[pos] = h // same key, same tag
		s.release(old, oldb)
	} else {
		if freed := st.insert(tag, h); freed > 0 {
			s.idxFreed.Add(int64(freed))
		}
	}
	st.ctr.totalItems++
}

// touchAccess records a read under h's stripe lock: it marks the item
// fetched and counts the hit for the eviction policy (lru.go). The access
// time is refreshed at most once per updateInterval, and when the item
// becomes ACTIVE (segmented LRU); the flat LRU moves the item to the head
// then, the only case that takes the class lock.
func (s *Store) touchAccess(h uint32, b []byte, now uint32) {
	bits := b[offBits]
	b[offBits] = bits | bitFetched
	stale := int64(now)-int64(itemAtime(b)) >= updateInterval
	switch s.policy.Load() {
	case policySegmented:
		// memcached's do_item_bump: the first read marks the item fetched,
		// the second active.
		if bits&bitFetched != 0 && bits&hitsMask == 0 {
			setHits(b, 1)
			setAtime(b, now)
			return
		}
	case policyS3FIFO, policyClock, policyS3Clock:
		if n := itemHits(b); n < 3 {
			setHits(b, n+1)
		}
	default:
		if stale {
			s.bump(h, b, now)
		}
		return
	}
	if stale {
		setAtime(b, now)
	}
}

// itemUpdate is memcached's do_item_update, for writes that keep the item
// (add of an existing key, incr/decr in place): the access time is
// refreshed (the flat LRU bumps the item) at most once per updateInterval,
// and the item is not marked fetched. The caller holds h's stripe lock.
func (s *Store) itemUpdate(h uint32, b []byte, now uint32) {
	if int64(now)-int64(itemAtime(b)) < updateInterval {
		return
	}
	if s.policy.Load() == policyFlat {
		s.bump(h, b, now)
	} else {
		setAtime(b, now)
	}
}

func itemInfo(s *Store, b []byte, l layout) Item {
	bits := b[offBits]
	return Item{
		Flags:      itemFlags(b, l),
		Exptime:    int64(itemExp(b)),
		CAS:        s.shownCAS(b),
		LastAccess: int64(itemAtime(b)),
		Size:       l.vlen,
		Fetched:    bits&bitFetched != 0,
		Stale:      bits&bitStale != 0,
		TokenSent:  bits&bitTokenSent != 0,
	}
}

// Get looks key up. On a hit it appends the value to dst and returns the
// extended slice, the item's metadata and true. Expired or flushed items are
// misses (and are reclaimed lazily); Item.Miss tells which of them, or
// MissAbsent, a miss was. opt may be nil.
//
// Item.Fetched and Item.LastAccess describe the item before this access.
// LastAccess is the time the item was stored or last marked accessed;
// reads refresh it at most once per 60 s (memcached's ITEM_UPDATE_INTERVAL)
// and when they make the item ACTIVE (segmented LRU), so it may lag the
// true last read by up to 60 s.
//
// Recache tokens (meta mg): Won is set when this caller wins the token:
// the item was just vivified (opt.Vivify on a miss: an empty item with
// VivifyExptime is created and Get returns true with Size 0), or its
// remaining TTL is below opt.RecacheBelow (checked before opt.Touch applies),
// or it is stale; in each case only if no token was sent before.
// TokenSent reports that a token had already been sent (meta Z). Winning
// marks the item so later callers see TokenSent.
func (s *Store) Get(dst, key []byte, opt *GetOptions) ([]byte, Item, bool) {
	st, _, b, l, it, ok := s.get(key, opt)
	if st == nil {
		return dst, it, ok
	}
	dst = s.appendValue(dst, b, l)
	st.mu.Unlock()
	return dst, it, true
}

// get is Get's lookup. On a hit it returns with the key's stripe locked
// (st), the item's handle, head chunk and layout; on a miss, or a
// vivifying miss (which returns ok), st is nil and no lock is held.
func (s *Store) get(key []byte, opt *GetOptions) (st *stripe, h uint32, b []byte, l layout, it Item, ok bool) {
	now, fseq := s.now()
	st, si, tag := s.stripeFor(key)
	st.mu.Lock()
	_, h, b, why := s.lookup(st, tag, key, now, fseq)
	if h == 0 {
		miss := missOf(why)
		if opt != nil && opt.Vivify && len(key) <= maxKeyLen {
			it, ok = s.vivify(st, si, tag, key, now, fseq, opt)
			st.mu.Unlock()
			it.Miss = miss
			return nil, 0, nil, l, it, ok
		}
		st.mu.Unlock()
		return nil, 0, nil, l, Item{Miss: miss}, false
	}
	l = s.readLayout(b)
	it = itemInfo(s, b, l)
	if opt != nil {
		won := false
		if opt.RecacheBelow > 0 && !it.TokenSent && it.Exptime != 0 && it.Exptime-int64(now) < opt.RecacheBelow {
			won = true
		}
		if opt.Touch {
			setExp(b, expTime(opt.NewExptime))
			it.Exptime = int64(itemExp(b))
			st.ctr.touchHits++
			countOp(s.classOf(h), si, opTouchHit)
		}
		if it.Stale && !it.TokenSent {
			won = true
		}
		if won {
			b[offBits] |= bitTokenSent
			it.Won = true
		}
		// memcached counts a touching get (gat, mg T) as a touch hit
		// only, not in get_hits nor hits_to_*; and a get that does not
		// bump (mg u) still as a get hit.
		if !opt.Touch && !opt.Peek {
			s.noteHit(si, h, b)
		}
		if !opt.NoBump && !opt.Peek {
			s.touchAccess(h, b, now)
		}
	} else {
		s.noteHit(si, h, b)
		s.touchAccess(h, b, now)
	}
	return st, h, b, l, it, true
}

// missOf maps lookup's why (no item found) to a Miss.
func missOf(why int) Miss {
	switch why {
	case expired:
		return MissExpired
	case flushed:
		return MissFlushed
	}
	return MissAbsent
}

// vivify creates the empty item of a meta N miss. Stripe lock held.
func (s *Store) vivify(st *stripe, si int, tag uint32, key []byte, now uint32, fseq uint64, opt *GetOptions) (Item, bool) {
	exp := opt.VivifyExptime
	l := s.layoutFor(len(key), 0, false)
	h := s.allocItem(l, si, now, fseq)
	if h == 0 {
		return Item{}, false
	}
	b := s.chunk(h)
	writeHeader(b, l, key, 0, expTime(exp), now, s.nextCAS())
	b[offBits] |= bitTokenSent
	s.link(st, si, tag, -1, 0, nil, h, b, l, now, fseq)
	// memcached answers a vivifying miss as a hit on the new item
	// (get_hits and hits_to_*, or with T touch_hits), and does not count
	// it as a set.
	if opt.Touch {
		st.ctr.touchHits++
		countOp(s.classOf(h), si, opTouchHit)
	} else {
		s.noteHit(si, h, b)
	}
	return Item{Exptime: int64(itemExp(b)), CAS: s.shownCAS(b), LastAccess: int64(now), Won: true}, true
}

// Set stores value under key according to opt.Mode and returns the result
// and the item's new CAS (0 unless Stored, and 0 with DisableCAS).
//
// A nonzero opt.CAS turns ModeSet and ModeReplace into ModeCAS (as meta
// set does); ModeAdd ignores it; ModeAppend and ModePrepend require it to
// match. ModeCAS returns NotFound on a miss and Exists on a mismatch (always,
// with DisableCAS, as memcached -C). With opt.Invalidate, a CAS lower than
// the item's stores the value marked stale, keeping the old exptime and
// token state. Append and prepend keep the old flags and exptime; on a miss
// they return NotStored, or with opt.Vivify store the value with
// opt.VivifyExptime (meta ms MA N).
//
// A value too large for MaxItemSize (or a key longer than 250 bytes)
// returns TooLarge and, for ModeSet, removes any existing item under key
// (as memcached does). ModeSet also removes it when memory is exhausted
// (OutOfMemory). An append or prepend whose result would be too large, or
// cannot be allocated, returns NotStored, as memcached does.
func (s *Store) Set(key, value []byte, opt *SetOptions) (Result, uint64) {
	var o SetOptions
	if opt != nil {
		o = *opt
	}
	return s.set(key, value, nil, o)
}

// set is Set; with res the value is the reservation's, whose chunk becomes
// the item (the caller frees it unless set took it).
func (s *Store) set(key, value []byte, res *Reservation, o SetOptions) (Result, uint64) {
	vlen := len(value)
	if res != nil {
		vlen = res.l.vlen
	}
	now, fseq := s.now()
	mode := o.Mode
	if o.CAS != 0 && (mode == ModeSet || mode == ModeReplace) {
		mode = ModeCAS
	}
	st, si, tag := s.stripeFor(key)
	l := s.layoutFor(len(key), vlen, o.Flags != 0)
	if res != nil {
		l = res.l
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	pos, old, oldb, _ := s.lookup(st, tag, key, now, fseq)

	if len(key) > maxKeyLen || l.total > s.cfg.MaxItemSize {
		if mode == ModeSet && old != 0 {
			s.unlinkAt(st, pos, old, oldb)
		}
		return TooLarge, 0
	}
	// memcached counts cmd_set in the class of the item it allocates for
	// the command's data (for append, of the appended part alone), before
	// deciding whether to store it: each way out below but OutOfMemory
	// counts it once, the stored item's from its handle (no class search).

	flags, exp := o.Flags, expTime(o.Exptime)
	var stale, tokenSent bool
	switch mode {
	case ModeAdd:
		if old != 0 {
			s.countSet(l, si)
			s.itemUpdate(old, oldb, now)
			return NotStored, 0
		}
	case ModeReplace:
		if old == 0 {
			s.countSet(l, si)
			return NotStored, 0
		}
	case ModeCAS:
		if old == 0 {
			s.countSet(l, si)
			st.ctr.casMisses++
			return NotFound, 0
		}
		cur := s.shownCAS(oldb)
		oc := s.classOf(old)
		switch {
		case s.cfg.DisableCAS:
			s.countSet(l, si)
			st.ctr.casBadval++
			countOp(oc, si, opCasBadval)
			return Exists, 0
		case o.CAS == cur:
		case o.Invalidate && o.CAS != 0 && o.CAS < cur: // 0 is no CAS: never stale-stored
			stale = true
			exp = itemExp(oldb)
			tokenSent = oldb[offBits]&bitTokenSent != 0
		default:
			s.countSet(l, si)
			st.ctr.casBadval++
			countOp(oc, si, opCasBadval)
			return Exists, 0
		}
		st.ctr.casHits++
		countOp(oc, si, opCasHit)
	case ModeAppend, ModePrepend:
		s.countSet(l, si) // every way out of this case
		if old == 0 {
			if !o.Vivify {
				return NotStored, 0
			}
			exp = expTime(o.VivifyExptime)
			break
		}
		if o.CAS != 0 && !s.cfg.DisableCAS && o.CAS != itemCAS(oldb) {
			return Exists, 0
		}
		ol := s.readLayout(oldb)
		flags, exp = itemFlags(oldb, ol), itemExp(oldb)
		nl := s.layoutFor(len(key), ol.vlen+vlen, flags != 0)
		if nl.total > s.cfg.MaxItemSize {
			return NotStored, 0
		}
		h := s.allocItem(nl, si, now, fseq)
		if h == 0 {
			return NotStored, 0
		}
		b := s.chunk(h)
		cas := s.nextCAS()
		writeHeader(b, nl, key, flags, exp, now, cas)
		w := s.newValueWriter(b, nl)
		if mode == ModePrepend {
			w.writeFrom(value, res)
		}
		w.copyValue(oldb, ol)
		if mode == ModeAppend {
			w.writeFrom(value, res)
		}
		s.link(st, si, tag, pos, old, oldb, h, b, nl, now, fseq)
		return Stored, s.shownCAS(b)
	}

	if o.Flags != flags {
		l = s.layoutFor(len(key), vlen, flags != 0)
	}
	var h uint32
	if res != nil {
		h = res.take()
	} else {
		h = s.allocItem(l, si, now, fseq)
	}
	if h == 0 {
		// memcached, failing to allocate the item, counts no set.
		if mode == ModeSet && old != 0 {
			s.unlinkAt(st, pos, old, oldb)
		}
		return OutOfMemory, 0
	}
	countOp(s.classOf(h), si, opSet)
	b := s.chunk(h)
	cas := s.nextCAS()
	writeHeader(b, l, key, flags, exp, now, cas)
	if stale {
		b[offBits] |= bitStale
	}
	if tokenSent {
		b[offBits] |= bitTokenSent
	}
	if res == nil {
		w := s.newValueWriter(b, l)
		w.write(value)
	}
	s.link(st, si, tag, pos, old, oldb, h, b, l, now, fseq)
	return Stored, s.shownCAS(b)
}

// countSet counts a storage command whose item would have layout l in
// cmd_set of its class; si is the key's stripe.
func (s *Store) countSet(l layout, si int) {
	countOp(s.classFor(l), si, opSet)
}

// CountSet counts a storage command that does not reach Set in cmd_set of
// the class its item would have ("stats slabs"): memcached allocates the
// item before reading the data, so a set whose data is malformed ("bad
// data chunk") counts. An item too large to store counts nowhere, as in Set.
func (s *Store) CountSet(key []byte, vlen int, flags uint32) {
	l := s.layoutFor(len(key), vlen, flags != 0)
	if len(key) > maxKeyLen || l.total > s.cfg.MaxItemSize {
		return
	}
	_, si, _ := s.stripeFor(key)
	s.countSet(l, si)
}

// Delete removes key. When cas is nonzero it must match (Exists otherwise;
// always Exists with DisableCAS, as memcached -C). A mismatch counts
// neither a delete hit nor a miss (as memcached's binary delete), and
// neither does markStale (memcached's md I).
// With markStale (meta md I) the item is kept, marked stale, its token
// cleared (so the next reader wins it), its CAS bumped and its Exptime set
// to staleExptime when that is nonzero.
func (s *Store) Delete(key []byte, cas uint64, markStale bool, staleExptime int64) Result {
	return s.deleteItem(key, cas, cas != 0, markStale, staleExptime)
}

// DeleteCAS is Delete with a CAS that is compared even when it is 0
// (meta md C0, which memcached answers EX: no item has CAS 0 but under
// DisableCAS, where every item shows 0 and md C0 deletes).
func (s *Store) DeleteCAS(key []byte, cas uint64, markStale bool, staleExptime int64) Result {
	return s.deleteItem(key, cas, true, markStale, staleExptime)
}

func (s *Store) deleteItem(key []byte, cas uint64, compare, markStale bool, staleExptime int64) Result {
	now, fseq := s.now()
	st, si, tag := s.stripeFor(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	pos, h, b, _ := s.lookup(st, tag, key, now, fseq)
	if h == 0 {
		st.ctr.deleteMisses++
		return NotFound
	}
	if compare && s.shownCAS(b) != cas {
		return Exists
	}
	if markStale {
		// memcached's md I keeps the item: not a delete hit.
		b[offBits] = b[offBits]&^bitTokenSent | bitStale
		setCAS(b, s.nextCAS())
		if staleExptime != 0 {
			setExp(b, expTime(staleExptime))
		}
		return Deleted
	}
	st.ctr.deleteHits++
	countOp(s.classOf(h), si, opDeleteHit)
	s.unlinkAt(st, pos, h, b)
	return Deleted
}

// Unlink removes key's item, if any, counting neither a delete hit nor a
// miss: memcached's unlink of the old item when an overwrite fails
// (a set too large for -I). It reports whether an item was removed.
func (s *Store) Unlink(key []byte) bool {
	now, fseq := s.now()
	st, _, tag := s.stripeFor(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	pos, h, b, _ := s.lookup(st, tag, key, now, fseq)
	if h == 0 {
		return false
	}
	s.unlinkAt(st, pos, h, b)
	return true
}

// CountDeleteMiss counts a delete miss (delete_misses) for a Delete that
// returned Exists: memcached's meta md counts a CAS mismatch as a miss,
// its binary delete counts nothing, so Delete leaves it to the caller.
func (s *Store) CountDeleteMiss(key []byte) {
	st, _, _ := s.stripeFor(key)
	st.mu.Lock()
	st.ctr.deleteMisses++
	st.mu.Unlock()
}

// Touch sets key's Exptime. Returns Touched or NotFound. It counts as an
// access (fetched, LRU bump) but does not change the CAS.
func (s *Store) Touch(key []byte, exptime int64) Result {
	now, fseq := s.now()
	st, si, tag := s.stripeFor(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	_, h, b, _ := s.lookup(st, tag, key, now, fseq)
	if h == 0 {
		st.ctr.touchMisses++
		return NotFound
	}
	st.ctr.touchHits++
	countOp(s.classOf(h), si, opTouchHit)
	setExp(b, expTime(exptime))
	s.touchAccess(h, b, now)
	return Touched
}

// parseUint parses a stored counter as memcached's safe_strtoull: optional
// leading whitespace and '+', decimal digits, then the end of the value or
// whitespace (anything after that is ignored). Overflow is invalid.
func parseUint(v []byte) (uint64, bool) {
	i := 0
	for i < len(v) && isSpace(v[i]) {
		i++
	}
	if i < len(v) && v[i] == '+' {
		i++
	}
	start := i
	var n uint64
	for ; i < len(v) && v[i] >= '0' && v[i] <= '9'; i++ {
		d := uint64(v[i] - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if i == start || (i < len(v) && !isSpace(v[i])) {
		return 0, false
	}
	return n, true
}

func isSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// Arith increments (incr) or decrements key's decimal value by delta:
// incr wraps at 2^64, decr stops at 0. A result not longer than the stored
// value is written in place, padded with spaces, as memcached does ("100"
// decr 1 stores "99 "). Returns the new value, the new CAS and Stored,
// NotFound, Exists, NonNumeric or OutOfMemory. With opt.Vivify a miss
// creates the counter with opt.Initial (delta is not applied).
func (s *Store) Arith(key []byte, incr bool, delta uint64, opt *ArithOptions) (uint64, uint64, Result) {
	var o ArithOptions
	if opt != nil {
		o = *opt
	}
	now, fseq := s.now()
	st, si, tag := s.stripeFor(key)
	st.mu.Lock()
	defer st.mu.Unlock()
	pos, h, b, _ := s.lookup(st, tag, key, now, fseq)
	var buf [24]byte
	if h == 0 {
		// memcached counts a miss only when it does not create the
		// counter (ma N, binary incr with an initial value).
		if !o.Vivify {
			if incr {
				st.ctr.incrMisses++
			} else {
				st.ctr.decrMisses++
			}
			return 0, 0, NotFound
		}
		num := strconv.AppendUint(buf[:0], o.Initial, 10)
		l := s.layoutFor(len(key), len(num), false)
		if len(key) > maxKeyLen || l.total > s.cfg.MaxItemSize {
			return 0, 0, TooLarge
		}
		nh := s.allocItem(l, si, now, fseq)
		if nh == 0 {
			return 0, 0, OutOfMemory
		}
		nb := s.chunk(nh)
		writeHeader(nb, l, key, 0, expTime(o.Exptime), now, s.nextCAS())
		copy(nb[l.valOff:], num)
		s.link(st, si, tag, -1, 0, nil, nh, nb, l, now, fseq)
		return o.Initial, s.shownCAS(nb), Stored
	}
	l := s.readLayout(b)
	if l.nchunks > 1 || l.vlen == 0 {
		return 0, 0, NonNumeric
	}
	if o.CAS != 0 && s.shownCAS(b) != o.CAS {
		return 0, 0, Exists
	}
	val := b[l.valOff : l.valOff+l.vlen]
	n, ok := parseUint(val)
	if !ok {
		return 0, 0, NonNumeric
	}
	// As memcached's do_add_delta: a hit once the value is a number
	// (non-numeric values and CAS mismatches count nowhere), in the class
	// of the item before the change, even if the result then fails.
	if incr {
		st.ctr.incrHits++
		countOp(s.classOf(h), si, opIncrHit)
	} else {
		st.ctr.decrHits++
		countOp(s.classOf(h), si, opDecrHit)
	}
	if incr {
		n += delta
	} else if delta > n {
		n = 0
	} else {
		n -= delta
	}
	num := strconv.AppendUint(buf[:0], n, 10)
	exp := itemExp(b)
	if o.Touch {
		exp = expTime(o.NewExptime)
	}
	// A pinned value is being written to a client: never rewrite it.
	if len(num) <= len(val) && !s.pinned(h) {
		copy(val, num)
		for i := len(num); i < len(val); i++ {
			val[i] = ' '
		}
		setCAS(b, s.nextCAS())
		setExp(b, exp)
		s.itemUpdate(h, b, now)
		return n, s.shownCAS(b), Stored
	}
	flags := itemFlags(b, l)
	nl := s.layoutFor(len(key), len(num), flags != 0)
	nh := s.allocItem(nl, si, now, fseq)
	if nh == 0 {
		return 0, 0, OutOfMemory
	}
	nb := s.chunk(nh)
	writeHeader(nb, nl, key, flags, exp, now, s.nextCAS())
	nb[offBits] |= b[offBits] & (bitStale | bitTokenSent)
	copy(nb[nl.valOff:], num)
	s.link(st, si, tag, pos, h, b, nh, nb, nl, now, fseq)
	return n, s.shownCAS(nb), Stored
}

// FlushAll invalidates every item stored before at (Unix nanoseconds); at <= now
// flushes immediately. An item stored after the flush, even within the same
// second, survives: items carry the store sequence (their CAS), and the flush
// records the sequence reached when it takes effect. A later call replaces a
// pending delayed flush.
func (s *Store) FlushAll(at int64) {
	if at <= s.clock.Now() {
		s.flushAt.Store(0)
		// As memcached (settings.oldest_cas = get_cas_id()), the flush
		// takes a CAS value of its own.
		s.raiseFlushSeq(s.nextCAS())
		return
	}
	s.flushAt.Store(at)
}

// SetMemoryLimit changes the budget (cache_memlimit). Lowering it below the
// pages already in use stops new page allocation; it does not free pages.
func (s *Store) SetMemoryLimit(bytes int64) {
	if bytes < 0 {
		bytes = 0
	}
	s.limit.Store(bytes)
}

// ResetStats zeroes the counters memcached's "stats reset" zeroes: every
// command and item counter of the store and of each class (total_items,
// get_expired, delete_*, incr_*, decr_*, cas_*, touch_*, evictions,
// reclaimed, per-class hits and commands, the crawler's and the page
// mover's counts). Gauges (curr_items, bytes, pages) are not counters and
// stay.
func (s *Store) ResetStats() {
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		st.ctr = stripeCounters{}
		st.mu.Unlock()
	}
	for _, c := range s.classes {
		c.mu.Lock()
		c.movesToCold, c.movesToWarm, c.movesWithinLRU = 0, 0, 0
		c.evictedActive = 0
		c.crawlerReclaimed, c.crawlerChecked = 0, 0
		c.evicted, c.evictedNonzero, c.evictedUnfetched, c.evictedTime = 0, 0, 0, 0
		c.evictedPrev, c.oomPrev = 0, 0
		c.reclaimed, c.expiredUnfetched, c.oom = 0, 0, 0
		for sh := range c.hits {
			for l := range c.hits[sh].n {
				c.hits[sh].n[l].Store(0)
			}
			for op := range c.ops[sh].n {
				c.ops[sh].n[op].Store(0)
			}
		}
		c.mu.Unlock()
	}
	for _, v := range []*atomic.Uint64{&s.mv.moved, &s.mv.rescues, &s.mv.evictionsNomem,
		&s.mv.inlineReclaim, &s.mv.busyItems, &s.crawler.starts} {
		v.Store(0)
	}
}

// Stats returns a snapshot of the counters without stopping writers: each
// stripe and each class lock is taken only long enough to copy its counters.
func (s *Store) Stats() Stats {
	var sc stripeCounters
	slots := 0
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		sc.add(&st.ctr)
		slots += len(st.tags)
		st.mu.Unlock()
	}
	out := Stats{
		TotalItems:                 sc.totalItems,
		LimitMaxbytes:              uint64(s.limit.Load()),
		TotalMalloced:              uint64(s.npages.Load()) * uint64(s.pageSize),
		CasMisses:                  sc.casMisses,
		CasHits:                    sc.casHits,
		CasBadval:                  sc.casBadval,
		TouchHits:                  sc.touchHits,
		TouchMisses:                sc.touchMisses,
		IncrHits:                   sc.incrHits,
		IncrMisses:                 sc.incrMisses,
		DecrHits:                   sc.decrHits,
		DecrMisses:                 sc.decrMisses,
		DeleteHits:                 sc.deleteHits,
		DeleteMisses:               sc.deleteMisses,
		GetExpired:                 sc.getExpired,
		GetFlushed:                 sc.getFlushed,
		HashPowerLevel:             uint64(bits.Len(uint(slots)) - 1),
		HashBytes:                  uint64(slots) * slotBytes,
		SlabsMoved:                 s.mv.moved.Load(),
		SlabGlobalPagePool:         uint64(s.poolLen.Load()),
		SlabReassignRescues:        s.mv.rescues.Load(),
		SlabReassignEvictionsNomem: s.mv.evictionsNomem.Load(),
		SlabReassignInlineReclaim:  s.mv.inlineReclaim.Load(),
		SlabReassignBusyItems:      s.mv.busyItems.Load(),
		SlabReassignRunning:        s.mv.running.Load(),
		LRUCrawlerRunning:          s.crawler.running.Load(),
		LRUCrawlerStarts:           s.crawler.starts.Load(),
	}
	for _, c := range s.classes {
		c.mu.Lock()
		out.CurrItems += uint64(c.items)
		out.Bytes += c.bytes
		out.Evictions += c.evicted
		out.EvictedActive += c.evictedActive
		out.Reclaimed += c.reclaimed
		out.ExpiredUnfetched += c.expiredUnfetched
		out.EvictedUnfetched += c.evictedUnfetched
		out.OutOfMemory += c.oom
		out.CrawlerReclaimed += c.crawlerReclaimed
		out.CrawlerItemsChecked += c.crawlerChecked
		c.mu.Unlock()
	}
	return out
}

// Classes returns per-class statistics for classes that hold pages or items.
func (s *Store) Classes() []ClassStats {
	now, _ := s.now()
	var out []ClassStats
	for _, c := range s.classes {
		c.mu.Lock()
		if c.pages == 0 && c.items == 0 {
			c.mu.Unlock()
			continue
		}
		cs := ClassStats{
			ID:             c.id,
			ChunkSize:      c.size,
			ChunksPerPage:  c.perPage,
			TotalPages:     c.pages,
			TotalChunks:    c.pages * c.perPage,
			UsedChunks:     c.used,
			FreeChunks:     c.pages*c.perPage - c.used,
			Items:          c.items,
			MemRequested:   c.bytes,
			Evicted:        c.evicted,
			EvictedNonzero: c.evictedNonzero,
			EvictedTime:    c.evictedTime,
			Expired:        c.reclaimed,
			OutOfMemory:    c.oom,

			CrawlerReclaimed:    c.crawlerReclaimed,
			CrawlerItemsChecked: c.crawlerChecked,
			ExpiredUnfetched:    c.expiredUnfetched,
			EvictedUnfetched:    c.evictedUnfetched,
			EvictedActive:       c.evictedActive,

			NumberHot:      c.lru[segHot].n,
			NumberWarm:     c.lru[segWarm].n,
			NumberCold:     c.lru[segCold].n,
			NumberTemp:     c.lru[segTemp].n,
			AgeHot:         s.tailAge(c, segHot, now),
			AgeWarm:        s.tailAge(c, segWarm, now),
			OldestAge:      s.tailAge(c, segCold, now),
			MovesToCold:    c.movesToCold,
			MovesToWarm:    c.movesToWarm,
			MovesWithinLRU: c.movesWithinLRU,
		}
		c.mu.Unlock()
		for i := range c.hits {
			sh := &c.hits[i]
			cs.HitsToHot += sh.n[segHot].Load()
			cs.HitsToWarm += sh.n[segWarm].Load()
			cs.HitsToCold += sh.n[segCold].Load()
			cs.HitsToTemp += sh.n[segTemp].Load()
			op := &c.ops[i]
			cs.CmdSet += op.n[opSet].Load()
			cs.DeleteHits += op.n[opDeleteHit].Load()
			cs.IncrHits += op.n[opIncrHit].Load()
			cs.DecrHits += op.n[opDecrHit].Load()
			cs.CasHits += op.n[opCasHit].Load()
			cs.CasBadval += op.n[opCasBadval].Load()
			cs.TouchHits += op.n[opTouchHit].Load()
		}
		out = append(out, cs)
	}
	return out
}

// ClassSizes returns every configured class's chunk size, index 0 = class 1.
func (s *Store) ClassSizes() []int {
	out := make([]int, len(s.classes))
	for i, c := range s.classes {
		out[i] = c.size
	}
	return out
}
