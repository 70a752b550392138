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
//	  6     1  slack: unused bytes at the     class lock
//	           chunk's end, which give the value length; or a marker:
//	           slackExt (the length is a uint32 after the key),
//	           slackFree (a free chunk), slackBusy (allocated, not yet
//	           linked)
//	  7     1  bits: fetched, stale, token sent, has flags,
//	           hit count (2 bits), LRU segment (2 bits)
//	  8     4  last access time, Unix seconds   atomic
//	 12     4  exptime, Unix seconds (0 = never)
//	 16     1  key length
//	 17     -  key, [value length uint32], [LRU prev, next: chunk
//	           handles, 4 bytes each, when the item's class keeps lists],
//	           [flags uint32 if nonzero], [chain table: (n-1) uint32
//	           handles of continuation chunks], value
//
// The 17-byte header is all an item needs under the CLOCK policy, which
// keeps no lists: its hand walks the class's chunks in place. The list
// policies (segmented LRU, flat LRU, S3-FIFO) add the two links, placed
// after the key so that the header's fields sit at fixed offsets; under
// CLOCK only the last class (items over half a page, few and large)
// keeps lists, because its continuation chunks carry no header for a
// hand to read.
//
// The value length is implied by the chunk's size: the item fills its
// chunk but for slack bytes. Where the class's chunks are too coarse for
// a byte of slack (chunks over about 1 KB), and in the last class, the
// length is stored in full after the key instead.
//
// A free chunk has slackFree and the next free chunk's handle in its
// first 4 bytes. The slack byte is written only under the class lock:
// slackBusy when the chunk is handed out, the real slack when the
// finished item is linked. So the CLOCK hand and the page mover, which
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
	offSlack = 6
	offBits  = 7
	offAtime = 8
	offExp   = 12
	offNkey  = 16
	hdrSize  = 17

	offFreeNext = 0 // free chunks: the next free chunk
	linkBytes   = 8 // LRU prev and next, in classes that keep lists

	casMask = 1<<48 - 1

	slackMax  = 252 // larger slack: the length is stored after the key
	slackBusy = 253
	slackFree = 254
	slackExt  = 255

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
	ext      bool   // the length is stored after the key
	flagsOff int    // offset of the flags, 0 when flags are 0
	linkOff  int    // offset of the LRU links, 0 when the item has none
	tableOff int    // offset of the chain table (chained items)
	valOff   int    // offset of the value in the head chunk
	nchunks  int    // 1, or the number of full-page chunks of a chained item
	total    int    // bytes accounted for the item ("bytes" stat)
	cls      *class // the item's class when layoutFor looked it up, else nil (classFor)
}

// makeLayout computes the layout of an item with the given key and value
// lengths; links says whether it carries LRU links, ext whether its
// length is stored after the key.
func makeLayout(nkey, vlen int, hasFlags, links, ext bool, pageSize int) layout {
	l := layout{nkey: nkey, vlen: vlen, ext: ext, nchunks: 1}
	off := hdrSize + nkey
	if ext {
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

// layoutFor returns the layout of a new item in s: its length implied by
// a byte of slack where its class allows, else stored; with LRU links
// under the list policies, and under CLOCK only in the last class.
func (s *Store) layoutFor(nkey, vlen int, hasFlags bool) layout {
	if l := makeLayout(nkey, vlen, hasFlags, s.linkAll, false, s.pageSize); l.nchunks == 1 && l.total <= s.halfSize {
		if l.cls = s.classFor(l); l.cls.size-l.total <= slackMax {
			return l
		}
	}
	return s.extLayout(nkey, vlen, hasFlags)
}

// extLayout returns the layout of an item whose length is stored.
func (s *Store) extLayout(nkey, vlen int, hasFlags bool) layout {
	l := makeLayout(nkey, vlen, hasFlags, s.linkAll, true, s.pageSize)
	if !s.linkAll && (l.nchunks > 1 || l.total > s.halfSize) {
		l = makeLayout(nkey, vlen, hasFlags, true, true, s.pageSize)
	}
	return l
}

// readLayout reads the layout of the item whose head chunk is b, the
// whole chunk (as Store.chunk returns it).
func (s *Store) readLayout(b []byte) layout {
	nkey := int(b[offNkey])
	hasFlags := b[offBits]&bitHasFlags != 0
	slack := int(b[offSlack])
	if slack == slackExt {
		return s.extLayout(nkey, int(le.Uint32(b[hdrSize+nkey:])), hasFlags)
	}
	off := hdrSize + nkey
	if s.linkAll {
		off += linkBytes
	}
	if hasFlags {
		off += 4
	}
	return makeLayout(nkey, len(b)-off-slack, hasFlags, s.linkAll, false, s.pageSize)
}

// writeHeader initialises a fresh item's header, key, flags and stored
// length. The links, chain table and value are written by the caller; the
// slack byte when the item is linked (setSlack).
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
	if l.ext {
		le.PutUint32(b[hdrSize+l.nkey:], uint32(l.vlen))
	}
}

// setSlack writes the slack byte of the item b of layout l, completing
// it. Class lock held.
func setSlack(b []byte, l layout) {
	if l.ext {
		b[offSlack] = slackExt
	} else {
		b[offSlack] = byte(len(b) - l.total)
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
	if b[offSlack] == slackExt {
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
func isFree(b []byte) bool { return b[offSlack] == slackFree }

// isItem reports whether chunk b holds a linked item (neither free nor
// half-written). Class lock held.
func isItem(b []byte) bool {
	v := b[offSlack]
	return v != slackFree && v != slackBusy
}

// markFree marks chunk b free, followed on the free list by next.
func markFree(b []byte, next uint32) {
	b[offSlack] = slackFree
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

// writeFrom writes value, or the reserved value of res when it is not nil.
func (w *valueWriter) writeFrom(value []byte, res *Reservation) {
	if res != nil {
		res.writeValue(w)
		return
	}
	w.write(value)
}

// copyValue writes the value of the item at (b, l) through w.
func (w *valueWriter) copyValue(b []byte, l layout) {
	for i := 0; i < l.nchunks; i++ {
		w.write(w.s.valueSeg(b, l, i))
	}
}
