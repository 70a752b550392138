package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// fakeResolver is an injected Resolver whose answers a test changes.
type fakeResolver struct {
	mu  sync.Mutex
	a   map[string][]string
	srv map[string][]*net.SRV
	err error // when set, every lookup fails with it
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{a: map[string][]string{}, srv: map[string][]*net.SRV{}}
}

func (f *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []net.IPAddr
	for _, s := range f.a[host] {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

func (f *fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", nil, f.err
	}
	return name, f.srv[name], nil
}

func (f *fakeResolver) setA(host string, ips ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.a[host] = ips
}

// setPods publishes a StatefulSet's first n pods as SRV records of name,
// listed in a shuffled order as DNS servers do.
func (f *fakeResolver) setPods(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var recs []*net.SRV
	for i := n - 1; i >= 0; i-- {
		recs = append(recs, &net.SRV{Target: fmt.Sprintf("cache-%d.cache.ns.svc.cluster.local.", i), Port: 11211})
	}
	f.srv[name] = recs
}

func (f *fakeResolver) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// quiet is a Logger that keeps what it is told for the test to read.
func quiet() (*slog.Logger, *syncBuffer) {
	var b syncBuffer
	return slog.New(slog.NewTextHandler(&b, nil)), &b
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		name, prefix, target string
		bad                  bool
	}{
		{name: "10.0.0.1:11211", target: "10.0.0.1:11211"},
		{name: "[::1]:11211", target: "[::1]:11211"},
		{name: "/run/memcached.sock", target: "/run/memcached.sock"},
		{name: "dns+memcached.ns.svc:11211", prefix: "dns+", target: "memcached.ns.svc:11211"},
		{name: "dnssrv+_memcached._tcp.memcached.ns.svc", prefix: "dnssrv+", target: "_memcached._tcp.memcached.ns.svc"},
		{name: "ecdisc+my.cfg.use1.cache.amazonaws.com:11211", prefix: "ecdisc+", target: "my.cfg.use1.cache.amazonaws.com:11211"},
		{name: "", bad: true},
		{name: "10.0.0.1", bad: true},
		{name: "dns+memcached.ns.svc", bad: true},
		{name: "dns+:11211", bad: true},
		{name: "dnssrv+", bad: true},
		{name: "dnssrv+_memcached._tcp.memcached.ns.svc:11211", bad: true},
		{name: "ecdisc+cfg.example", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := parseName(tc.name)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted %q", tc.name)
				}
				return
			}
			if err != nil || n.prefix != tc.prefix || n.target != tc.target {
				t.Fatalf("parseName(%q) = %+v, %v; want prefix %q target %q", tc.name, n, err, tc.prefix, tc.target)
			}
		})
	}
	if _, err := Dial(nil, Options{}); err == nil {
		t.Error("Dial with no names succeeded")
	}
	if _, err := Dial([]string{"dns+nohostport"}, Options{}); err == nil {
		t.Error("Dial with a malformed name succeeded")
	}
}

// awsConfigReply is the reply AWS documents for `config get cluster` on a
// two-node cluster ("Adding Auto Discovery to your client library", Output
// Format): the length (136) counts the version line and the node line with
// their \n; the version line ends in a bare \n, the node line in \n then
// the block's \r\n.
const awsConfigReply = "CONFIG cluster 0 136\r\n" +
	"12\n" +
	"myCluster.pc4ldq.0001.use1.cache.amazonaws.com|10.82.235.120|11211 " +
	"myCluster.pc4ldq.0002.use1.cache.amazonaws.com|10.80.249.27|11211\n" +
	"\r\n" +
	"END\r\n"

func TestParseClusterConfig(t *testing.T) {
	awsNodes := []ClusterConfigNode{
		{"myCluster.pc4ldq.0001.use1.cache.amazonaws.com", "10.82.235.120", 11211},
		{"myCluster.pc4ldq.0002.use1.cache.amazonaws.com", "10.80.249.27", 11211},
	}
	for _, tc := range []struct {
		name    string
		reply   string
		version int64
		nodes   []ClusterConfigNode
		bad     bool
	}{
		{name: "aws", reply: awsConfigReply, version: 12, nodes: awsNodes},
		{name: "get form", reply: strings.Replace(awsConfigReply, "CONFIG cluster", "VALUE AmazonElastiCache:cluster", 1),
			version: 12, nodes: awsNodes},
		// Some writers count the \r\n too, or leave the node line's \n out
		// of the length; the END line still delimits the block.
		{name: "length short of the node line's newline", reply: strings.Replace(awsConfigReply, " 136\r\n", " 135\r\n", 1),
			version: 12, nodes: awsNodes},
		{name: "no ip yet", reply: "CONFIG cluster 0 22\r\n1\nnode-a.example||11211\n\r\nEND\r\n",
			version: 1, nodes: []ClusterConfigNode{{"node-a.example", "", 11211}}},
		{name: "plain memcached", reply: "ERROR\r\n", bad: true},
		{name: "bad version", reply: "CONFIG cluster 0 11\r\nx\na||11211\n\r\nEND\r\n", bad: true},
		{name: "bad port", reply: "CONFIG cluster 0 11\r\n1\na||1121x\n\r\nEND\r\n", bad: true},
		{name: "bad entry", reply: "CONFIG cluster 0 9\r\n1\na|11211\n\r\nEND\r\n", bad: true},
		{name: "huge length", reply: "CONFIG cluster 0 99999999\r\n", bad: true},
		{name: "truncated", reply: awsConfigReply[:60], bad: true},
		{name: "no END", reply: strings.TrimSuffix(awsConfigReply, "END\r\n") + "x\r\ny\r\nz\r\n", bad: true},
	} {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/split=%v", tc.name, split), func(t *testing.T) {
				var r io.Reader = strings.NewReader(tc.reply)
				if split {
					r = iotest.OneByteReader(r)
				}
				v, nodes, err := ParseClusterConfig(bufio.NewReaderSize(r, 16))
				if tc.bad {
					if err == nil {
						t.Fatalf("accepted %q: %d %v", tc.reply, v, nodes)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if v != tc.version || fmt.Sprint(nodes) != fmt.Sprint(tc.nodes) {
					t.Fatalf("got %d %v, want %d %v", v, nodes, tc.version, tc.nodes)
				}
			})
		}
	}
}

func FuzzParseClusterConfig(f *testing.F) {
	f.Add(awsConfigReply)
	f.Add("CONFIG cluster 0 5\r\n1\na||1\n\r\nEND\r\n")
	f.Add("ERROR\r\n")
	f.Fuzz(func(t *testing.T, reply string) {
		_, nodes, err := ParseClusterConfig(bufio.NewReader(strings.NewReader(reply)))
		if err == nil {
			for _, n := range nodes {
				if n.Port <= 0 || n.Port > 65535 || n.Host == "" && n.IP == "" {
					t.Fatalf("accepted a bad node %+v from %q", n, reply)
				}
			}
		}
	})
}

func TestNaturalOrder(t *testing.T) {
	in := []string{"cache-10", "cache-2", "10.0.0.10:11211", "cache-1", "10.0.0.9:11211", "cache-02x", "cache-2x", "b", "a"}
	nodes := make([]node, len(in))
	for i, s := range in {
		nodes[i] = literalNode(s)
	}
	var got []string
	for _, n := range sortNodes(nodes) {
		got = append(got, n.id)
	}
	want := "[10.0.0.9:11211 10.0.0.10:11211 a b cache-1 cache-2 cache-02x cache-2x cache-10]"
	if fmt.Sprint(got) != want {
		t.Fatalf("natural order %v, want %v", got, want)
	}
}

// owners maps each of n test keys to the address it is stored on now.
func owners(c *Client, n int) []string {
	sel := c.Selector()
	out := make([]string, n)
	for i := range out {
		out[i] = sel.Nodes()[sel.Primary(testKey(i))].String()
	}
	return out
}

// moved returns the fraction of keys whose owner changed and whether all of
// them went to a node in to.
func moved(before, after []string, to ...string) (frac float64, onlyTo bool) {
	onlyTo = true
	n := 0
	for i := range before {
		if before[i] != after[i] {
			n++
			found := false
			for _, t := range to {
				found = found || after[i] == t
			}
			onlyTo = onlyTo && found
		}
	}
	return float64(n) / float64(len(before)), onlyTo
}

// TestDiscoveryMovesFewKeys checks the key movement of membership changes
// seen through discovery: scaling 3 -> 4 moves about a quarter of the keys,
// all to the new node, with ketama and with jump over a StatefulSet's SRV
// records; a ketama node leaving moves only its own keys; a failed lookup
// moves nothing.
func TestDiscoveryMovesFewKeys(t *testing.T) {
	keys := 100_000
	const srvName = "_memcache._tcp.cache.ns.svc.cluster.local"
	for _, tc := range []struct {
		name string
		dist Distribution
		srv  bool // StatefulSet SRV records, else A records
	}{
		{"ketama/dnssrv", Ketama, true},
		{"jump/dnssrv", Jump, true},
		{"ketama/dns", Ketama, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newFakeResolver()
			log, logs := quiet()
			name := "dnssrv+" + srvName
			newNode := "cache-3.cache.ns.svc.cluster.local:11211"
			if tc.srv {
				res.setPods(srvName, 3)
			} else {
				name = "dns+cache.ns.svc:11211"
				res.setA("cache.ns.svc", "10.1.0.7", "10.1.0.12", "10.1.0.3")
				newNode = "10.1.0.5:11211"
			}
			c, err := Dial([]string{name}, Options{Distribution: tc.dist, Resolver: res, ResolveInterval: -1, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if n := len(c.Selector().Nodes()); n != 3 {
				t.Fatalf("%d nodes after Dial, want 3", n)
			}
			before := owners(c, keys)

			if tc.srv {
				res.setPods(srvName, 4)
			} else {
				res.setA("cache.ns.svc", "10.1.0.7", "10.1.0.12", "10.1.0.3", "10.1.0.5")
			}
			if err := c.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			after := owners(c, keys)
			frac, onlyNew := moved(before, after, newNode)
			t.Logf("%s 3->4: %.2f%% of %d keys moved, all to the new node: %v", tc.name, 100*frac, keys, onlyNew)
			if !onlyNew || frac < 0.20 || frac > 0.30 {
				t.Errorf("3->4 moved %.2f%% (all to the new node: %v); want ~25%%, all to %s", 100*frac, onlyNew, newNode)
			}
			if s := c.Stats(); s.Changes != 2 || s.Nodes != 4 || s.LookupErrors != 0 {
				t.Errorf("stats %+v, want 2 changes (Dial, scale-up), 4 nodes, no errors", s)
			}

			// A failing lookup keeps the last good list: nothing moves.
			res.fail(errors.New("SERVFAIL"))
			if err := c.Refresh(context.Background()); err == nil {
				t.Error("Refresh hid a failed lookup")
			}
			if frac, _ := moved(after, owners(c, keys)); frac != 0 {
				t.Errorf("a failed lookup moved %.2f%% of the keys", 100*frac)
			}
			if s := c.Stats(); s.LookupErrors != 1 || s.Nodes != 4 {
				t.Errorf("stats after a failed lookup %+v, want 1 error and 4 nodes kept", s)
			}
			if !strings.Contains(logs.String(), "SERVFAIL") {
				t.Errorf("failed lookup not logged: %q", logs.String())
			}
			res.fail(nil)

			// An empty answer is treated as a failure too.
			if tc.srv {
				res.setPods(srvName, 0)
			} else {
				res.setA("cache.ns.svc")
			}
			_ = c.Refresh(context.Background())
			if s := c.Stats(); s.Nodes != 4 || s.LookupErrors != 2 {
				t.Errorf("an empty answer emptied the ring: %+v", s)
			}

			if tc.dist != Ketama {
				return
			}
			// With ketama a node leaving from anywhere moves only its keys.
			var gone string
			if tc.srv {
				res.setPods(srvName, 4)
				res.mu.Lock()
				recs := res.srv[srvName]
				gone = strings.TrimSuffix(recs[2].Target, ".") + ":11211"
				res.srv[srvName] = append(recs[:2:2], recs[3:]...)
				res.mu.Unlock()
			} else {
				res.setA("cache.ns.svc", "10.1.0.7", "10.1.0.3", "10.1.0.5")
				gone = "10.1.0.12:11211"
			}
			_ = c.Refresh(context.Background())
			last := owners(c, keys)
			for i := range after {
				if after[i] != last[i] && after[i] != gone {
					t.Fatalf("key %d moved from %s to %s although only %s left", i, after[i], last[i], gone)
				}
			}
		})
	}
}

// TestJumpIdentityOrder checks that jump over discovered names sorts by
// identity, so the order DNS lists records in does not matter and pods 0..9
// keep their slots when pod 10 arrives.
func TestJumpIdentityOrder(t *testing.T) {
	res := newFakeResolver()
	const srvName = "_memcache._tcp.cache"
	res.setPods(srvName, 10)
	log, _ := quiet()
	c, err := Dial([]string{"dnssrv+" + srvName}, Options{Distribution: Jump, Resolver: res, ResolveInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, a := range c.Selector().Nodes() {
		if want := fmt.Sprintf("cache-%d.cache.ns.svc.cluster.local:11211", i); a.String() != want {
			t.Fatalf("slot %d is %s, want %s", i, a, want)
		}
	}
	before := owners(c, 100_000)
	res.setPods(srvName, 11)
	_ = c.Refresh(context.Background())
	frac, onlyNew := moved(before, owners(c, 100_000), "cache-10.cache.ns.svc.cluster.local:11211")
	if !onlyNew || frac > 0.12 {
		t.Errorf("10->11 moved %.2f%%, all to cache-10: %v; want ~9%%", 100*frac, onlyNew)
	}
}

// startGocachedOn starts gocached on host (a loopback address) and port,
// retrying with other ports when taken; it returns the port used.
func startGocachedOn(t *testing.T, hosts []string) (addrs []string) {
	t.Helper()
	first := testutil.StartGocached(t, nil)
	addrs = append(addrs, first)
	_, port, _ := net.SplitHostPort(first)
	for _, h := range hosts {
		p, _ := strconv.Atoi(port)
		addrs = append(addrs, testutil.StartGocached(t, func(cfg *server.Config) {
			cfg.Listen = []string{h}
			cfg.Port = p
		}))
	}
	return addrs
}

// TestDialDNS resolves through a DNS server started by the test: A records
// (nodes on 127.0.0.1-3, one port) and SRV records (targets dialled by
// name through the same server), and stores through the result.
func TestDialDNS(t *testing.T) {
	d := testutil.StartDNS(t)
	nodes := startGocachedOn(t, []string{"127.0.0.2", "127.0.0.3"})
	_, port, _ := net.SplitHostPort(nodes[0])
	d.SetA("cache.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	var srvs []net.SRV
	for i, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		d.SetA(fmt.Sprintf("cache-%d.cache.test", i), ip)
		p, _ := strconv.Atoi(port)
		srvs = append(srvs, net.SRV{Target: fmt.Sprintf("cache-%d.cache.test", i), Port: uint16(p)})
	}
	d.SetSRV("_memcache._tcp.cache.test", srvs...)
	dialer := &net.Dialer{Resolver: d.Resolver(), Timeout: time.Second}

	for _, tc := range []struct {
		name, want string
	}{
		{"dns+cache.test:" + port, "[127.0.0.1:P 127.0.0.2:P 127.0.0.3:P]"},
		{"dnssrv+_memcache._tcp.cache.test", "[cache-0.cache.test:P cache-1.cache.test:P cache-2.cache.test:P]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := quiet()
			opts := Options{Resolver: d.Resolver(), DialContext: dialer.DialContext, ResolveInterval: -1, Logger: log}
			got, err := Resolve(context.Background(), []string{tc.name}, opts)
			if want := strings.ReplaceAll(tc.want, "P", port); err != nil || fmt.Sprint(got) != want {
				t.Fatalf("Resolve = %v, %v; want %s", got, err, want)
			}
			c, err := Dial([]string{tc.name}, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Ping(); err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i := range 300 {
				k := testKey(i)
				if err := c.Set(&memcache.Item{Key: k, Value: []byte(tc.name)}); err != nil {
					t.Fatal(err)
				}
				a, _ := c.Node(k)
				seen[a.String()] = true
			}
			if len(seen) != 3 {
				t.Errorf("keys went to %d nodes, want 3", len(seen))
			}
			it, err := c.Get(testKey(7))
			if err != nil || string(it.Value) != tc.name {
				t.Fatalf("Get = %v, %v", it, err)
			}

			// The server stops answering: the ring stays as it was.
			host := "cache.test"
			if strings.HasPrefix(tc.name, "dnssrv+") {
				host = "_memcache._tcp.cache.test"
			}
			d.SetFail(host, true)
			defer d.SetFail(host, false)
			if err := c.Refresh(context.Background()); err == nil {
				t.Error("SERVFAIL not reported")
			}
			if s := c.Stats(); s.Nodes != 3 || s.LookupErrors != 1 {
				t.Errorf("after SERVFAIL: %+v", s)
			}
			if _, err := c.Get(testKey(7)); err != nil {
				t.Errorf("Get after a failed lookup: %v", err)
			}
		})
	}
	if _, err := Resolve(context.Background(), []string{"dns+nonexistent.test:11211"},
		Options{Resolver: d.Resolver()}); err == nil {
		t.Error("Resolve of an unknown name succeeded")
	}
}

// configEndpoint is a fake ElastiCache configuration endpoint: it answers
// `config get cluster` with the node list it holds, in AWS's format.
type configEndpoint struct {
	addr    string
	mu      sync.Mutex
	version int
	nodes   []string // host|ip|port
	asked   int
}

func startConfigEndpoint(t *testing.T) *configEndpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	e := &configEndpoint{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go e.serve(conn)
		}
	}()
	return e
}

func (e *configEndpoint) set(nodes ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version++
	e.nodes = nodes
}

func (e *configEndpoint) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) != "config get cluster" {
			_, _ = io.WriteString(conn, "ERROR\r\n")
			continue
		}
		e.mu.Lock()
		e.asked++
		data := fmt.Sprintf("%d\n%s\n", e.version, strings.Join(e.nodes, " "))
		e.mu.Unlock()
		_, _ = fmt.Fprintf(conn, "CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data), data)
	}
}

// TestDialElastiCacheDiscovery follows a fake configuration endpoint's
// node list, dialling nodes by IP and naming them by host.
func TestDialElastiCacheDiscovery(t *testing.T) {
	e := startConfigEndpoint(t)
	a, b := testutil.StartGocached(t, nil), testutil.StartGocached(t, nil)
	entry := func(host, addr string) string {
		ip, port, _ := net.SplitHostPort(addr)
		return host + "|" + ip + "|" + port
	}
	e.set(entry("node-0001.example", a))
	log, _ := quiet()
	c, err := Dial([]string{"ecdisc+" + e.addr}, Options{ResolveInterval: 20 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := fmt.Sprint(c.Selector().Nodes()); got != "["+a+"]" {
		t.Fatalf("nodes %s, want [%s]", got, a)
	}
	if srv := c.Selector().(*KetamaSelector).Servers(); srv[0].Name == "" || !strings.HasPrefix(srv[0].Name, "node-0001.example") {
		t.Errorf("ketama name %q, want the host name", srv[0].Name)
	}
	if err := c.Set(&memcache.Item{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}

	e.set(entry("node-0001.example", a), entry("node-0002.example", b))
	deadline := time.Now().Add(10 * time.Second)
	for len(c.Selector().Nodes()) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("background re-resolution did not pick up the second node: %+v", c.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Ping(); err != nil {
		t.Fatal(err)
	}

	// A plain memcached (or gocached without a cluster configuration)
	// answers ERROR: Dial still works, keeps retrying, and says why.
	plain := testutil.StartGocached(t, nil)
	log, logs := quiet()
	c2, err := Dial([]string{"ecdisc+" + plain}, Options{ResolveInterval: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Get("k"); !errors.Is(err, ErrNoLiveNodes) {
		t.Errorf("Get with no nodes = %v, want ErrNoLiveNodes", err)
	}
	if !strings.Contains(logs.String(), "ERROR") {
		t.Errorf("log does not say what the endpoint answered: %s", logs.String())
	}
}
