package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
)

// swarmSlots gives the tasks of a Docker swarm service stable names, one a
// replica slot, so that a task replaced by a rolling update (a new
// container, a new IP, the same slot and so the same memory file) keeps
// its place on the hash ring and its restored keys.
//
// "dns+tasks.cache:11211" alone names each node by IP, and swarm gives a
// replaced task a new one: its keys would move. So, as an SRV resolver
// for dnssrv+tasks.cache, it looks up the service's task IPs (A records
// of tasks.<service>) and names each by its slot from Docker's reverse
// DNS ("<service>.<slot>.<task id>.<network>."), answering target
// "<service>.<slot>" with the port of the dns+ name; DialContext then
// dials a slot name at the IP its last lookup found.
type swarmSlots struct {
	resolver *net.Resolver
	ports    map[string]uint16 // per tasks.<service> name
	dialer   net.Dialer

	mu    sync.Mutex
	addrs map[string]string // slot name -> IP
}

// newSwarmSlots rewrites each "dns+host:port" of names into
// "dnssrv+host", answered by the returned resolver.
func newSwarmSlots(names []string) (*swarmSlots, []string, error) {
	s := &swarmSlots{resolver: net.DefaultResolver, ports: map[string]uint16{}, addrs: map[string]string{}}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		rest, ok := strings.CutPrefix(n, "dns+")
		if !ok {
			continue
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n, err)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: port %q", n, port)
		}
		s.ports[host] = uint16(p)
		out[i] = "dnssrv+" + host
	}
	return s, out, nil
}

// LookupIPAddr is the system resolver's.
func (s *swarmSlots) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return s.resolver.LookupIPAddr(ctx, host)
}

// LookupSRV answers for a tasks.<service> name: one record a task, its
// target the task's slot name. A task whose reverse lookup fails is named
// by its IP.
func (s *swarmSlots) LookupSRV(ctx context.Context, _, _, name string) (string, []*net.SRV, error) {
	port, ok := s.ports[name]
	if !ok {
		return s.resolver.LookupSRV(ctx, "", "", name)
	}
	ips, err := s.resolver.LookupIPAddr(ctx, name)
	if err != nil {
		return "", nil, err
	}
	found := map[string]string{}
	var srvs []*net.SRV
	for _, ip := range ips {
		target := ip.IP.String()
		if ptr, err := s.resolver.LookupAddr(ctx, target); err == nil && len(ptr) > 0 {
			// "<service>.<slot>.<task id>.<network>."
			if f := strings.Split(ptr[0], "."); len(f) >= 3 {
				if _, err := strconv.Atoi(f[1]); err == nil {
					target = f[0] + "." + f[1]
				}
			}
		}
		if _, dup := found[target]; dup {
			continue // an old and a new task of one slot, briefly
		}
		found[target] = ip.IP.String()
		srvs = append(srvs, &net.SRV{Target: target, Port: port})
	}
	s.mu.Lock()
	for k, v := range found {
		s.addrs[k] = v
	}
	s.mu.Unlock()
	return name, srvs, nil
}

// DialContext dials a slot name at its task's IP, anything else as is.
func (s *swarmSlots) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(address); err == nil {
		s.mu.Lock()
		ip, ok := s.addrs[host]
		s.mu.Unlock()
		if ok {
			address = net.JoinHostPort(ip, port)
		}
	}
	return s.dialer.DialContext(ctx, network, address)
}
