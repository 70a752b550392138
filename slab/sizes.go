package slab

import (
	"sync"
	"sync/atomic"
)

// The item size histogram of "stats sizes" (memcached's -o track_sizes and
// "stats sizes_enable"): live items counted by memcached's ITEM_ntotal,
// rounded up to a multiple of sizeBucket. Items enter it when linked and
// leave it when unlinked (deleted, replaced, evicted, reclaimed), under
// their class lock; as memcached's, only items whose CAS is not below the
// one taken when the histogram started count, so that items stored before
// are not subtracted.

// sizeBucket is the histogram's step, memcached's 32 bytes.
const sizeBucket = 32

// sizeHist is a running histogram.
type sizeHist struct {
	casMin uint64         // items with a lower CAS predate the histogram
	n      []atomic.Int32 // memcached's int counters, printed with %u
}

// sizesState guards starting and stopping the histogram.
type sizesState struct {
	mu   sync.Mutex
	hist atomic.Pointer[sizeHist] // nil = disabled
}

// SizeCount is one bucket of the item size histogram.
type SizeCount struct {
	Size  int    // the bucket's upper bound in bytes, a multiple of 32
	Count uint32 // items in (Size-32, Size]
}

// mcTotal returns memcached's ITEM_ntotal for an item of layout l: its
// 48-byte header, the key and a NUL, the flags unless 0, the value with
// its "\r\n", and the CAS unless DisableCAS. gocached's own item sizes
// differ, but the histogram is memcached's.
func (s *Store) mcTotal(l layout) int {
	n := 48 + l.nkey + 1 + l.vlen + 2
	if l.flagsOff != 0 {
		n += 4
	}
	if !s.cfg.DisableCAS {
		n += 8
	}
	return n
}

// sizeCount adds d to the bucket of the item b of layout l, when the
// histogram runs. b's class lock held.
func (s *Store) sizeCount(b []byte, l layout, d int32) {
	hs := s.sizes.hist.Load()
	if hs == nil || hs.casMin > s.shownCAS(b) {
		return
	}
	if i := (s.mcTotal(l) + sizeBucket - 1) / sizeBucket; i < len(hs.n) {
		hs.n[i].Add(d)
	}
}

// startSizes starts the histogram for items up to itemMax bytes. s.sizes.mu
// held, or New. As memcached's item_stats_sizes_init, it takes a CAS value
// (unless DisableCAS, where every CAS is 0): items stored from now on count.
func (s *Store) startSizes(itemMax int) {
	hs := &sizeHist{n: make([]atomic.Int32, itemMax/sizeBucket+1)}
	if !s.cfg.DisableCAS {
		hs.casMin = s.nextCAS()
	}
	s.sizes.hist.Store(hs)
}

// EnableSizes starts the item size histogram ("stats sizes_enable") if it
// is not running. It returns false, changing nothing, with DisableCAS,
// whose items cannot be told from those stored before (memcached answers
// "cas_support_disabled"); Config.TrackSizes starts it even then.
func (s *Store) EnableSizes() bool {
	if s.cfg.DisableCAS {
		return false
	}
	s.sizes.mu.Lock()
	defer s.sizes.mu.Unlock()
	if s.sizes.hist.Load() == nil {
		s.startSizes(s.cfg.MaxItemSize)
	}
	return true
}

// DisableSizes stops the item size histogram and drops its counts
// ("stats sizes_disable").
func (s *Store) DisableSizes() {
	s.sizes.mu.Lock()
	s.sizes.hist.Store(nil)
	s.sizes.mu.Unlock()
}

// SizesOn reports whether the item size histogram runs ("track_sizes" of
// stats settings, which follows sizes_enable and sizes_disable).
func (s *Store) SizesOn() bool { return s.sizes.hist.Load() != nil }

// Sizes returns the nonzero buckets of the item size histogram, smallest
// first, and whether it runs.
func (s *Store) Sizes() ([]SizeCount, bool) {
	hs := s.sizes.hist.Load()
	if hs == nil {
		return nil, false
	}
	var out []SizeCount
	for i := range hs.n {
		if v := hs.n[i].Load(); v != 0 {
			out = append(out, SizeCount{Size: i * sizeBucket, Count: uint32(v)})
		}
	}
	return out, true
}
