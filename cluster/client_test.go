package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gocached/gocached/internal/testutil"
)

// faultProxy sits in front of a real memcached so a test can take that node
// down and bring it back on the same address (StartMemcached picks its own
// port, so a restarted memcached could not reuse it). kill closes the
// listener and every connection, which clients see exactly like a dead
// process: refused connects and reset sockets. freeze stops forwarding
// while keeping sockets open, like SIGSTOP, so clients see timeouts.
type faultProxy struct {
	t       *testing.T
	addr    string
	backend string
	frozen  atomic.Bool

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func startProxy(t *testing.T, backend string) *faultProxy {
	p := &faultProxy{t: t, backend: backend, conns: map[net.Conn]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.kill)
	return p
}

func (p *faultProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.backend)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[b] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go p.pipe(b, c)
			go p.pipe(c, b)
		}
	}()
}

func (p *faultProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for p.frozen.Load() {
				time.Sleep(5 * time.Millisecond)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.frozen.Store(false)
}

func (p *faultProxy) restart() {
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("proxy cannot listen on %s again: %v", p.addr, err)
}

// TestFailover runs the node-loss scenario against three real memcached
// nodes for both placements and both re-admission modes: fill the cluster,
// take one node down (killed or frozen), check that errors stop after
// FailureLimit failures, that its keys then go to a fallback with no errors
// and that every other key stays where it was, then bring it back and check
// it is re-admitted once RetryTimeout has passed.
func TestFailover(t *testing.T) {
	testutil.RequireTool(t, "memcached")
	type placement func([]string) (Selector, error)
	placements := map[string]placement{
		"jump":   func(a []string) (Selector, error) { return NewJumpSelector(a...) },
		"ketama": func(a []string) (Selector, error) { return NewKetamaSelectorAddrs(a...) },
	}
	cases := []struct {
		name   string
		place  string
		freeze bool
		probe  time.Duration
	}{
		{"jump/kill/lazy", "jump", false, 0},
		{"ketama/kill/probe", "ketama", false, 20 * time.Millisecond},
		{"jump/freeze/probe", "jump", true, 20 * time.Millisecond},
		{"ketama/freeze/lazy", "ketama", true, 0},
	}
	const (
		keys         = 1500
		victim       = 1
		failureLimit = 2
		retry        = time.Hour
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []string
			var proxy *faultProxy
			for i := 0; i < 3; i++ {
				a := testutil.StartMemcached(t)
				if i == victim {
					proxy = startProxy(t, a)
					a = proxy.addr
				}
				addrs = append(addrs, a)
			}
			sel, err := placements[tc.place](addrs)
			if err != nil {
				t.Fatal(err)
			}
			// The ejection clock is skewed by hand so that a slow run (race
			// detector, busy CI) cannot outlast RetryTimeout mid-check.
			var skew atomic.Int64
			sel.health().now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
			c := New(sel, Options{FailureLimit: failureLimit, RetryTimeout: retry, ProbeInterval: tc.probe, Timeout: 250 * time.Millisecond})
			defer c.Close()

			owner := make([]int, keys)
			victimKeys := 0
			for i := 0; i < keys; i++ {
				k := testKey(i)
				if err := c.Set(&memcache.Item{Key: k, Value: []byte(k)}); err != nil {
					t.Fatal(err)
				}
				owner[i] = sel.Primary(k)
				if owner[i] == victim {
					victimKeys++
				}
			}

			if tc.freeze {
				proxy.frozen.Store(true)
			} else {
				proxy.kill()
			}
			start := time.Now()
			var nodeErrs, misses, hits int
			var window time.Duration
			for i := 0; i < keys; i++ {
				k := testKey(i)
				it, err := c.Get(k)
				switch {
				case errors.Is(err, ErrNodeDown):
					nodeErrs++
					window = time.Since(start)
					if owner[i] != victim {
						t.Fatalf("key %q of healthy node %d failed: %v", k, owner[i], err)
					}
				case errors.Is(err, memcache.ErrCacheMiss):
					misses++
					if owner[i] != victim {
						t.Fatalf("key %q of healthy node %d missed: it moved", k, owner[i])
					}
				case err != nil:
					t.Fatalf("get %q: %v", k, err)
				default:
					hits++
					if string(it.Value) != k {
						t.Fatalf("key %q has value %q", k, it.Value)
					}
				}
				if owner[i] != victim {
					if p, _ := sel.Pick(k); p != owner[i] {
						t.Fatalf("key %q moved from healthy node %d to %d", k, owner[i], p)
					}
				}
			}
			t.Logf("%s: %d errors in %v before ejection, then %d misses (victim owns %d keys), %d hits",
				tc.name, nodeErrs, window.Round(time.Millisecond), misses, victimKeys, hits)
			if nodeErrs != failureLimit {
				t.Errorf("%d node errors, want exactly FailureLimit=%d", nodeErrs, failureLimit)
			}
			if got := c.Ejected(); len(got) != 1 || got[0].String() != addrs[victim] {
				t.Errorf("ejected %v, want [%s]", got, addrs[victim])
			}
			if misses+nodeErrs != victimKeys || hits != keys-victimKeys {
				t.Errorf("misses+errors %d, hits %d; want %d and %d", misses+nodeErrs, hits, victimKeys, keys-victimKeys)
			}

			// Bring the node back; after RetryTimeout it must own its keys
			// again and still hold their values.
			if tc.freeze {
				proxy.frozen.Store(false)
			} else {
				proxy.restart()
			}
			k := firstKeyOf(owner, victim)
			if n, _ := c.Node(k); n.String() == addrs[victim] {
				t.Fatalf("node re-admitted before RetryTimeout")
			}
			skew.Store(int64(retry + time.Second))
			deadline := time.Now().Add(3 * time.Second)
			for {
				_, err := c.Get(k)
				if n, _ := c.Node(k); err == nil && n.String() == addrs[victim] {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node not re-admitted 3s after RetryTimeout (last error %v)", err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for i := 0; i < keys; i++ {
				k := testKey(i)
				if _, err := c.Get(k); err != nil {
					t.Fatalf("after re-admission get %q (node %d): %v", k, owner[i], err)
				}
			}
		})
	}
}

func firstKeyOf(owner []int, node int) string {
	for i, o := range owner {
		if o == node {
			return testKey(i)
		}
	}
	panic(fmt.Sprint("no key on node ", node))
}

// TestRealNodeDeath kills an actual memcached process (via the `shutdown`
// command, enabled with -A) rather than a proxy, to show that a real
// process exit is classified as ErrNodeDown and ejected.
func TestRealNodeDeath(t *testing.T) {
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, testutil.StartMemcached(t, "-A"))
	}
	sel, err := NewJumpSelector(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	c := New(sel, Options{FailureLimit: 2, RetryTimeout: time.Minute})
	defer c.Close()
	for i := 0; i < 300; i++ {
		if err := c.Set(&memcache.Item{Key: testKey(i), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "shutdown\r\n")
	io.Copy(io.Discard, conn) // memcached closes the connection as it exits
	conn.Close()
	// memcached 1.6 shuts down gracefully; wait until the port is closed.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addrs[0], 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("memcached did not exit after shutdown")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var nodeErrs int
	for i := 0; i < 300; i++ {
		_, err := c.Get(testKey(i))
		switch {
		case errors.Is(err, ErrNodeDown):
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Addr.String() != addrs[0] {
				t.Fatalf("node error not attributed to %s: %v", addrs[0], err)
			}
			nodeErrs++
		case err != nil && !errors.Is(err, memcache.ErrCacheMiss):
			t.Fatalf("get: %v", err)
		}
	}
	if nodeErrs != 2 {
		t.Errorf("%d node errors, want 2", nodeErrs)
	}
	if e := c.Ejected(); len(e) != 1 || e[0].String() != addrs[0] {
		t.Errorf("ejected %v", e)
	}
}

func TestNoLiveNodes(t *testing.T) {
	sel, _ := NewJumpSelector("127.0.0.1:1", "127.0.0.1:2")
	c := New(sel, Options{FailureLimit: 1, RetryTimeout: time.Minute})
	defer c.Close()
	for i := 0; i < 10; i++ {
		c.Get(testKey(i))
	}
	_, err := c.Get("x")
	if !errors.Is(err, ErrNoLiveNodes) || !errors.Is(err, memcache.ErrNoServers) {
		t.Fatalf("got %v, want ErrNoLiveNodes", err)
	}
	// GetOrLoad still serves from the source when the whole cache is gone.
	v, err := c.GetOrLoad(context.Background(), "x", time.Minute, func(context.Context, string) ([]byte, error) {
		return []byte("from db"), nil
	})
	if err != nil || string(v) != "from db" {
		t.Fatalf("GetOrLoad with no cache = %q, %v", v, err)
	}
}
