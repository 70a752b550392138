package cluster

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
)

// ketamaPointsPerServer is libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA
// and twemproxy's KETAMA_POINTS_PER_SERVER: 160 points for an average
// weight, produced 4 at a time from one MD5 digest.
const ketamaPointsPerServer = 160

// ketamaDefaultPort is left out of a node's continuum name by both
// libmemcached and twemproxy ("10.0.0.1-0" rather than "10.0.0.1:11211-0");
// matching that is what makes the default-port case agree.
const ketamaDefaultPort = 11211

// Server is one node of a KetamaSelector.
type Server struct {
	// Addr is "host:port" or a unix socket path. The host is used exactly as
	// written in the continuum names, as libmemcached and twemproxy do, so
	// every client must spell it the same way (a name vs. its IP differ).
	Addr string
	// Weight scales the node's share of keys; 0 means 1.
	Weight int
	// Name, when set, replaces the address in the continuum names, as
	// twemproxy's "host:port:weight name" form does. It lets a node move to
	// another address without its keys moving.
	Name string
}

// ParseServer reads a server in twemproxy's notation: "host:port",
// "host:port:weight" or "host:port:weight name" (and "/path", "/path:weight").
func ParseServer(s string) (Server, error) {
	var srv Server
	s = strings.TrimSpace(s)
	if sp := strings.IndexAny(s, " \t"); sp >= 0 {
		srv.Name = strings.TrimSpace(s[sp+1:])
		s = s[:sp]
	}
	srv.Addr = s
	if strings.HasPrefix(s, "/") {
		if i := strings.LastIndexByte(s, ':'); i > 0 {
			w, err := strconv.Atoi(s[i+1:])
			if err != nil {
				return srv, fmt.Errorf("cluster: server %q: bad weight", s)
			}
			srv.Addr, srv.Weight = s[:i], w
		}
		return srv, nil
	}
	if strings.Count(s, ":") == 2 {
		i := strings.LastIndexByte(s, ':')
		w, err := strconv.Atoi(s[i+1:])
		if err != nil || w < 0 {
			return srv, fmt.Errorf("cluster: server %q: bad weight", s)
		}
		srv.Addr, srv.Weight = s[:i], w
	}
	if _, _, err := net.SplitHostPort(srv.Addr); err != nil {
		return srv, fmt.Errorf("cluster: server %q: %w", s, err)
	}
	return srv, nil
}

// continuumName is the string whose MD5 digests place a server's points:
// the configured name, else the host, plus ":port" unless the port is the
// default 11211.
func (s Server) continuumName() string {
	if s.Name != "" {
		return s.Name
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil { // unix socket
		return s.Addr
	}
	if port == strconv.Itoa(ketamaDefaultPort) {
		return host
	}
	return host + ":" + port
}

type ketamaPoint struct {
	value uint32
	node  int32
}

// KetamaSelector is the weighted ketama continuum of libmemcached
// (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED / MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED)
// and twemproxy (distribution: ketama). For every node with weight w out of a
// total W it places floor(w/W * 160/4 * N) * 4 points, taken 4 at a time
// from MD5("name-i") read as little-endian uint32s, sorts them, and sends a
// key to the first point at or after its hash, wrapping at the top.
//
// Ejection does not rebuild the continuum: an ejected node's keys go to the
// next live point clockwise, so no other key moves. (twemproxy instead
// rebuilds without the node, which also shifts a few other keys while a node
// is out; both agree whenever every node is up.)
//
// It is safe for concurrent use.
type KetamaSelector struct {
	servers []Server
	addrs   []net.Addr
	points  []ketamaPoint
	hash    KeyHash
	h       *health
}

// NewKetamaSelector builds the continuum for servers, hashing keys with
// hash (HashMD5 to agree with libmemcached's ketama, the pool's `hash:` to
// agree with twemproxy).
func NewKetamaSelector(hash KeyHash, servers ...Server) (*KetamaSelector, error) {
	if _, ok := hashNames[hash]; !ok {
		return nil, fmt.Errorf("cluster: unknown key hash %d", int(hash))
	}
	s := &KetamaSelector{hash: hash, servers: append([]Server(nil), servers...), h: newHealth(len(servers))}
	var total uint64
	for i := range s.servers {
		if s.servers[i].Weight <= 0 {
			s.servers[i].Weight = 1
		}
		total += uint64(s.servers[i].Weight)
		a, err := newNodeAddr(s.servers[i].Addr)
		if err != nil {
			return nil, err
		}
		s.addrs = append(s.addrs, a)
	}
	n := len(s.servers)
	for i, srv := range s.servers {
		name := srv.continuumName()
		per := ketamaPoints(uint64(srv.Weight), total, n)
		for p := uint32(0); p < per/4; p++ {
			d := md5.Sum([]byte(name + "-" + strconv.FormatUint(uint64(p), 10)))
			for x := 0; x < 4; x++ {
				s.points = append(s.points, ketamaPoint{binary.LittleEndian.Uint32(d[4*x:]), int32(i)})
			}
		}
	}
	// libmemcached breaks value ties by server index; twemproxy's qsort
	// leaves them unspecified. Ties need two of ~160N 32-bit values to
	// collide, so the two practically never disagree.
	sort.Slice(s.points, func(a, b int) bool {
		pa, pb := s.points[a], s.points[b]
		return pa.value < pb.value || pa.value == pb.value && pa.node < pb.node
	})
	return s, nil
}

// NewKetamaSelectorAddrs is NewKetamaSelector with MD5 keys over servers in
// ParseServer notation; it is the libmemcached-compatible default.
func NewKetamaSelectorAddrs(servers ...string) (*KetamaSelector, error) {
	list := make([]Server, len(servers))
	for i, s := range servers {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		list[i] = srv
	}
	return NewKetamaSelector(HashMD5, list...)
}

// ketamaPoints reproduces the C expression
//
//	floor((float)(pct * 160 / 4 * (float)n + 1e-10)) * 4,  pct = (float)w / (float)total
//
// in single precision step by step, because a node whose exact share lands
// on an integer boundary gets 4 points more or fewer depending on float32
// rounding, and that must match the C clients. The explicit conversions also
// stop the compiler from fusing multiply-adds.
func ketamaPoints(w, total uint64, n int) uint32 {
	pct := float32(w) / float32(total)
	x := float32(pct * float32(ketamaPointsPerServer))
	x = float32(x / 4)
	x = float32(x * float32(n))
	x = float32(x + float32(1e-10))
	return uint32(math.Floor(float64(x))) * 4
}

// Hash returns the key hash in use.
func (s *KetamaSelector) Hash() KeyHash { return s.hash }

// Servers returns the servers with their effective weights.
func (s *KetamaSelector) Servers() []Server { return append([]Server(nil), s.servers...) }

// Nodes returns the configured nodes.
func (s *KetamaSelector) Nodes() []net.Addr { return s.addrs }

func (s *KetamaSelector) search(key string) int {
	v := s.hash.Sum32(key)
	i := sort.Search(len(s.points), func(i int) bool { return s.points[i].value >= v })
	if i == len(s.points) {
		i = 0
	}
	return i
}

// Primary returns key's owner when every node is up: the node libmemcached
// and twemproxy pick.
func (s *KetamaSelector) Primary(key string) int {
	if len(s.points) == 0 {
		return -1
	}
	return int(s.points[s.search(key)].node)
}

// Pick returns the node key goes to now: the primary, or while it is
// ejected the owner of the next live point clockwise.
func (s *KetamaSelector) Pick(key string) (int, error) {
	if len(s.points) == 0 {
		return -1, ErrNoLiveNodes
	}
	start := s.search(key)
	first := int(s.points[start].node)
	if s.h.alive(first) {
		return first, nil
	}
	for d := 1; d < len(s.points); d++ {
		node := int(s.points[(start+d)%len(s.points)].node)
		if node != first && s.h.alive(node) {
			return node, nil
		}
	}
	return -1, ErrNoLiveNodes
}

func (s *KetamaSelector) replicas(key string, n int, dst []int) []int {
	if len(s.points) == 0 {
		return dst
	}
	n = min(n, len(s.addrs))
	base := len(dst)
	start := s.search(key)
	for d := 0; d < len(s.points) && len(dst)-base < n; d++ {
		if node := int(s.points[(start+d)%len(s.points)].node); s.h.alive(node) {
			dst = appendDistinct(dst, node)
		}
	}
	return dst
}

// PickServer implements memcache.ServerSelector.
func (s *KetamaSelector) PickServer(key string) (net.Addr, error) { return pickServer(s, key) }

// Each implements memcache.ServerSelector over every configured node.
func (s *KetamaSelector) Each(f func(net.Addr) error) error { return eachNode(s.addrs, f) }

func (s *KetamaSelector) health() *health { return s.h }
