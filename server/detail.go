package server

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
)

// prefixStats implements memcached's "stats detail": per key-prefix counts
// of gets, hits, sets and deletes, kept only while enabled ("stats detail
// on" or -D), dumped by "stats detail dump".
type prefixStats struct {
	enabled   atomic.Bool
	delimiter byte // -D; default ':'

	mu      sync.Mutex // guards buckets
	buckets [prefixBuckets][]*prefixCount
}

// prefixBuckets is memcached's PREFIX_HASH_SIZE: the dump walks the buckets
// in order, newest prefix first within one, and gocached hashes prefixes
// into them with memcached's murmur3 so the dump's order matches.
const prefixBuckets = 256

type prefixCount struct {
	prefix                string
	gets, hits, sets, del uint64
}

// find returns key's prefix counters, creating them; nil when key has no
// delimiter. p.mu must be held.
func (p *prefixStats) find(key []byte) *prefixCount {
	n := -1
	for i, c := range key {
		if c == p.delimiter {
			n = i
			break
		}
	}
	if n < 0 {
		return nil
	}
	prefix := key[:n]
	b := &p.buckets[murmur3(prefix)%prefixBuckets]
	for _, pc := range *b {
		if pc.prefix == string(prefix) {
			return pc
		}
	}
	pc := &prefixCount{prefix: string(prefix)}
	*b = append([]*prefixCount{pc}, *b...)
	return pc
}

// prefixOp is what a request did to a key, for "stats detail".
type prefixOp uint8

const (
	prefixMiss prefixOp = iota // a get that missed
	prefixHit                  // a get that hit
	prefixSet
	prefixDelete
)

// getOp is the prefixOp of a get.
func getOp(hit bool) prefixOp {
	if hit {
		return prefixHit
	}
	return prefixMiss
}

// record counts one operation on key when detail stats are on; the check
// is one atomic load, so the hot path pays nothing otherwise.
func (p *prefixStats) record(key []byte, op prefixOp) {
	if !p.enabled.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := p.find(key)
	if pc == nil {
		return
	}
	switch op {
	case prefixHit:
		pc.hits++
		pc.gets++
	case prefixMiss:
		pc.gets++
	case prefixSet:
		pc.sets++
	case prefixDelete:
		pc.del++
	}
}

// clear forgets every prefix (stats reset).
func (p *prefixStats) clear() {
	p.mu.Lock()
	p.buckets = [prefixBuckets][]*prefixCount{}
	p.mu.Unlock()
}

// appendDump appends memcached's "PREFIX name get N hit N set N del N"
// lines and END.
func (p *prefixStats) appendDump(b []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, bucket := range p.buckets {
		for _, pc := range bucket {
			b = append(b, "PREFIX "...)
			b = append(b, pc.prefix...)
			b = append(b, " get "...)
			b = strconv.AppendUint(b, pc.gets, 10)
			b = append(b, " hit "...)
			b = strconv.AppendUint(b, pc.hits, 10)
			b = append(b, " set "...)
			b = strconv.AppendUint(b, pc.sets, 10)
			b = append(b, " del "...)
			b = strconv.AppendUint(b, pc.del, 10)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "END\r\n"...)
}

// murmur3 is MurmurHash3_x86_32 with seed 0, memcached's default hash.
func murmur3(key []byte) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	var h uint32
	n := len(key)
	for ; len(key) >= 4; key = key[4:] {
		k := binary.LittleEndian.Uint32(key)
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	switch len(key) {
	case 3:
		k ^= uint32(key[2]) << 16
		fallthrough
	case 2:
		k ^= uint32(key[1]) << 8
		fallthrough
	case 1:
		k ^= uint32(key[0])
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(n)
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
