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
		{name: "length 147 as in another AWS example", reply: strings.Replace(awsConfigReply, " 136\r\n", " 147\r\n", 1),
			version: 12, nodes: awsNodes},
		{name: "no nodes", reply: "CONFIG cluster 0 3\r\n7\n\n\r\nEND\r\n", version: 7},
		{name: "no ip yet", reply: "CONFIG cluster 0 22\r\n1\nnode-a.example||11211\n\r\nEND\r\n",
			version: 1, nodes: []ClusterConfigNode{{"node-a.example", "", 11211}}},
		{name: "plain memcached", reply: "ERROR\r\n", bad: true},
		{name: "key missing", reply: "END\r\n", bad: true},
		{name: "bad version", reply: "CONFIG cluster 0 11\r\nx\na||11211\n\r\nEND\r\n", bad: true},
		{name: "bad port", reply: "CONFIG cluster 0 11\r\n1\na||1121x\n\r\nEND\r\n", bad: true},
		{name: "bad entry", reply: "CONFIG cluster 0 9\r\n1\na|11211\n\r\nEND\r\n", bad: true},
		{name: "bad length", reply: "CONFIG cluster 0 x\r\n1\na||1\n\r\nEND\r\n", bad: true},
		{name: "no data", reply: "CONFIG cluster 0 99999999\r\n", bad: true},
		{name: "three data lines", reply: "CONFIG cluster 0 9\r\n1\na||1\nb||2\n\r\nEND\r\n", bad: true},
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

// TestIdentify checks Options.Identify: a node that comes back under a new
// address but the same identity keeps its keys, with ketama and with jump,
// and a node that cannot be identified keeps the last good list.
func TestIdentify(t *testing.T) {
	for _, dist := range []Distribution{Ketama, Jump} {
		res := newFakeResolver()
		res.setA("tasks.cache", "10.0.9.3", "10.0.9.4", "10.0.9.5")
		// What a swarm's reverse DNS might say: the task slot survives a
		// task's replacement, its address does not.
		var mu sync.Mutex
		slots := map[string]string{"10.0.9.3": "cache.1", "10.0.9.4": "cache.2", "10.0.9.5": "cache.3"}
		identify := func(_ context.Context, addr string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			ip, _, _ := net.SplitHostPort(addr)
			if s, ok := slots[ip]; ok {
				return s, nil
			}
			return "", errors.New("no PTR record")
		}
		log, _ := quiet()
		c, err := Dial([]string{"dns+tasks.cache:11211"}, Options{Distribution: dist, Resolver: res, ResolveInterval: -1,
			Identify: identify, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		before := owners(c, 50_000)
		// Slot 2 is replaced: 10.0.9.4 goes, 10.0.9.6 comes.
		mu.Lock()
		slots["10.0.9.6"] = "cache.2"
		mu.Unlock()
		res.setA("tasks.cache", "10.0.9.3", "10.0.9.6", "10.0.9.5")
		if err := c.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := owners(c, 50_000)
		for i := range before {
			want := before[i]
			if want == "10.0.9.4:11211" {
				want = "10.0.9.6:11211"
			}
			if after[i] != want {
				t.Fatalf("distribution %d: key %d moved from %s to %s", dist, i, before[i], after[i])
			}
		}
		// An address with no identity: the lookup fails, nothing changes.
		res.setA("tasks.cache", "10.0.9.3", "10.0.9.6", "10.0.9.5", "10.0.9.7")
		if err := c.Refresh(context.Background()); err == nil || c.Stats().Nodes != 3 {
			t.Errorf("an unidentifiable node: %v, %+v", err, c.Stats())
		}
		c.Close()
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
			opts := Options{Resolver: d.Resolver(), DialContext: dialer.DialContext, ResolveInterval: -1, Logger: log,
				Timeout: loadedTimeout}
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

// TestDialElastiCacheDiscovery follows a fake configuration endpoint's
// node list, dialling nodes by IP and naming them by host.
func TestDialElastiCacheDiscovery(t *testing.T) {
	a, b := testutil.StartGocached(t, nil), testutil.StartGocached(t, nil)
	e := testutil.StartConfigEndpoint(t, testutil.ConfigEntry("node-0001.example", a))
	log, _ := quiet()
	c, err := Dial([]string{"ecdisc+" + e.Addr}, Options{ResolveInterval: 20 * time.Millisecond, Logger: log, Timeout: loadedTimeout})
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

	e.Set(testutil.ConfigEntry("node-0001.example", a), testutil.ConfigEntry("node-0002.example", b))
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

	// An engine before 1.4.14 answers ERROR to `config get cluster` and
	// keeps the configuration under a key.
	e.SetLegacy(true)
	e.Set(testutil.ConfigEntry("node-0002.example", b))
	if err := c.Refresh(context.Background()); err != nil || fmt.Sprint(c.Selector().Nodes()) != "["+b+"]" {
		t.Fatalf("legacy endpoint: %v, nodes %v", err, c.Selector().Nodes())
	}

	// A plain memcached (or gocached without a cluster configuration)
	// answers ERROR, then END: Dial still works, keeps retrying, and says
	// why.
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
	if !strings.Contains(logs.String(), "no cluster configuration") {
		t.Errorf("log does not say what the endpoint answered: %s", logs.String())
	}
}

// TestSwapUnderLoad flips the membership between 3 and 4 nodes every few
// milliseconds while clients keep reading and writing, with replicas: no
// operation fails (misses are expected as keys move), and the race
// detector sees the atomic ring swaps.
func TestSwapUnderLoad(t *testing.T) {
	addrs := startNodes(t, 4)
	var recs []*net.SRV
	for _, a := range addrs {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		recs = append(recs, &net.SRV{Target: "127.0.0.1.", Port: uint16(p)})
	}
	res := newFakeResolver()
	const name = "_memcache._tcp.nodes.test"
	publish := func(n int) {
		res.mu.Lock()
		defer res.mu.Unlock()
		res.srv[name] = recs[:n]
	}
	publish(3)
	log, _ := quiet()
	c, err := Dial([]string{"dnssrv+" + name}, Options{Replicas: 2, Resolver: res, ResolveInterval: time.Millisecond, Logger: log,
		Timeout: loadedTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("w%d:%d", w, i%200)
				if err := c.Set(&memcache.Item{Key: k, Value: []byte(k)}); err != nil {
					errs <- err
					return
				}
				it, err := c.Get(k)
				switch {
				case errors.Is(err, memcache.ErrCacheMiss):
				case err != nil:
					errs <- err
					return
				case string(it.Value) != k:
					errs <- fmt.Errorf("%s read %q", k, it.Value)
					return
				}
				if _, err := c.GetMulti([]string{k, "w0:1", "w1:2"}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 40 {
		publish(3 + (i+1)%2)
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	s := c.Stats()
	if s.Changes < 10 || s.LookupErrors != 0 {
		t.Errorf("membership changed %d times in 40 flips (%+v)", s.Changes, s)
	}
}
