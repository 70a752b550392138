package slab

import (
	"bytes"
	"sync"
)

// The index is split into stripes, each an open-addressing (linear
// probing) table of uint64 slots guarded by its own mutex. A slot holds the
// upper 32 bits of the key's hash and the 32-bit handle of the item's head
// chunk; 0 is an empty slot (handle 0 is never used). Slots hold no Go
// pointers, so the garbage collector never looks inside them.
//
// The low bits of the hash pick the stripe, the high 32 bits (the tag) the
// home slot, so the two are independent. A tag match is only a hint: the
// full key stored in the item is always compared.

const (
	numStripes      = 1024
	initStripeSlots = 16
)

// stripe is one lock-protected part of the index plus the counters of the
// events that happen under its lock.
type stripe struct {
	mu    sync.Mutex
	slots []uint64
	count int
	ctr   stripeCounters
	_     [40]byte // keep neighbouring stripes' locks on separate cache lines
}

// stripeCounters are Stats counters updated under the stripe lock.
type stripeCounters struct {
	totalItems                    uint64
	casMisses, casHits, casBadval uint64
	touchHits, touchMisses        uint64
	incrHits, incrMisses          uint64
	decrHits, decrMisses          uint64
	deleteHits, deleteMisses      uint64
	getExpired, getFlushed        uint64
}

func (c *stripeCounters) add(o *stripeCounters) {
	c.totalItems += o.totalItems
	c.casMisses += o.casMisses
	c.casHits += o.casHits
	c.casBadval += o.casBadval
	c.touchHits += o.touchHits
	c.touchMisses += o.touchMisses
	c.incrHits += o.incrHits
	c.incrMisses += o.incrMisses
	c.decrHits += o.decrHits
	c.decrMisses += o.decrMisses
	c.deleteHits += o.deleteHits
	c.deleteMisses += o.deleteMisses
	c.getExpired += o.getExpired
	c.getFlushed += o.getFlushed
}

// find returns the slot position and handle of key, or (-1, 0).
// The stripe lock must be held.
func (s *Store) find(st *stripe, tag uint32, key []byte) (int, uint32) {
	mask := uint32(len(st.slots) - 1)
	for i := tag & mask; ; i = (i + 1) & mask {
		e := st.slots[i]
		if e == 0 {
			return -1, 0
		}
		if uint32(e>>32) == tag {
			h := uint32(e)
			if bytes.Equal(itemKey(s.chunk(h)), key) {
				return int(i), h
			}
		}
	}
}

// insert adds handle h under tag; the key must not be present.
func (st *stripe) insert(tag, h uint32) {
	if (st.count+1)*4 > len(st.slots)*3 {
		st.grow()
	}
	mask := uint32(len(st.slots) - 1)
	i := tag & mask
	for st.slots[i] != 0 {
		i = (i + 1) & mask
	}
	st.slots[i] = uint64(tag)<<32 | uint64(h)
	st.count++
}

func (st *stripe) grow() {
	old := st.slots
	st.slots = make([]uint64, len(old)*2)
	mask := uint32(len(st.slots) - 1)
	for _, e := range old {
		if e == 0 {
			continue
		}
		i := uint32(e>>32) & mask
		for st.slots[i] != 0 {
			i = (i + 1) & mask
		}
		st.slots[i] = e
	}
}

// removeAt deletes the slot at pos with backward-shift deletion, so no
// tombstones are needed.
func (st *stripe) removeAt(pos int) {
	mask := uint32(len(st.slots) - 1)
	i := uint32(pos)
	st.slots[i] = 0
	st.count--
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		e := st.slots[j]
		if e == 0 {
			return
		}
		home := uint32(e>>32) & mask
		// Move e into the hole at i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			st.slots[i] = e
			st.slots[j] = 0
			i = j
		}
	}
}

// posOf returns the slot holding handle h, whose key hashes to tag.
func (st *stripe) posOf(tag, h uint32) int {
	mask := uint32(len(st.slots) - 1)
	want := uint64(tag)<<32 | uint64(h)
	for i := tag & mask; ; i = (i + 1) & mask {
		e := st.slots[i]
		if e == want {
			return int(i)
		}
		if e == 0 {
			return -1
		}
	}
}
