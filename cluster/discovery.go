package cluster

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
)

// DefaultResolveInterval is how often Dial re-resolves its names.
const DefaultResolveInterval = 10 * time.Second

// defaultResolveTimeout bounds one round of lookups.
const defaultResolveTimeout = 5 * time.Second

// Distribution chooses how Dial places keys on the nodes it discovers.
type Distribution int

const (
	// Ketama is the libmemcached/twemproxy continuum (KetamaSelector): a
	// node joining or leaving moves only that node's share of keys,
	// wherever it sits. Nodes are named in the continuum by their stable
	// identity (see Dial).
	Ketama Distribution = iota
	// Jump is jump consistent hash (JumpSelector) over the nodes sorted by
	// stable identity: perfectly balanced, and a node added at the end of
	// that order (a StatefulSet scaled from N to N+1) moves 1/(N+1) of the
	// keys; a node leaving from the middle renumbers the ones after it.
	Jump
)

// Resolver is the part of *net.Resolver that discovery uses. Tests inject
// one that reaches a DNS server they started.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// Name prefixes understood by Dial and Resolve, as Thanos, Cortex, Mimir
// and Loki spell the first two.
const (
	prefixDNS    = "dns+"
	prefixDNSSRV = "dnssrv+"
	prefixECDisc = "ecdisc+"
)

// discoveryName is one parsed name given to Dial.
type discoveryName struct {
	raw    string
	prefix string // "" for a literal address
	target string // what follows the prefix
}

func parseName(raw string) (discoveryName, error) {
	n := discoveryName{raw: raw, target: raw}
	for _, p := range []string{prefixDNS, prefixDNSSRV, prefixECDisc} {
		if strings.HasPrefix(raw, p) {
			n.prefix, n.target = p, raw[len(p):]
			break
		}
	}
	switch n.prefix {
	case "":
		if _, err := newNodeAddr(raw); err != nil {
			return n, err
		}
	case prefixDNS, prefixECDisc:
		host, port, err := net.SplitHostPort(n.target)
		if err != nil || host == "" || port == "" {
			return n, fmt.Errorf("cluster: name %q: want %shost:port", raw, n.prefix)
		}
	case prefixDNSSRV:
		if n.target == "" || strings.Contains(n.target, ":") {
			return n, fmt.Errorf("cluster: name %q: want dnssrv+_service._proto.domain (the port comes from the SRV records)", raw)
		}
	}
	return n, nil
}

// node is one discovered memcached node.
type node struct {
	// addr is what is dialled: "host:port", "ip:port" or a socket path.
	addr string
	// id is the node's stable identity, which orders jump and names the
	// ketama points: the host name where there is one (SRV target,
	// ElastiCache host name, literal host), else the address.
	id string
}

// server returns the ketama Server for n: named by its identity, spelt as
// libmemcached would spell "id" given as the server address.
func (n node) server() Server {
	s := Server{Addr: n.addr}
	if n.id != n.addr {
		s.Name = Server{Addr: n.id}.continuumName()
	}
	return s
}

func literalNode(addr string) node { return node{addr: addr, id: addr} }

// lookup resolves one name into its nodes. An empty answer is an error:
// discovery never shrinks a ring to nothing on the word of one lookup.
func lookup(ctx context.Context, o *Options, n discoveryName) ([]node, error) {
	r := o.resolver()
	var out []node
	switch n.prefix {
	case "":
		return []node{literalNode(n.raw)}, nil
	case prefixDNS:
		host, port, _ := net.SplitHostPort(n.target)
		ips, err := r.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, ip := range ips {
			nd := literalNode(net.JoinHostPort(ip.IP.String(), port))
			if o.Identify != nil {
				if nd.id, err = o.Identify(ctx, nd.addr); err != nil {
					return nil, fmt.Errorf("identifying %s: %w", nd.addr, err)
				}
			}
			out = append(out, nd)
		}
	case prefixDNSSRV:
		_, srvs, err := r.LookupSRV(ctx, "", "", n.target)
		if err != nil {
			return nil, err
		}
		for _, s := range srvs {
			host := strings.TrimSuffix(s.Target, ".")
			addr := net.JoinHostPort(host, strconv.Itoa(int(s.Port)))
			out = append(out, node{addr: addr, id: addr})
		}
	case prefixECDisc:
		var err error
		if out, err = askClusterConfig(ctx, o, n.target); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster: %s: no nodes", n.raw)
	}
	return out, nil
}

// askClusterConfig sends ElastiCache's `config get cluster` to endpoint and
// parses the node list of the answer.
func askClusterConfig(ctx context.Context, o *Options, endpoint string) ([]node, error) {
	dial := o.DialContext
	if dial == nil {
		dial = (&net.Dialer{Resolver: asNetResolver(o.Resolver)}).DialContext
	}
	conn, err := dial(ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "config get cluster\r\n"); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	_, nodes, err := ParseClusterConfig(r)
	if errors.Is(err, errNoConfigCommand) {
		// ElastiCache engines before 1.4.14 keep the configuration under
		// a key instead.
		if _, err = io.WriteString(conn, "get AmazonElastiCache:cluster\r\n"); err != nil {
			return nil, err
		}
		_, nodes, err = ParseClusterConfig(r)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: config get cluster from %s: %w", endpoint, err)
	}
	return configNodes(nodes), nil
}

// errNoConfigCommand is a node's ERROR reply to `config get cluster`:
// memcached, or an ElastiCache engine older than 1.4.14.
var errNoConfigCommand = errors.New("the endpoint does not know `config get cluster` (ERROR)")

// ClusterConfigNode is one entry of an ElastiCache cluster configuration.
type ClusterConfigNode struct {
	// Host is the node's DNS name; IP may be empty (AWS leaves it out when
	// the node has none yet), Port is its memcached port.
	Host, IP string
	Port     int
}

// ParseClusterConfig reads the reply to `config get cluster` as AWS
// documents it for ElastiCache auto discovery:
//
//	CONFIG cluster 0 <length>\r\n
//	<version>\n
//	<host>|<ip>|<port> <host>|<ip>|<port> ...\n
//	\r\n
//	END\r\n
//
// <length> counts the two data lines with their \n. The version line ends
// in a bare \n and the node line in \n followed by the block's \r\n. The
// same block is what `get AmazonElastiCache:cluster` returns after a VALUE
// header, which is accepted too. The block is read line by line up to END
// rather than by <length>, because AWS's own examples do not always count
// it the same way (136 and 147 for the same two nodes).
func ParseClusterConfig(r *bufio.Reader) (version int64, nodes []ClusterConfigNode, err error) {
	header, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("reading header: %w", err)
	}
	header = strings.TrimRight(header, "\r\n")
	switch header {
	case "ERROR":
		return 0, nil, errNoConfigCommand
	case "END":
		return 0, nil, errors.New("no cluster configuration (END)")
	}
	f := strings.Fields(header)
	if len(f) != 4 || (f[0] != "CONFIG" && f[0] != "VALUE") {
		return 0, nil, fmt.Errorf("unexpected reply %q (not an ElastiCache configuration endpoint?)", header)
	}
	if n, err := strconv.Atoi(f[3]); err != nil || n < 0 {
		return 0, nil, fmt.Errorf("bad length in %q", header)
	}
	// Version, nodes and the block's empty line, then END.
	const maxLine = 1 << 20
	var lines []string
	for {
		line, err := readLine(r, maxLine)
		if err != nil {
			return 0, nil, fmt.Errorf("reading configuration: %w", err)
		}
		if line == "END" {
			break
		}
		if len(lines) == 3 {
			return 0, nil, errors.New("configuration not followed by END")
		}
		lines = append(lines, line)
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 || len(lines) > 2 {
		return 0, nil, fmt.Errorf("want a version line and a node line, got %q", lines)
	}
	lines = append(lines, "") // a cluster without nodes may leave the node line out
	if version, err = strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64); err != nil {
		return 0, nil, fmt.Errorf("bad configuration version %q", lines[0])
	}
	for _, e := range strings.Fields(lines[1]) {
		p := strings.Split(e, "|")
		if len(p) != 3 || p[0] == "" && p[1] == "" {
			return 0, nil, fmt.Errorf("bad node %q (want host|ip|port)", e)
		}
		port, err := strconv.Atoi(p[2])
		if err != nil || port <= 0 || port > 65535 {
			return 0, nil, fmt.Errorf("bad port in node %q", e)
		}
		nodes = append(nodes, ClusterConfigNode{Host: p[0], IP: p[1], Port: port})
	}
	return version, nodes, nil
}

// configNodes turns ElastiCache entries into nodes: dialled by IP when
// there is one (no DNS on the request path), named by host.
// asNetResolver returns r when it is a *net.Resolver (so an injected one
// also resolves the endpoint's name), else nil: the default resolver.
func asNetResolver(r Resolver) *net.Resolver {
	nr, _ := r.(*net.Resolver)
	return nr
}

func configNodes(entries []ClusterConfigNode) []node {
	out := make([]node, 0, len(entries))
	for _, e := range entries {
		port := strconv.Itoa(e.Port)
		id := net.JoinHostPort(cmp.Or(e.Host, e.IP), port)
		addr := id
		if e.IP != "" {
			addr = net.JoinHostPort(e.IP, port)
		}
		out = append(out, node{addr: addr, id: id})
	}
	return out
}

// naturalCompare orders strings with their digit runs compared as numbers,
// so "cache-2" sorts before "cache-10" and "10.0.0.9" before "10.0.0.10":
// a StatefulSet's pods keep their jump slots as it grows past ten.
// Strings that differ only in leading zeros fall back to byte order, so
// the order stays total.
func naturalLess(a, b string) bool { return naturalCompare(a, b) < 0 }

func naturalCompare(a, b string) int {
	if c := naturalCompareRuns(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func naturalCompareRuns(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// sortNodes orders nodes by identity (naturally), then address, and drops
// duplicate addresses.
func sortNodes(nodes []node) []node {
	slices.SortFunc(nodes, func(x, y node) int {
		if c := naturalCompare(x.id, y.id); c != 0 {
			return c
		}
		return strings.Compare(x.addr, y.addr)
	})
	return slices.CompactFunc(nodes, func(x, y node) bool { return x.addr == y.addr })
}

// Resolve looks names up once, as Dial does, and returns the nodes'
// addresses in Dial's order. A name that fails makes Resolve fail.
func Resolve(ctx context.Context, names []string, opts Options) ([]string, error) {
	parsed, err := parseNames(names)
	if err != nil {
		return nil, err
	}
	var all []node
	for _, n := range parsed {
		nodes, err := lookupWithTimeout(ctx, &opts, n)
		if err != nil {
			return nil, fmt.Errorf("cluster: resolving %s: %w", n.raw, err)
		}
		all = append(all, nodes...)
	}
	all = sortNodes(all)
	out := make([]string, len(all))
	for i, n := range all {
		out[i] = n.addr
	}
	return out, nil
}

func lookupWithTimeout(ctx context.Context, o *Options, n discoveryName) ([]node, error) {
	ctx, cancel := context.WithTimeout(ctx, o.resolveTimeout())
	defer cancel()
	return lookup(ctx, o, n)
}

func parseNames(names []string) ([]discoveryName, error) {
	if len(names) == 0 {
		return nil, errors.New("cluster: no node names")
	}
	out := make([]discoveryName, 0, len(names))
	for _, raw := range names {
		n, err := parseName(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func (o Options) resolver() Resolver {
	if o.Resolver != nil {
		return o.Resolver
	}
	return net.DefaultResolver
}

func (o Options) resolveTimeout() time.Duration {
	if o.ResolveTimeout > 0 {
		return o.ResolveTimeout
	}
	return defaultResolveTimeout
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// DiscoveryStats counts a Dial client's lookups.
type DiscoveryStats struct {
	// Lookups is how many name lookups were made.
	Lookups uint64
	// LookupErrors is how many failed; each kept that name's last good
	// node list.
	LookupErrors uint64
	// Changes is how many times the membership changed (ring swaps).
	Changes uint64
	// Nodes is the current node count.
	Nodes int
}

// discovery is the state behind a Dial client.
type discovery struct {
	names []discoveryName
	log   *slog.Logger

	mu       sync.Mutex // one refresh at a time
	lastGood [][]node   // per name
	current  []node
	clients  map[string]*memcache.Client // by address, shared by rings
	retired  []*memcache.Client          // removed nodes' clients, closed again on the next refresh

	lookups, lookupErrors, changes atomic.Uint64
}

// Dial returns a Client over the nodes that names resolve to. Each name is
// "host:port" (or a unix socket path), "dns+host:port" (every A/AAAA
// record of host, on port), "dnssrv+_service._proto.domain" (every SRV
// record: its target name and port) or "ecdisc+host:port" (ElastiCache
// auto discovery: the node list that endpoint gives for `config get
// cluster`). Names are re-resolved every Options.ResolveInterval (default
// 10 s); when the union of their nodes changes, the client swaps to a new
// selector atomically, keeping the connections and ejection state of the
// nodes that stay. A lookup that fails, or answers with no nodes, keeps
// that name's last good list; it is logged and counted (Stats), and never
// empties the ring.
//
// Nodes are identified by host name where they have one (the SRV target,
// the ElastiCache host name, a literal host) and by address otherwise (the
// A records of "dns+"). With Ketama the identity names the continuum
// points, as libmemcached would name a server given as "identity:port", so
// a StatefulSet pod keeps its keys when its IP changes; with Jump the nodes
// are sorted by identity, digit runs numerically, so pods -0, -1, -2 keep
// their slots and a new -3 takes 1/4 of the keys.
//
// Dial fails only on malformed names. If no name resolves at first, the
// client starts with no nodes (operations return ErrNoLiveNodes) and keeps
// trying on the interval; the failures are logged.
func Dial(names []string, opts Options) (*Client, error) {
	parsed, err := parseNames(names)
	if err != nil {
		return nil, err
	}
	if opts.Distribution != Ketama && opts.Distribution != Jump {
		return nil, fmt.Errorf("cluster: unknown distribution %d", int(opts.Distribution))
	}
	if _, ok := hashNames[opts.KeyHash]; !ok {
		return nil, fmt.Errorf("cluster: unknown key hash %d", int(opts.KeyHash))
	}
	c := newClient(opts)
	c.disc = &discovery{
		names:    parsed,
		log:      opts.logger(),
		lastGood: make([][]node, len(parsed)),
		clients:  map[string]*memcache.Client{},
	}
	empty, _ := c.buildRing(nil, nil)
	c.ring.Store(empty)
	_ = c.Refresh(context.Background())
	if every := cmp.Or(opts.ResolveInterval, DefaultResolveInterval); every > 0 {
		c.wg.Add(1)
		go c.tick(every, func() { _ = c.Refresh(context.Background()) })
	}
	c.startProbe()
	return c, nil
}

// Refresh looks every name up now, as the background re-resolution does,
// and swaps the ring if the membership changed. It returns the lookups'
// errors (joined); names that failed kept their last good nodes. On a
// Client made by New it does nothing.
func (c *Client) Refresh(ctx context.Context) error {
	d := c.disc
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, mc := range d.retired {
		_ = mc.Close()
	}
	d.retired = nil

	var errs []error
	var all []node
	for i, n := range d.names {
		d.lookups.Add(1)
		nodes, err := lookupWithTimeout(ctx, &c.opt, n)
		if err != nil {
			d.lookupErrors.Add(1)
			err = fmt.Errorf("cluster: resolving %s: %w", n.raw, err)
			d.log.Warn("cluster: lookup failed, keeping the last good node list",
				"name", n.raw, "kept", len(d.lastGood[i]), "err", err)
			errs = append(errs, err)
		} else {
			d.lastGood[i] = nodes
		}
		all = append(all, d.lastGood[i]...)
	}
	all = sortNodes(all)
	if slices.Equal(all, d.current) {
		return errors.Join(errs...)
	}
	next, removed := c.buildRing(c.ring.Load(), all)
	old := c.ring.Swap(next)
	d.changes.Add(1)
	d.log.Info("cluster: membership changed", "from", len(old.nodes), "to", len(next.nodes),
		"nodes", nodeAddrs(all))
	d.current = all
	for _, addr := range removed {
		mc := d.clients[addr]
		delete(d.clients, addr)
		_ = mc.Close()
		d.retired = append(d.retired, mc)
	}
	return errors.Join(errs...)
}

// Stats returns the discovery counters of a Client made by Dial (zero for
// one made by New, apart from Nodes).
func (c *Client) Stats() DiscoveryStats {
	s := DiscoveryStats{Nodes: len(c.ring.Load().nodes)}
	if d := c.disc; d != nil {
		s.Lookups, s.LookupErrors, s.Changes = d.lookups.Load(), d.lookupErrors.Load(), d.changes.Load()
	}
	return s
}

func nodeAddrs(nodes []node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.addr
	}
	return out
}

// buildRing makes the ring for nodes, reusing the gomemcache clients and
// carrying over the ejection state of nodes that old also has. It returns
// the addresses old had that nodes lacks. Called with d.mu held.
func (c *Client) buildRing(old *ring, nodes []node) (*ring, []string) {
	d := c.disc
	var sel Selector
	if c.opt.Distribution == Jump {
		addrs := make([]string, len(nodes))
		for i, n := range nodes {
			addrs[i] = n.addr
		}
		js, _ := NewJumpSelector(addrs...) // addresses were validated by lookup
		sel = js
	} else {
		servers := make([]Server, len(nodes))
		for i, n := range nodes {
			servers[i] = n.server()
		}
		ks, _ := NewKetamaSelector(c.opt.KeyHash, servers...)
		sel = ks
	}
	r := &ring{sel: sel, h: sel.health()}
	c.configureHealth(r.h)
	keep := map[string]bool{}
	for i, a := range sel.Nodes() {
		mc := d.clients[a.String()]
		if mc == nil {
			mc = c.newNodeClient(a)
			d.clients[a.String()] = mc
		}
		r.nodes = append(r.nodes, mc)
		keep[a.String()] = true
		if old != nil {
			if j := slices.IndexFunc(old.sel.Nodes(), func(o net.Addr) bool { return o.String() == a.String() }); j >= 0 {
				r.h.copyNode(i, old.h, j)
			}
		}
	}
	var removed []string
	if old != nil {
		for _, a := range old.sel.Nodes() {
			if !keep[a.String()] {
				removed = append(removed, a.String())
			}
		}
	}
	return r, removed
}

func (d *discovery) closeRetired() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, mc := range d.retired {
		_ = mc.Close()
	}
	d.retired = nil
}

// readLine reads one line without its \r\n, refusing lines over max bytes
// so a garbage reply cannot make the reader buffer without bound.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > max {
			return "", fmt.Errorf("line longer than %d bytes", max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}
