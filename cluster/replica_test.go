package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gocached/gocached/internal/testutil"
)

// loadedTimeout replaces gomemcache's 500 ms socket timeout in tests where
// only a killed node (connection refused, at once) may fail: a CI machine
// running other tests can stall a live node for longer than 500 ms.
const loadedTimeout = 5 * time.Second

// startNodes starts n in-process gocached nodes.
func startNodes(t *testing.T, n int) []string {
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = testutil.StartGocached(t, nil)
	}
	return addrs
}

// direct returns plain one-node gomemcache clients, to look at what each
// node holds behind the cluster client's back.
func direct(addrs []string) []*memcache.Client {
	out := make([]*memcache.Client, len(addrs))
	for i, a := range addrs {
		out[i] = memcache.New(a)
	}
	return out
}

// holders returns the nodes (by index) that have key, with their values.
func holders(t *testing.T, nodes []*memcache.Client, key string) map[int]string {
	t.Helper()
	out := map[int]string{}
	for i, mc := range nodes {
		it, err := mc.Get(key)
		switch {
		case err == nil:
			out[i] = string(it.Value)
		case !errors.Is(err, memcache.ErrCacheMiss):
			t.Fatalf("node %d: get %q: %v", i, key, err)
		}
	}
	return out
}

// TestClientAPI runs gomemcache's whole API through Client, with one copy
// and with two, and checks after each write that exactly the key's
// replicas hold the expected value.
func TestClientAPI(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dist     Distribution
		replicas int
	}{
		{"ketama/R=1", Ketama, 1},
		{"ketama/R=2", Ketama, 2},
		{"jump/R=2", Jump, 2},
		{"jump/R=3", Jump, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addrs := startNodes(t, 3)
			nodes := direct(addrs)
			log, _ := quiet()
			c, err := Dial(addrs, Options{Distribution: tc.dist, Replicas: tc.replicas, ResolveInterval: -1, Logger: log,
				Timeout: loadedTimeout})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			index := map[string]int{}
			for i, a := range addrs {
				index[a] = i
			}
			// expect checks that key is on exactly its replicas with value
			// want ("" for nowhere).
			expect := func(key, want string) {
				t.Helper()
				reps, err := c.Replicas(key)
				if err != nil || len(reps) != tc.replicas {
					t.Fatalf("Replicas(%q) = %v, %v; want %d nodes", key, reps, err, tc.replicas)
				}
				wantHolders := map[int]string{}
				if want != "" {
					for _, r := range reps {
						wantHolders[index[r.String()]] = want
					}
				}
				if got := holders(t, nodes, key); fmt.Sprint(got) != fmt.Sprint(wantHolders) {
					t.Fatalf("%q held as %v, want %v", key, got, wantHolders)
				}
			}
			item := func(k, v string) *memcache.Item { return &memcache.Item{Key: k, Value: []byte(v)} }
			check := func(what string, err, want error) {
				t.Helper()
				if !errors.Is(err, want) && !(err == nil && want == nil) {
					t.Fatalf("%s: %v, want %v", what, err, want)
				}
			}

			check("set", c.Set(item("a", "1")), nil)
			expect("a", "1")
			it, err := c.Get("a")
			if err != nil || string(it.Value) != "1" {
				t.Fatalf("get a = %v, %v", it, err)
			}
			_, err = c.Get("nope")
			check("get missing", err, memcache.ErrCacheMiss)

			check("add existing", c.Add(item("a", "2")), memcache.ErrNotStored)
			expect("a", "1")
			check("add new", c.Add(item("b", "x")), nil)
			expect("b", "x")
			check("replace missing", c.Replace(item("c", "x")), memcache.ErrNotStored)
			expect("c", "")
			check("replace", c.Replace(item("b", "y")), nil)
			expect("b", "y")
			check("append", c.Append(item("b", ">")), nil)
			check("prepend", c.Prepend(item("b", "<")), nil)
			expect("b", "<y>")
			check("append missing", c.Append(item("c", ">")), memcache.ErrNotStored)

			it, err = c.Get("b")
			check("get for cas", err, nil)
			it.Value = []byte("z")
			check("cas", c.CompareAndSwap(it), nil)
			expect("b", "z")
			check("cas stale", c.CompareAndSwap(it), memcache.ErrCASConflict)
			expect("b", "z")

			check("set counter", c.Set(item("n", "10")), nil)
			if v, err := c.Increment("n", 5); err != nil || v != 15 {
				t.Fatalf("incr = %d, %v", v, err)
			}
			expect("n", "15")
			// memcached keeps a decremented value's length ("0 "), so only
			// the returned value is compared here.
			if v, err := c.Decrement("n", 20); err != nil || v != 0 {
				t.Fatalf("decr = %d, %v", v, err)
			}
			_, err = c.Increment("nope", 1)
			check("incr missing", err, memcache.ErrCacheMiss)

			check("touch", c.Touch("a", 100), nil)
			check("touch missing", c.Touch("nope", 100), memcache.ErrCacheMiss)
			if it, err := c.GetAndTouch("a", 100); err != nil || string(it.Value) != "1" {
				t.Fatalf("gat = %v, %v", it, err)
			}

			check("delete", c.Delete("a"), nil)
			expect("a", "")
			check("delete missing", c.Delete("a"), memcache.ErrCacheMiss)

			var keys []string
			for i := range 100 {
				k := testKey(i)
				keys = append(keys, k)
				check("set "+k, c.Set(item(k, k)), nil)
			}
			m, err := c.GetMulti(append(keys, "nope"))
			if err != nil || len(m) != 100 || string(m["key:42"].Value) != "key:42" {
				t.Fatalf("getmulti: %d items, %v", len(m), err)
			}
			check("ping", c.Ping(), nil)
			check("deleteall", c.DeleteAll(), nil)
			for _, k := range []string{"b", "n", "key:42"} {
				expect(k, "")
			}
			check("set after flush", c.Set(item("b", "1")), nil)
			check("flushall", c.FlushAll(), nil)
			expect("b", "")
		})
	}
}

// TestReplicaFailover kills a node behind two-copy clients: every key
// stays readable, from the first replica that answers, with no error, and
// writes keep working; with one copy the same kill loses that node's keys.
func TestReplicaFailover(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run("R="+strconv.Itoa(replicas), func(t *testing.T) {
			addrs := startNodes(t, 3)
			proxies := make([]*faultProxy, 3)
			var front []string
			for i, a := range addrs {
				proxies[i] = startProxy(t, a)
				front = append(front, proxies[i].addr)
			}
			sel, _ := NewJumpSelector(front...)
			c := New(sel, Options{Replicas: replicas, RetryTimeout: time.Minute, Timeout: loadedTimeout})
			defer c.Close()
			const n = 300
			var keys []string
			for i := range n {
				keys = append(keys, testKey(i))
				if err := c.Set(&memcache.Item{Key: testKey(i), Value: []byte("v")}); err != nil {
					t.Fatal(err)
				}
			}
			proxies[0].kill()

			var hits, errs int
			for _, k := range keys {
				_, err := c.Get(k)
				switch {
				case err == nil:
					hits++
				case errors.Is(err, ErrNodeDown):
					errs++
				}
			}
			t.Logf("R=%d after losing 1 of 3 nodes: %d/%d keys hit, %d node errors", replicas, hits, n, errs)
			if replicas == 2 && (hits != n || errs != 0) {
				t.Errorf("R=2: %d/%d hits and %d errors after one node died, want every key and no error", hits, n, errs)
			}
			if replicas == 1 && (hits > n*4/5 || hits < n/2) {
				t.Errorf("R=1: %d/%d hits after a node died, want about two thirds", hits, n)
			}
			m, err := c.GetMulti(keys)
			if replicas == 2 && (len(m) != n || err != nil) {
				t.Errorf("R=2 getmulti: %d/%d, %v", len(m), n, err)
			}
			for _, k := range keys[:50] {
				if err := c.Set(&memcache.Item{Key: k, Value: []byte("w")}); err != nil {
					t.Errorf("set with a node down: %v", err)
				}
			}
			if err := c.Ping(); !errors.Is(err, ErrNodeDown) || !strings.Contains(err.Error(), front[0]) {
				t.Errorf("ping = %v, want the dead node named", err)
			}
		})
	}
}

// nodeStat reads one counter of "stats" from addr.
func nodeStat(t *testing.T, addr, name string) int64 {
	t.Helper()
	lines := testutil.SendLines(t, addr, "stats\r\n", 80)
	for _, l := range lines {
		if f := strings.Fields(l); len(f) == 3 && f[1] == name {
			v, _ := strconv.ParseInt(f[2], 10, 64)
			return v
		}
	}
	t.Fatalf("%s: no stat %s", addr, name)
	return 0
}

// hitRun is one measured phase of the lazy-loading workload.
type hitRun struct{ ops, loads, onKilled int }

func (h hitRun) ratio() float64 { return 1 - float64(h.loads)/float64(h.ops) }

// TestReplicasHitRatioOnNodeLoss is the availability measurement of
// Options.Replicas: a Zipf lazy-loading (GetOrLoad) workload over 3 local
// nodes, one of which is killed. With R=2 the hit ratio right after the
// kill stays within 5% of before; with R=1 the dead node's keys (a third)
// are lost and the hit ratio drops until the fallback nodes have loaded
// them again. Jump placement, so which keys the killed node held does not
// depend on the nodes' random ports.
func TestReplicasHitRatioOnNodeLoss(t *testing.T) {
	const (
		keySpace = 5_000
		warm     = 15_000
		window   = 5_000
		first    = 500 // the first requests after the kill
	)
	value := []byte(strings.Repeat("v", 100))
	results := map[int][3]float64{}
	for _, replicas := range []int{1, 2} {
		addrs := startNodes(t, 3)
		proxies := make([]*faultProxy, 3)
		var front []string
		for i, a := range addrs {
			proxies[i] = startProxy(t, a)
			front = append(front, proxies[i].addr)
		}
		sel, _ := NewJumpSelector(front...)
		c := New(sel, Options{Replicas: replicas, RetryTimeout: time.Minute, TTLJitter: -1, Timeout: loadedTimeout})
		zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.01, 1, keySpace-1)
		loaded := map[string]bool{}
		run := func(ops int) (h hitRun) {
			for range ops {
				key := "user:" + strconv.FormatUint(zipf.Uint64(), 10)
				_, err := c.GetOrLoad(context.Background(), key, time.Hour, func(context.Context, string) ([]byte, error) {
					h.loads++
					return value, nil
				})
				if err != nil {
					t.Fatal(err)
				}
				loaded[key] = true
				h.ops++
				if sel.Primary(key) == 0 {
					h.onKilled++
				}
			}
			return h
		}
		run(warm)
		before := run(window)

		proxies[0].kill()
		// Every key loaded so far, asked once: the share still cached.
		var kept int
		for k := range loaded {
			if _, err := c.Get(k); err == nil {
				kept++
			}
		}
		keyShare := float64(kept) / float64(len(loaded))
		firstRun := run(first)
		rest := run(window - first)
		after := hitRun{ops: firstRun.ops + rest.ops, loads: firstRun.loads + rest.loads}

		// The killed node's process is still up behind its proxy, so the
		// totals cover all three nodes.
		var sets, bytes int64
		for _, a := range addrs {
			sets += nodeStat(t, a, "cmd_set")
			bytes += nodeStat(t, a, "bytes")
		}
		t.Logf("R=%d: the killed node is the first replica of %.1f%% of the requests", replicas,
			100*float64(before.onKilled)/float64(before.ops))
		t.Logf("R=%d: hit ratio before %.1f%%, first %d requests after the kill %.1f%%, next %d %.1f%%; "+
			"keys still cached right after %.1f%% of %d; all nodes' cmd_set %d, bytes %d",
			replicas, 100*before.ratio(), first, 100*firstRun.ratio(), window-first, 100*rest.ratio(),
			100*keyShare, len(loaded), sets, bytes)
		results[replicas] = [3]float64{before.ratio(), firstRun.ratio(), after.ratio()}
		c.Close()

		switch replicas {
		case 1:
			if keyShare < 0.55 || keyShare > 0.75 {
				t.Errorf("R=1: %.1f%% of the keys survived a third of the nodes, want about two thirds", 100*keyShare)
			}
			if firstRun.ratio() > 0.9*before.ratio() {
				t.Errorf("R=1: hit ratio %.1f%% right after the kill vs %.1f%% before; want a clear drop",
					100*firstRun.ratio(), 100*before.ratio())
			}
		case 2:
			if keyShare < 0.99 {
				t.Errorf("R=2: only %.1f%% of the keys survived one node's loss", 100*keyShare)
			}
			if firstRun.ratio() < 0.95*before.ratio() || after.ratio() < 0.95*before.ratio() {
				t.Errorf("R=2: hit ratio %.1f%% (first %d) / %.1f%% (window) after the kill vs %.1f%% before; want within 5%%",
					100*firstRun.ratio(), first, 100*after.ratio(), 100*before.ratio())
			}
		}
	}
}
