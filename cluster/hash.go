package cluster

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// KeyHash names the 32-bit function that turns a key into a point on the
// ketama continuum. The continuum's own points are always MD5 (that is what
// "ketama" means in libmemcached and twemproxy); only the key hash varies,
// and it must match the other clients' setting: libmemcached's
// MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED forces MD5, twemproxy's `hash:` option
// chooses it (its default is fnv1a_64).
//
// Each function reproduces libhashkit bit for bit, including its quirks:
// fnv1a_64 is computed in 32-bit arithmetic, crc keeps 15 bits, and key
// bytes >= 0x80 are sign-extended as C's signed char is on x86 and arm64
// Linux builds of libmemcached and twemproxy.
type KeyHash int

// Key hashes supported by KetamaSelector, named as in libmemcached's
// memcached_hash_t and twemproxy's `hash:` setting.
const (
	HashMD5        KeyHash = iota // "md5": libmemcached ketama's key hash
	HashCRC32                     // "crc32": libhashkit crc (15 bits), twemproxy crc32
	HashFNV1_64                   // "fnv1_64"
	HashFNV1a64                   // "fnv1a_64": twemproxy's default
	HashFNV1_32                   // "fnv1_32"
	HashFNV1a32                   // "fnv1a_32"
	HashOneAtATime                // "one_at_a_time": libmemcached's MEMCACHED_HASH_DEFAULT
)

var hashNames = map[KeyHash]string{
	HashMD5: "md5", HashCRC32: "crc32", HashFNV1_64: "fnv1_64", HashFNV1a64: "fnv1a_64",
	HashFNV1_32: "fnv1_32", HashFNV1a32: "fnv1a_32", HashOneAtATime: "one_at_a_time",
}

// String returns the twemproxy spelling of h.
func (h KeyHash) String() string {
	if s, ok := hashNames[h]; ok {
		return s
	}
	return fmt.Sprintf("KeyHash(%d)", int(h))
}

// ParseKeyHash accepts the twemproxy `hash:` spellings (md5, crc32,
// fnv1_64, fnv1a_64, fnv1_32, fnv1a_32, one_at_a_time), case-insensitively.
func ParseKeyHash(s string) (KeyHash, error) {
	for h, name := range hashNames {
		if strings.EqualFold(s, name) {
			return h, nil
		}
	}
	return 0, fmt.Errorf("cluster: unknown key hash %q", s)
}

// Sum32 hashes key with h.
func (h KeyHash) Sum32(key string) uint32 {
	switch h {
	case HashMD5:
		d := md5.Sum([]byte(key))
		return binary.LittleEndian.Uint32(d[0:4])
	case HashCRC32:
		return (crc32.ChecksumIEEE([]byte(key)) >> 16) & 0x7fff
	case HashFNV1_64:
		v := uint64(0xcbf29ce484222325)
		for i := 0; i < len(key); i++ {
			v *= 0x100000001b3
			v ^= uint64(int64(int8(key[i])))
		}
		return uint32(v)
	case HashFNV1a64:
		v := uint32(0x84222325) // (uint32_t) FNV_64_INIT
		for i := 0; i < len(key); i++ {
			v ^= schar(key[i])
			v *= 0x000001b3 // (uint32_t) FNV_64_PRIME
		}
		return v
	case HashFNV1_32:
		v := uint32(2166136261)
		for i := 0; i < len(key); i++ {
			v *= 16777619
			v ^= schar(key[i])
		}
		return v
	case HashFNV1a32:
		v := uint32(2166136261)
		for i := 0; i < len(key); i++ {
			v ^= schar(key[i])
			v *= 16777619
		}
		return v
	case HashOneAtATime:
		var v uint32
		for i := 0; i < len(key); i++ {
			v += schar(key[i])
			v += v << 10
			v ^= v >> 6
		}
		v += v << 3
		v ^= v >> 11
		v += v << 15
		return v
	}
	panic("cluster: unknown KeyHash " + h.String())
}

// schar is C's (uint32_t)(signed char)b.
func schar(b byte) uint32 { return uint32(int32(int8(b))) }
