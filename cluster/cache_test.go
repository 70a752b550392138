package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gocached/gocached/internal/testutil"
)

func newTestCluster(t *testing.T, n int) *Client {
	var addrs []string
	for i := 0; i < n; i++ {
		addrs = append(addrs, testutil.StartMemcached(t))
	}
	sel, err := NewKetamaSelectorAddrs(addrs...)
	if err != nil {
		t.Fatal(err)
	}
	c := New(sel, Options{})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGetOrLoadSingleFlight(t *testing.T) {
	c := newTestCluster(t, 2)
	cases := []struct {
		name    string
		callers int
		keys    int
	}{
		{"one hot key", 64, 1},
		{"four hot keys", 64, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var loads atomic.Int32
			release := make(chan struct{})
			load := func(ctx context.Context, key string) ([]byte, error) {
				loads.Add(1)
				<-release // hold the load open until every caller has missed
				return []byte("value of " + key), nil
			}
			prefix := strings.ReplaceAll(tc.name, " ", "-") + ":"
			var wg sync.WaitGroup
			errs := make(chan error, tc.callers)
			for i := 0; i < tc.callers; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := prefix + string(rune('a'+i%tc.keys))
					v, err := c.GetOrLoad(context.Background(), key, time.Minute, load)
					if err == nil && string(v) != "value of "+key {
						err = errors.New("wrong value " + string(v))
					}
					errs <- err
				}()
			}
			time.Sleep(200 * time.Millisecond)
			close(release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := int(loads.Load()); got != tc.keys {
				t.Errorf("%d callers caused %d loads, want %d (one per key)", tc.callers, got, tc.keys)
			}
			// The value is now cached: no further loads.
			if _, err := c.GetOrLoad(context.Background(), prefix+"a", time.Minute, load); err != nil {
				t.Fatal(err)
			}
			if got := int(loads.Load()); got != tc.keys {
				t.Errorf("cached key loaded again")
			}
		})
	}
}

func TestGetOrLoadCallerCancel(t *testing.T) {
	c := newTestCluster(t, 1)
	release := make(chan struct{})
	load := func(ctx context.Context, key string) ([]byte, error) {
		<-release
		return []byte("v"), ctx.Err() // the load must not see the caller's cancellation
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(ctx, "cancel-me", time.Minute, load)
		first <- err
	}()
	time.Sleep(50 * time.Millisecond)
	second := make(chan error, 1)
	go func() {
		_, err := c.GetOrLoad(context.Background(), "cancel-me", time.Minute, load)
		second <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("patient caller failed because another caller cancelled: %v", err)
	}
}

func TestWriteThrough(t *testing.T) {
	c := newTestCluster(t, 2)
	db := map[string]string{}
	save := func(_ context.Context, k string, v []byte) error { db[k] = string(v); return nil }
	if err := c.WriteThrough(context.Background(), "wt", []byte("v1"), time.Minute, save); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get("wt")
	if err != nil || string(it.Value) != "v1" || db["wt"] != "v1" {
		t.Fatalf("cache %v %v, db %q", it, err, db["wt"])
	}
	bad := errors.New("db down")
	err = c.WriteThrough(context.Background(), "wt", []byte("v2"), time.Minute, func(context.Context, string, []byte) error { return bad })
	if !errors.Is(err, bad) {
		t.Fatalf("got %v", err)
	}
	if it, _ := c.Get("wt"); string(it.Value) != "v1" {
		t.Fatalf("cache changed although the source rejected the write: %q", it.Value)
	}
}

func TestExpirationJitter(t *testing.T) {
	cases := []struct {
		name     string
		jitter   float64
		ttl      time.Duration
		min, max int32
	}{
		{"no ttl", 0.1, 0, 0, 0},
		{"default jitter", 0.1, 100 * time.Second, 90, 100},
		{"no jitter", -1, 100 * time.Second, 100, 100},
		{"sub-second rounds up", -1, 10 * time.Millisecond, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(mustJump(t), Options{TTLJitter: tc.jitter})
			defer c.Close()
			seen := map[int32]bool{}
			for i := 0; i < 500; i++ {
				e := c.expiration(tc.ttl)
				if e < tc.min || e > tc.max {
					t.Fatalf("expiration %d outside [%d, %d]", e, tc.min, tc.max)
				}
				seen[e] = true
			}
			if tc.min != tc.max && len(seen) < 5 {
				t.Errorf("jitter produced only %d distinct TTLs", len(seen))
			}
		})
	}
	c := New(mustJump(t), Options{TTLJitter: -1})
	defer c.Close()
	if e := c.expiration(60 * 24 * time.Hour); int64(e) < time.Now().Unix() {
		t.Errorf("TTL over 30 days must become an absolute time, got %d", e)
	}
}

func mustJump(t *testing.T) *JumpSelector {
	s, err := NewJumpSelector("127.0.0.1:11211")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPlainGomemcache checks the selectors plug into memcache.NewFromSelector.
func TestPlainGomemcache(t *testing.T) {
	a, b := testutil.StartMemcached(t), testutil.StartMemcached(t)
	for name, mk := range map[string]func() (Selector, error){
		"jump":   func() (Selector, error) { return NewJumpSelector(a, b) },
		"ketama": func() (Selector, error) { return NewKetamaSelectorAddrs(a, b) },
	} {
		t.Run(name, func(t *testing.T) {
			sel, err := mk()
			if err != nil {
				t.Fatal(err)
			}
			mc := memcache.NewFromSelector(sel)
			for i := 0; i < 50; i++ {
				k := name + testKey(i)
				if err := mc.Set(&memcache.Item{Key: k, Value: []byte(k)}); err != nil {
					t.Fatal(err)
				}
				direct := memcache.New(sel.Nodes()[sel.Primary(k)].String())
				if it, err := direct.Get(k); err != nil || string(it.Value) != k {
					t.Fatalf("%q not on its primary: %v", k, err)
				}
			}
		})
	}
}
