package slab

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"
)

// Item layout inside its chunk (all integers little-endian):
//
//	off  size  field                     guarded by
//	  0     4  LRU prev (chunk handle)   class lock
//	  4     4  LRU next / free-list next class lock
//	  8     6  CAS, 48 bits (also the store sequence used by flush_all)
//	 14     2  value length, or vlenExt: the length is a uint32 after the key
//	 16     4  exptime, Unix seconds (0 = never)
//	 20     4  last access time, Unix seconds   atomic
//	 24     1  bits: fetched, stale, token sent, has flags,
//	           hit count (2 bits), LRU segment (2 bits)
//	 25     1  key length
//	 26     -  key, [flags uint32 if nonzero], [value length uint32],
//	           [chain table: (n-1) uint32 handles of continuation chunks],
//	           value
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
	offPrev  = 0
	offNext  = 4
	offCAS   = 8
	offVlen  = 14
	offExp   = 16
	offAtime = 20
	offBits  = 24
	offNkey  = 25
	hdrSize  = 26

	casMask = 1<<48 - 1

	vlenExt = 0xFFFF

	bitFetched   = 1 << 0
	bitStale     = 1 << 1
	bitTokenSent = 1 << 2
	bitHasFlags  = 1 << 3

	// hits: a 2-bit saturating hit counter. The segmented LRU uses it as
	// memcached's ACTIVE flag (nonzero = active), S3-FIFO as its frequency.
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
	tableOff int // offset of the chain table (chained items)
	valOff   int // offset of the value in the head chunk
	nchunks  int // 1, or the number of full-page chunks of a chained item
	total    int // bytes accounted for the item ("bytes" stat)
}

// makeLayout computes the layout of an item with the given key and value
// lengths on pages of pageSize bytes.
func makeLayout(nkey, vlen int, hasFlags bool, pageSize int) layout {
	l := layout{nkey: nkey, vlen: vlen, nchunks: 1}
	off := hdrSize + nkey
	if hasFlags {
		l.flagsOff = off
		off += 4
	}
	if vlen >= vlenExt {
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

// readLayout reads the layout of the item whose head chunk is b.
func readLayout(b []byte, pageSize int) layout {
	nkey := int(b[offNkey])
	hasFlags := b[offBits]&bitHasFlags != 0
	vlen := int(le.Uint16(b[offVlen:]))
	if vlen == vlenExt {
		off := hdrSize + nkey
		if hasFlags {
			off += 4
		}
		vlen = int(le.Uint32(b[off:]))
	}
	return makeLayout(nkey, vlen, hasFlags, pageSize)
}

// writeHeader initialises a fresh item's header, key, flags and length.
// The chain table and value are written by the caller.
func writeHeader(b []byte, l layout, key []byte, flags uint32, exptime, atime uint32, cas uint64) {
	le.PutUint32(b[offPrev:], 0)
	le.PutUint32(b[offNext:], 0)
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
	if l.vlen >= vlenExt {
		le.PutUint16(b[offVlen:], vlenExt)
		off := hdrSize + l.nkey
		if l.flagsOff != 0 {
			off += 4
		}
		le.PutUint32(b[off:], uint32(l.vlen))
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

func lruPrev(b []byte) uint32       { return le.Uint32(b[offPrev:]) }
func lruNext(b []byte) uint32       { return le.Uint32(b[offNext:]) }
func setLRUPrev(b []byte, h uint32) { le.PutUint32(b[offPrev:], h) }
func setLRUNext(b []byte, h uint32) { le.PutUint32(b[offNext:], h) }

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
