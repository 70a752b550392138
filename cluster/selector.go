package cluster

import (
	"errors"
	"net"

	"github.com/bradfitz/gomemcache/memcache"
)

// Selector is a memcache.ServerSelector whose nodes are numbered and whose
// routing honours ejection. JumpSelector and KetamaSelector implement it;
// the interface is sealed because Client relies on the shared ejection state.
type Selector interface {
	memcache.ServerSelector
	// Nodes returns the configured nodes in configuration order.
	Nodes() []net.Addr
	// Primary returns the index of key's owner ignoring ejection: the node
	// every agreeing client (libmemcached, twemproxy, ...) uses.
	Primary(key string) int
	// Pick returns the index of the node key is routed to now: the primary
	// or, while the primary is ejected, its deterministic fallback.
	Pick(key string) (int, error)

	health() *health
	// replicas appends to dst the first n distinct live nodes in key's
	// preference order, the order Pick's fallback follows, so with n = 1
	// it agrees with Pick.
	replicas(key string, n int, dst []int) []int
}

// ErrNoLiveNodes is returned when every node is ejected (or none is
// configured), so no node can take the key. It wraps memcache.ErrNoServers
// so code written for plain gomemcache still recognises it.
var ErrNoLiveNodes = errors.Join(errors.New("cluster: no live nodes"), memcache.ErrNoServers)

// pickServer is the shared PickServer body.
func pickServer(s Selector, key string) (net.Addr, error) {
	i, err := s.Pick(key)
	if err != nil {
		return nil, err
	}
	return s.Nodes()[i], nil
}

func eachNode(addrs []net.Addr, f func(net.Addr) error) error {
	for _, a := range addrs {
		if err := f(a); err != nil {
			return err
		}
	}
	return nil
}

func parseAddrs(servers []string) ([]net.Addr, error) {
	addrs := make([]net.Addr, len(servers))
	for i, s := range servers {
		a, err := newNodeAddr(s)
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	return addrs, nil
}

// appendDistinct appends node to dst unless it is there already; dst is a
// handful of replicas, so a scan beats a set.
func appendDistinct(dst []int, node int) []int {
	for _, d := range dst {
		if d == node {
			return dst
		}
	}
	return append(dst, node)
}
