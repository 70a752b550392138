package slab

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Item layout inside its chunk (all integers little-endian):
//
//	off  size  field                     guarded by
//	  0     6  CAS, 48 bits (also the store sequence used by flush_all)
//	  6     2  value length, or vlenExt: the length    class lock
//	           is a uint32 after the key; vlenFree
//	           marks a free chunk, vlenBusy one
//	           allocated but not yet linked
//	  8     4  exptime, Unix seconds (0 = never)
//	 12     4  last access time, Unix seconds   atomic
//	 16     1  bits: fetched, stale, token sent, has flags,
//	           hit count (2 bits), LRU segment (2 bits)
//	 17     1  key length
//	 18     -  key, [value length uint32], [LRU prev, next: chunk
//	           handles, 4 bytes each, when the item's class keeps lists],
//	           [flags uint32 if nonzero], [chain table: (n-1) uint32
//	           handles of continuation chunks], value
//
// The 18-byte header is all an item needs under the CLOCK policy, which
// keeps no lists: its hand walks the class's chunks in place. The list
// policies (segmented LRU, flat LRU, S3-FIFO) add the two links, placed
// after the key so that every other field sits at a fixed offset; under
// CLOCK only the last class (items over half a page, few and large)
// keeps lists, because its continuation chunks carry no header for a
// hand to read.
//
// A free chunk has vlenFree in its value length and the next free chunk's
// handle in its first 4 bytes. The value length is written only under the
// class lock: vlenBusy when the chunk is handed out, the real length when
// the finished item is linked. So the CLOCK hand and the page mover, which
// hold the class lock but not the item's stripe, can tell free and
// half-written chunks from items before they read a key.
//
// The CAS is 48 bits: the store hands out at most 2^48 (2.8e14) of them,
// 9 years at a million stores a second, before it would wrap.
//
// CAS, exptime and bits are written under the key's stripe lock; the
// segment bits (which of the class's LRU lists holds the item) change only
// while holding both the stripe and the class lock. The access time is
// read and written atomically: a read updates it under the stripe lock
// alone, and the class side (ages, HOT/WARM age limits) reads it under the
// class lock alone. Key length and key bytes never change while the item is
// linked, so the evictor may read them under the class lock alone.
//
// Items larger than a page are chained: the head chunk (a full page of the
// last class) holds the header, key and chain table and the first part of
// the value; each continuation chunk (another full page) holds raw value
// bytes.
const (
	offCAS   = 0
	offVlen  = 6
	offExp   = 8
	offAtime = 12
	offBits  = 16
	offNkey  = 17
	hdrSize  = 18

	offFreeNext = 0 // free chunks: the next free chunk
	linkBytes   = 8 // LRU prev and next, in classes that keep lists

	casMask = 1<<48 - 1

	vlenExt  = 0xFFFF
	vlenFree = 0xFFFE
	vlenBusy = 0xFFFD // allocated, not yet linked; lengths from here on are stored as vlenExt

	bitFetched   = 1 << 0
	bitStale     = 1 << 1
	bitTokenSent = 1 << 2
	bitHasFlags  = 1 << 3

	// hits: a 2-bit saturating hit counter. The segmented LRU uses it as
	// memcached's ACTIVE flag (nonzero = active), S3-FIFO and CLOCK as its
	// frequency.
	hitsShift = 4
	hitsMask  = 3 << hitsShift
	// seg: the LRU list of the class that holds the item (segHot...).
	segShift = 6
	segMask  = 3 << segShift

	maxKeyLen = 250 // memcached's KEY_MAX_LENGTH

	// updateInterval is memcached's ITEM_UPDATE_INTERVAL: an item read is
	// moved to the LRU head at most once per this many seconds.
	updateInterval = 60
)

var le = binary.LittleEndian

// layout describes where an item's parts live.
type layout struct {
	nkey     int
	vlen     int
	flagsOff int // offset of the flags, 0 when flags are 0
	linkOff  int // offset of the LRU links, 0 when the item has none
	tableOff int // offset of the chain table (chained items)
	valOff   int // offset of the value in the head chunk
	nchunks  int // 1, or the number of full-page chunks of a chained item
	total    int // bytes accounted for the item ("bytes" stat)
}

// makeLayout computes the layout of an item with the given key and value
// lengths; links says whether it carries LRU links.
func makeLayout(nkey, vlen int, hasFlags, links bool, pageSize int) layout {
	l := layout{nkey: nkey, vlen: vlen, nchunks: 1}
	off := hdrSize + nkey
	if vlen >= vlenBusy {
		off += 4
	}
	if links {
		l.linkOff = off
		off += linkBytes
	}
	if hasFlags {
		l.flagsOff = off
		off += 4
	}
	l.tableOff = off
	if off+vlen <= pageSize {
		l.valOff = off
		l.total = off + vlen
		return l
	}
	n := (vlen + off - 4 + pageSize - 5) / (pageSize - 4)
	for n*pageSize-(off+4*(n-1)) < vlen {
		n++
	}
	l.nchunks = n
	l.valOff = off + 4*(n-1)
	l.total = l.valOff + vlen
	return l
}

// layoutFor returns the layout of an item in s: with LRU links under the
// list policies, and under CLOCK only when it lands in the last class.
func (s *Store) layoutFor(nkey, vlen int, hasFlags bool) layout {
	if !s.linkAll {
		if l := makeLayout(nkey, vlen, hasFlags, false, s.pageSize); l.nchunks == 1 && l.total <= s.halfSize {
			return l
		}
	}
	return makeLayout(nkey, vlen, hasFlags, true, s.pageSize)
}

// readLayout reads the layout of the item whose head chunk is b.
func (s *Store) readLayout(b []byte) layout {
	nkey := int(b[offNkey])
	hasFlags := b[offBits]&bitHasFlags != 0
	vlen := int(le.Uint16(b[offVlen:]))
	if vlen == vlenExt {
		vlen = int(le.Uint32(b[hdrSize+nkey:]))
	}
	return s.layoutFor(nkey, vlen, hasFlags)
}

// writeHeader initialises a fresh item's header, key, flags and, past
// 16 bits, length. The links, chain table and value are written by the
// caller; the 16-bit length field is written when the item is linked
// (setVlen).
func writeHeader(b []byte, l layout, key []byte, flags uint32, exptime, atime uint32, cas uint64) {
	setCAS(b, cas)
	le.PutUint32(b[offExp:], exptime)
	setAtime(b, atime)
	var bits byte
	if l.flagsOff != 0 {
		bits |= bitHasFlags
		le.PutUint32(b[l.flagsOff:], flags)
	}
	b[offBits] = bits
	b[offNkey] = byte(l.nkey)
	copy(b[hdrSize:], key)
	if l.vlen >= vlenBusy {
		le.PutUint32(b[hdrSize+l.nkey:], uint32(l.vlen))
	}
}

// setVlen writes the 16-bit length field of the item b of layout l,
// completing it. Class lock held.
func setVlen(b []byte, l layout) {
	if l.vlen >= vlenBusy {
		le.PutUint16(b[offVlen:], vlenExt)
	} else {
		le.PutUint16(b[offVlen:], uint16(l.vlen))
	}
}

func itemKey(b []byte) []byte { return b[hdrSize : hdrSize+int(b[offNkey])] }

func itemFlags(b []byte, l layout) uint32 {
	if l.flagsOff == 0 {
		return 0
	}
	return le.Uint32(b[l.flagsOff:])
}

func itemCAS(b []byte) uint64 {
	_ = b[offCAS+5]
	return uint64(le.Uint32(b[offCAS:])) | uint64(le.Uint16(b[offCAS+4:]))<<32
}
func itemExp(b []byte) uint32 { return le.Uint32(b[offExp:]) }
func itemAtime(b []byte) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[offAtime])))
}
func setCAS(b []byte, v uint64) {
	_ = b[offCAS+5]
	le.PutUint32(b[offCAS:], uint32(v))
	le.PutUint16(b[offCAS+4:], uint16(v>>32))
}
func setExp(b []byte, v uint32) { le.PutUint32(b[offExp:], v) }
func setAtime(b []byte, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[offAtime])), v)
}

// itemHits returns the item's hit counter (0..3). Stripe lock held.
func itemHits(b []byte) int { return int(b[offBits]&hitsMask) >> hitsShift }

// setHits sets the item's hit counter (0..3). Stripe lock held.
func setHits(b []byte, n int) { b[offBits] = b[offBits]&^hitsMask | byte(n)<<hitsShift }

// itemSeg returns the LRU list holding the item. Stripe lock held.
func itemSeg(b []byte) int { return int(b[offBits]&segMask) >> segShift }

// setSeg records the LRU list holding the item. Stripe and class lock held.
func setSeg(b []byte, seg int) { b[offBits] = b[offBits]&^segMask | byte(seg)<<segShift }

// linkOff returns the offset of the LRU links of the item b (which must
// carry links). It reads only what stays fixed while the item is linked
// and is written under the class lock (key and value lengths): the class
// side reads neighbours' links without their stripe locks.
func linkOff(b []byte) int {
	off := hdrSize + int(b[offNkey])
	if le.Uint16(b[offVlen:]) == vlenExt {
		off += 4
	}
	return off
}

func lruPrev(b []byte) uint32 { return le.Uint32(b[linkOff(b):]) }
func lruNext(b []byte) uint32 { return le.Uint32(b[linkOff(b)+4:]) }
func setLRUPrev(b []byte, h uint32) {
	le.PutUint32(b[linkOff(b):], h)
}
func setLRUNext(b []byte, h uint32) {
	le.PutUint32(b[linkOff(b)+4:], h)
}

// isFree reports whether chunk b is free (not an item's head). Only for
// chunks that hold headers: not continuation chunks of chained items.
func isFree(b []byte) bool { return le.Uint16(b[offVlen:]) == vlenFree }

// isItem reports whether chunk b holds a linked item (neither free nor
// half-written). Class lock held.
func isItem(b []byte) bool {
	v := le.Uint16(b[offVlen:])
	return v != vlenFree && v != vlenBusy
}

// markFree marks chunk b free, followed on the free list by next.
func markFree(b []byte, next uint32) {
	le.PutUint16(b[offVlen:], vlenFree)
	le.PutUint32(b[offFreeNext:], next)
}

func freeNext(b []byte) uint32 { return le.Uint32(b[offFreeNext:]) }

// chainHandle returns the handle of continuation chunk i (1-based).
func chainHandle(b []byte, l layout, i int) uint32 {
	return le.Uint32(b[l.tableOff+4*(i-1):])
}

// valueSeg returns segment i of the value of the item whose head chunk is b.
func (s *Store) valueSeg(b []byte, l layout, i int) []byte {
	if l.nchunks == 1 {
		return b[l.valOff : l.valOff+l.vlen]
	}
	if i == 0 {
		return b[l.valOff:s.pageSize]
	}
	start := s.pageSize - l.valOff + (i-1)*s.pageSize
	n := min(s.pageSize, l.vlen-start)
	return s.chunk(chainHandle(b, l, i))[:n]
}

// appendValue appends the item's value to dst.
func (s *Store) appendValue(dst, b []byte, l layout) []byte {
	for i := 0; i < l.nchunks; i++ {
		dst = append(dst, s.valueSeg(b, l, i)...)
	}
	return dst
}

// valueWriter writes a new item's value sequentially across its segments.
type valueWriter struct {
	s   *Store
	b   []byte
	l   layout
	seg int
	cur []byte
}

func (s *Store) newValueWriter(b []byte, l layout) valueWriter {
	return valueWriter{s: s, b: b, l: l, cur: s.valueSeg(b, l, 0)}
}

func (w *valueWriter) write(p []byte) {
	for len(p) > 0 {
		if len(w.cur) == 0 {
			w.seg++
			w.cur = w.s.valueSeg(w.b, w.l, w.seg)
		}
		n := copy(w.cur, p)
		w.cur = w.cur[n:]
		p = p[n:]
	}
}

// copyValue writes the value of the item at (b, l) through w.
func (w *valueWriter) copyValue(b []byte, l layout) {
	for i := 0; i < l.nchunks; i++ {
		w.write(w.s.valueSeg(b, l, i))
	}
}
