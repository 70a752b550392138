package slab

import (
	"sync"
	"sync/atomic"
)

// Pins and reservations: the seam through which the server moves values
// between sockets and item memory without copying them through heap
// buffers, as memcached does with its item refcounts.
//
// A pin (Read) keeps an item's chunks from being freed, reused, moved by
// the page mover or rewritten in place until Unpin: the server writes a
// reply straight from item memory while holding one. The item stays
// visible and may be deleted, replaced, flushed or expire meanwhile:
// releaseLocked, which every way of freeing an item goes through (delete,
// overwrite, expiry, flush, eviction under every policy, the crawler, the
// mover), then unlinks it as usual but leaves its chunks allocated (a
// "retired" item, marked busy so that in-place walks skip it) until the
// last Unpin frees them. Eviction and the mover pass over pinned items
// (lockVictim, clearPage), since evicting one would free no memory. Pinned
// chunks are slab chunks: pins never take memory beyond the limit, they
// only keep it from being reused.
//
// A reservation (Reserve) is a new item's memory, allocated inside the
// limit when a storage command's line is read: the server reads the value
// from the socket into it and Commit links it (Abort frees it).

// Pin is a pinned item, returned by Read. The zero Pin pins nothing.
type Pin struct{ h uint32 }

// pinEntry is a pinned item's pin count and what freeing it needs.
type pinEntry struct {
	n       int32
	retired bool // unlinked while pinned: the last Unpin frees its chunks
	l       layout
	c       *class
}

const pinShards = 16

type pinShard struct {
	mu sync.Mutex
	m  map[uint32]pinEntry
	_  [40]byte
}

// pinTable holds the pinned items, sharded by head handle.
type pinTable struct {
	shards [pinShards]pinShard
	items  atomic.Int64 // pinned items (linked or retired)
	bytes  atomic.Int64 // their bytes, as the "bytes" stat counts them
}

func (p *pinTable) shard(h uint32) *pinShard { return &p.shards[h%pinShards] }

// pin adds a pin on the item h of layout l in class c. h's stripe lock
// held (so the item is linked).
func (s *Store) pin(h uint32, l layout, c *class) Pin {
	sh := s.pins.shard(h)
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[uint32]pinEntry)
	}
	e, ok := sh.m[h]
	if !ok {
		e = pinEntry{l: l, c: c}
		s.pins.items.Add(1)
		s.pins.bytes.Add(int64(l.total))
	}
	e.n++
	sh.m[h] = e
	sh.mu.Unlock()
	return Pin{h}
}

// Unpin releases a pin taken by Read; the last pin of an item unlinked
// meanwhile frees its chunks. Unpinning the zero Pin does nothing.
func (s *Store) Unpin(p Pin) {
	if p.h == 0 {
		return
	}
	sh := s.pins.shard(p.h)
	sh.mu.Lock()
	e := sh.m[p.h]
	e.n--
	if e.n > 0 {
		sh.m[p.h] = e
		sh.mu.Unlock()
		return
	}
	delete(sh.m, p.h)
	s.pins.items.Add(-1)
	s.pins.bytes.Add(-int64(e.l.total))
	sh.mu.Unlock()
	if e.retired {
		e.c.mu.Lock()
		s.freeChunks(e.c, p.h, s.chunk(p.h), e.l)
		e.c.mu.Unlock()
	}
}

// pinned reports whether the item h is pinned. Its stripe lock or its
// class lock held (pins are taken under the first, retired under both).
func (s *Store) pinned(h uint32) bool {
	if s.pins.items.Load() == 0 {
		return false
	}
	sh := s.pins.shard(h)
	sh.mu.Lock()
	_, ok := sh.m[h]
	sh.mu.Unlock()
	return ok
}

// retire keeps the chunks of the pinned item h, which is being unlinked,
// for its last Unpin to free, and reports whether it did (false: h is not
// pinned, free it now). c.mu held.
func (s *Store) retire(h uint32, b []byte) bool {
	if s.pins.items.Load() == 0 {
		return false
	}
	sh := s.pins.shard(h)
	sh.mu.Lock()
	e, ok := sh.m[h]
	if ok {
		e.retired = true
		sh.m[h] = e
		// No longer an item: in-place walks (CLOCK, the mover, persist)
		// skip it; the head keeps its chain table for the free.
		b[offSlack] = slackBusy
	}
	sh.mu.Unlock()
	return ok
}

// PinStats reports the items pinned by replies in flight and their bytes
// ("stats": pinned_items, pinned_bytes).
func (s *Store) PinStats() (items, bytes int64) {
	return s.pins.items.Load(), s.pins.bytes.Load()
}

// Read is Get for replies written from item memory. A value of at most
// copyMax bytes is appended to dst, as Get does, and the returned Pin is
// zero; a longer one is not copied: its spans of item memory are appended
// to spans and the item is pinned until Unpin(pin). The spans must not be
// written, and must not be read after Unpin.
func (s *Store) Read(dst []byte, spans [][]byte, key []byte, opt *GetOptions, copyMax int) ([]byte, [][]byte, Item, Pin, bool) {
	st, h, b, l, it, ok := s.get(key, opt)
	if st == nil { // a miss, or a vivified (empty) item
		return dst, spans, it, Pin{}, ok
	}
	var p Pin
	if l.vlen <= copyMax {
		dst = s.appendValue(dst, b, l)
	} else {
		for i := 0; i < l.nchunks; i++ {
			spans = append(spans, s.valueSeg(b, l, i))
		}
		p = s.pin(h, l, s.classOf(h))
	}
	st.mu.Unlock()
	return dst, spans, it, p, true
}

// Reservation is a new item's memory, taken from the store inside its
// memory limit before the value arrives (Reserve). The value is written
// into it span by span (Next, Fill); Commit then stores the item as Set
// would, or Abort frees it. Until Commit the item is invisible and its
// chunks are neither evicted nor moved.
type Reservation struct {
	s    *Store
	h    uint32 // head chunk; 0 = none (committed, aborted or never reserved)
	l    layout
	opt  SetOptions
	seg  int // value segment being written
	off  int // bytes of that segment written
	left int // value bytes still to write
}

// Reserve allocates memory for an item with key and a value of vlen bytes
// into r, for the storage command opt. It returns Stored when it did;
// TooLarge when the item is larger than MaxItemSize (or the key longer
// than 250 bytes); OutOfMemory when no memory could be freed, after
// removing key's item for a plain set, as memcached does (the caller must
// still read and discard the value, and answer after it).
func (s *Store) Reserve(r *Reservation, key []byte, vlen int, opt *SetOptions) Result {
	*r = Reservation{}
	var o SetOptions
	if opt != nil {
		o = *opt
	}
	l := s.layoutFor(len(key), vlen, o.Flags != 0)
	if len(key) > maxKeyLen || l.total > s.cfg.MaxItemSize {
		s.unlinkFailedSet(key, &o)
		return TooLarge
	}
	now, fseq := s.now()
	h := s.allocItem(l, -1, now, fseq)
	if h == 0 {
		s.unlinkFailedSet(key, &o)
		return OutOfMemory
	}
	writeHeader(s.chunk(h), l, key, o.Flags, 0, now, 0)
	*r = Reservation{s: s, h: h, l: l, opt: o, left: vlen}
	return Stored
}

// unlinkFailedSet removes key's item when a plain set of it failed: stale
// data must not outlive a failed overwrite (Set does the same).
func (s *Store) unlinkFailedSet(key []byte, o *SetOptions) {
	if o.Mode == ModeSet && o.CAS == 0 && len(key) <= maxKeyLen {
		s.Unlink(key)
	}
}

// Remaining returns how many value bytes are still to be written.
func (r *Reservation) Remaining() int { return r.left }

// Next returns the unwritten part of the value's current span of item
// memory: the caller writes into it and reports how much with Fill. It
// returns nil when the value is complete.
func (r *Reservation) Next() []byte {
	if r.left == 0 {
		return nil
	}
	seg := r.s.valueSeg(r.s.chunk(r.h), r.l, r.seg)
	if r.off == len(seg) {
		r.seg++
		r.off = 0
		seg = r.s.valueSeg(r.s.chunk(r.h), r.l, r.seg)
	}
	return seg[r.off:]
}

// Fill records that the first n bytes of Next's span were written.
func (r *Reservation) Fill(n int) {
	r.off += n
	r.left -= n
}

// Write copies p (at most Remaining bytes of it) into the value and
// returns how much it copied.
func (r *Reservation) Write(p []byte) int {
	done := 0
	for len(p) > 0 && r.left > 0 {
		n := copy(r.Next(), p[:min(len(p), r.left)])
		r.Fill(n)
		p = p[n:]
		done += n
	}
	return done
}

// Active reports whether r holds memory (reserved, not yet committed or
// aborted).
func (r *Reservation) Active() bool { return r.h != 0 }

// Commit stores the reserved item, whose value must be complete, as Set
// would store key and the value with the reservation's options, and
// returns Set's result and CAS. An item that is not stored (add of an
// existing key, a CAS mismatch...) is freed; an append or prepend builds
// a new item from the old one and frees the reservation.
func (r *Reservation) Commit() (Result, uint64) {
	if r.h == 0 {
		return OutOfMemory, 0
	}
	s := r.s
	res, cas := s.set(itemKey(s.chunk(r.h)), nil, r, r.opt)
	r.Abort()
	return res, cas
}

// Abort frees the reservation's memory unless it was committed. It may be
// called more than once.
func (r *Reservation) Abort() {
	if r.h == 0 {
		return
	}
	s := r.s
	c := s.classFor(r.l)
	c.mu.Lock()
	c.inflight--
	s.freeChunks(c, r.h, s.chunk(r.h), r.l)
	c.mu.Unlock()
	r.h = 0
}

// writeValue writes the reserved value through w.
func (r *Reservation) writeValue(w *valueWriter) {
	b := r.s.chunk(r.h)
	for i := 0; i < r.l.nchunks; i++ {
		w.write(r.s.valueSeg(b, r.l, i))
	}
}

// take hands the reserved chunk over to the store, which links it.
func (r *Reservation) take() uint32 {
	h := r.h
	r.h = 0
	return h
}
