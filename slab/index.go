package slab

import (
	"bytes"
	"sync"
)

// The index is split into stripes, each an open-addressing table guarded
// by its own mutex. A slot is 6 bytes in two parallel arrays: a 16-bit tag
// (the top 16 bits of the key's hash; 0 marks an empty slot) and the
// 32-bit handle of the item's head chunk. Slots hold no Go pointers, so
// the garbage collector never looks inside them.
//
// The low bits of the hash pick the stripe, the tag the home slot
// (tag * len / 2^16, so the table may have any length). Tables use
// Robin Hood linear probing: an entry never sits farther from its home
// than the entries it passed, so a lookup stops as soon as it meets an
// entry closer to its own home than the key would be, and a miss costs
// about as few probes as a hit even when the table is nearly full. That
// lets a table fill to 15/16 before it grows by 1/8: 6.4 to 7.1 bytes
// per item. Probes read the tag array only until a tag matches; a tag
// match is only a hint: the full key stored in the item is always
// compared. Tables stay below 2^16 slots as long as a stripe holds fewer
// than ~61K items; New sizes the stripe count from the memory limit so
// that they do (a larger table still works, with more tag collisions).

const (
	minStripes      = 1024
	maxStripes      = 1 << 16
	initStripeSlots = 16
	stripeItems     = 16384 // items per stripe New plans for
)

// stripe is one lock-protected part of the index plus the counters of the
// events that happen under its lock.
type stripe struct {
	mu    sync.Mutex
	tags  []uint16
	hs    []uint32
	count int
	ctr   stripeCounters
	_     [72]byte // keep neighbouring stripes' locks on separate cache lines
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

// slotTag is the index tag of a key whose 32-bit hash tag is tag: its top
// 16 bits, never 0 (the empty slot).
func slotTag(tag uint32) uint16 {
	t := uint16(tag >> 16)
	if t == 0 {
		t = 1
	}
	return t
}

// home returns the home slot of t in a table of n slots.
func home(t uint16, n int) int { return int(uint64(t) * uint64(n) >> 16) }

func (st *stripe) init(n int) {
	st.tags = make([]uint16, n)
	st.hs = make([]uint32, n)
}

// dist returns how far slot i of a table of n slots is from the home of
// tag t.
func dist(t uint16, i, n int) int {
	d := i - home(t, n)
	if d < 0 {
		d += n
	}
	return d
}

// find returns the slot position and handle of key, or (-1, 0).
// The stripe lock must be held.
func (s *Store) find(st *stripe, tag uint32, key []byte) (int, uint32) {
	t := slotTag(tag)
	tags := st.tags
	n := len(tags)
	for i, d := home(t, n), 0; ; d++ {
		e := tags[i]
		if e == 0 {
			return -1, 0
		}
		if e == t {
			h := st.hs[i]
			if bytes.Equal(itemKey(s.chunk(h)), key) {
				return i, h
			}
		} else if dist(e, i, n) < d {
			return -1, 0 // key would have displaced e
		}
		if i++; i == n {
			i = 0
		}
	}
}

// insert adds handle h under tag; the key must not be present. It
// returns the bytes of the table it replaced when it grew the stripe (0
// otherwise): garbage the maintenance goroutine has collected (collectIndex).
func (st *stripe) insert(tag, h uint32) (freed int) {
	if (st.count+1)*16 > len(st.tags)*15 {
		freed = len(st.tags) * slotBytes
		st.grow()
	}
	st.put(slotTag(tag), h)
	st.count++
	return freed
}

func (st *stripe) put(t uint16, h uint32) {
	n := len(st.tags)
	for i, d := home(t, n), 0; ; d++ {
		e := st.tags[i]
		if e == 0 {
			st.tags[i], st.hs[i] = t, h
			return
		}
		// Robin Hood: take the slot of an entry nearer its home, and
		// carry that entry on.
		if de := dist(e, i, n); de < d {
			st.tags[i], t = t, e
			st.hs[i], h = h, st.hs[i]
			d = de
		}
		if i++; i == n {
			i = 0
		}
	}
}

func (st *stripe) grow() {
	oldT, oldH := st.tags, st.hs
	st.init(len(oldT) + max(len(oldT)/8, 1))
	for i, t := range oldT {
		if t != 0 {
			st.put(t, oldH[i])
		}
	}
}

// removeAt deletes the slot at pos with backward-shift deletion: the
// entries after it that are not at their home move back one slot, so no
// tombstones are needed and the Robin Hood order holds.
func (st *stripe) removeAt(pos int) {
	n := len(st.tags)
	st.count--
	i := pos
	for {
		j := i + 1
		if j == n {
			j = 0
		}
		t := st.tags[j]
		if t == 0 || dist(t, j, n) == 0 {
			st.tags[i], st.hs[i] = 0, 0
			return
		}
		st.tags[i], st.hs[i] = t, st.hs[j]
		i = j
	}
}

// posOf returns the slot holding handle h, whose key hashes to tag.
func (st *stripe) posOf(tag, h uint32) int {
	t := slotTag(tag)
	n := len(st.tags)
	for i, d := home(t, n), 0; ; d++ {
		e := st.tags[i]
		if e == 0 {
			return -1
		}
		if e == t && st.hs[i] == h {
			return i
		}
		if e != t && dist(e, i, n) < d {
			return -1
		}
		if i++; i == n {
			i = 0
		}
	}
}

// slotBytes is the size of one index slot.
const slotBytes = 6
