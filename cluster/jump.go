package cluster

import (
	"net"

	jump "github.com/dgryski/go-jump"
)

// JumpSelector places keys with Google's jump consistent hash over a 64-bit
// key hash. Every node gets 1/N of the keys (no virtual-node variance), and
// growing the list from N to N+1 nodes moves only 1/(N+1) of them. The price
// is that nodes may only be appended or removed at the end: removing one in
// the middle renumbers the rest. Ejection therefore never changes N; an
// ejected node's keys are re-hashed onto live nodes instead (see Pick).
//
// It is safe for concurrent use.
type JumpSelector struct {
	addrs []net.Addr
	h     *health
	// Hash is the 64-bit key hash; nil means KeyHash64. Set it before use.
	Hash func(key string) uint64
}

// NewJumpSelector returns a JumpSelector over servers ("host:port" or a
// unix socket path), in the order given. Addresses are not resolved until
// dialled, so a node that is down at start-up does not fail construction.
func NewJumpSelector(servers ...string) (*JumpSelector, error) {
	addrs, err := parseAddrs(servers)
	if err != nil {
		return nil, err
	}
	return &JumpSelector{addrs: addrs, h: newHealth(len(addrs))}, nil
}

// KeyHash64 is JumpSelector's default key hash: FNV-1a 64 followed by the
// murmur3 finaliser. The finaliser matters because jump feeds the hash to an
// LCG whose output depends mostly on the high bits, and plain FNV of short,
// similar keys ("user:1", "user:2") leaves those bits poorly mixed.
func KeyHash64(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return fmix64(h)
}

func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

func (s *JumpSelector) hash(key string) uint64 {
	if s.Hash != nil {
		return s.Hash(key)
	}
	return KeyHash64(key)
}

// Nodes returns the configured nodes.
func (s *JumpSelector) Nodes() []net.Addr { return s.addrs }

// Primary returns key's owner when every node is up.
func (s *JumpSelector) Primary(key string) int {
	if len(s.addrs) == 0 {
		return -1
	}
	return int(jump.Hash(s.hash(key), len(s.addrs)))
}

// Pick returns the node key goes to now. When the primary is ejected the key
// is re-hashed with a per-attempt salt and jumped again over all N nodes
// until a live one comes up: deterministic (every client with the same view
// of dead nodes agrees), spread evenly over the survivors, and keys whose
// primary is alive never move.
func (s *JumpSelector) Pick(key string) (int, error) {
	n := len(s.addrs)
	if n == 0 {
		return -1, ErrNoLiveNodes
	}
	h := s.hash(key)
	b := int(jump.Hash(h, n))
	if s.h.alive(b) {
		return b, nil
	}
	for attempt := uint64(1); attempt <= 64; attempt++ {
		c := int(jump.Hash(fmix64(h+attempt*0x9e3779b97f4a7c15), n))
		if s.h.alive(c) {
			return c, nil
		}
	}
	// Only reached when nearly every node is out: scan from the primary so
	// the answer is still deterministic.
	for d := 1; d < n; d++ {
		if c := (b + d) % n; s.h.alive(c) {
			return c, nil
		}
	}
	return -1, ErrNoLiveNodes
}

func (s *JumpSelector) replicas(key string, n int, dst []int) []int {
	nodes := len(s.addrs)
	if nodes == 0 {
		return dst
	}
	n = min(n, nodes)
	base := len(dst)
	h := s.hash(key)
	b := int(jump.Hash(h, nodes))
	if s.h.alive(b) {
		dst = append(dst, b)
	}
	for attempt := uint64(1); attempt <= 64 && len(dst)-base < n; attempt++ {
		if c := int(jump.Hash(fmix64(h+attempt*0x9e3779b97f4a7c15), nodes)); s.h.alive(c) {
			dst = appendDistinct(dst, c)
		}
	}
	for d := 1; d < nodes && len(dst)-base < n; d++ {
		if c := (b + d) % nodes; s.h.alive(c) {
			dst = appendDistinct(dst, c)
		}
	}
	return dst
}

// PickServer implements memcache.ServerSelector.
func (s *JumpSelector) PickServer(key string) (net.Addr, error) { return pickServer(s, key) }

// Each implements memcache.ServerSelector; it visits every configured node,
// ejected or not, so FlushAll and Ping reach the whole cluster.
func (s *JumpSelector) Each(f func(net.Addr) error) error { return eachNode(s.addrs, f) }

func (s *JumpSelector) health() *health { return s.h }
