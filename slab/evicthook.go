package slab

import "sync/atomic"

// Eviction describes an evicted item to the eviction hook.
type Eviction struct {
	Key        []byte // valid only during the call
	Exptime    int64  // absolute Unix seconds, 0 = never
	LastAccess int64  // Unix seconds
	Now        int64  // the store's current second
	Fetched    bool   // read at least once
	Class      int    // gocached's slab class id
	ValueLen   int
}

// evictHook is the callback for evictions (nil = none).
type evictHook = atomic.Pointer[func(Eviction)]

// SetEvictionHook sets fn to be called for every item the eviction policy
// evicts (nil removes it); memcached's "watch evictions" uses it. fn runs
// with the item's class and stripe locks held: it must be quick and must
// not call the Store. With no hook, an eviction costs one atomic load.
func (s *Store) SetEvictionHook(fn func(Eviction)) {
	if fn == nil {
		s.onEvict.Store(nil)
		return
	}
	s.onEvict.Store(&fn)
}

// noteEvicted calls the eviction hook, if any, for b before it is freed.
// c.mu and b's stripe lock held.
func (s *Store) noteEvicted(c *class, b []byte, now uint32) {
	fn := s.onEvict.Load()
	if fn == nil {
		return
	}
	(*fn)(Eviction{
		Key:        itemKey(b),
		Exptime:    int64(itemExp(b)),
		LastAccess: int64(itemAtime(b)),
		Now:        int64(now),
		Fetched:    b[offBits]&bitFetched != 0,
		Class:      c.id,
		ValueLen:   s.readLayout(b).vlen,
	})
}
