package difftest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/gocached/gocached/internal/testutil"
)

// TestGomemcache drives a server with github.com/bradfitz/gomemcache, a
// widely used Go client, through every call of its API. memcached over
// TCP is the baseline that shows the expectations are memcached's.
func TestGomemcache(t *testing.T) {
	t.Run("memcached_tcp", func(t *testing.T) {
		t.Parallel()
		exerciseGomemcache(t, testutil.StartMemcached(t))
	})
	t.Run("gocached_tcp", func(t *testing.T) {
		t.Parallel()
		exerciseGomemcache(t, testutil.StartGocached(t, nil))
	})
	t.Run("gocached_unix", func(t *testing.T) {
		t.Parallel()
		// gomemcache takes a server name containing "/" as a unix socket.
		exerciseGomemcache(t, testutil.StartGocachedUnix(t, nil))
	})
}

func exerciseGomemcache(t *testing.T, server string) {
	c := memcache.New(server)
	c.Timeout = 2 * time.Second
	defer c.Close()

	check := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: error %v, want %v", what, err, want)
		}
	}
	value := func(key, want string, wantFlags uint32) *memcache.Item {
		t.Helper()
		it, err := c.Get(key)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if string(it.Value) != want || it.Flags != wantFlags {
			t.Fatalf("Get(%q) = %q flags %d, want %q flags %d", key, it.Value, it.Flags, want, wantFlags)
		}
		return it
	}
	miss := func(key string) {
		t.Helper()
		_, err := c.Get(key)
		check(fmt.Sprintf("Get(%q)", key), err, memcache.ErrCacheMiss)
	}

	check("Ping", c.Ping(), nil)

	// Set, Get, flags over the full 32 bits.
	check("Set", c.Set(&memcache.Item{Key: "foo", Value: []byte("bar"), Flags: 0xdeadbeef}), nil)
	value("foo", "bar", 0xdeadbeef)
	check("Set empty", c.Set(&memcache.Item{Key: "empty", Value: []byte{}}), nil)
	value("empty", "", 0)
	miss("nothing")
	_, err := c.Get(strings.Repeat("k", 251))
	check("Get(long key)", err, memcache.ErrMalformedKey)

	// Add, Replace.
	check("Add existing", c.Add(&memcache.Item{Key: "foo", Value: []byte("x")}), memcache.ErrNotStored)
	check("Add new", c.Add(&memcache.Item{Key: "added", Value: []byte("a1")}), nil)
	value("added", "a1", 0)
	check("Replace missing", c.Replace(&memcache.Item{Key: "nope", Value: []byte("x")}), memcache.ErrNotStored)
	check("Replace existing", c.Replace(&memcache.Item{Key: "added", Value: []byte("a2"), Flags: 7}), nil)
	value("added", "a2", 7)

	// Append, Prepend.
	check("Append", c.Append(&memcache.Item{Key: "foo", Value: []byte("++")}), nil)
	check("Prepend", c.Prepend(&memcache.Item{Key: "foo", Value: []byte("--")}), nil)
	value("foo", "--bar++", 0xdeadbeef)
	check("Append missing", c.Append(&memcache.Item{Key: "nope", Value: []byte("x")}), memcache.ErrNotStored)
	check("Prepend missing", c.Prepend(&memcache.Item{Key: "nope", Value: []byte("x")}), memcache.ErrNotStored)

	// GetMulti.
	m, err := c.GetMulti([]string{"foo", "added", "nothing", "empty"})
	check("GetMulti", err, nil)
	if len(m) != 3 || string(m["foo"].Value) != "--bar++" || string(m["added"].Value) != "a2" || m["empty"] == nil {
		t.Fatalf("GetMulti = %v, want foo, added and empty", m)
	}

	// CompareAndSwap: gets gives the unique, a second swap with the same
	// item conflicts, a deleted item is a miss.
	it := value("foo", "--bar++", 0xdeadbeef)
	it.Value = []byte("swapped")
	check("CompareAndSwap", c.CompareAndSwap(it), nil)
	value("foo", "swapped", 0xdeadbeef)
	it.Value = []byte("again")
	check("CompareAndSwap stale", c.CompareAndSwap(it), memcache.ErrCASConflict)
	stale := value("added", "a2", 7)
	check("Delete before CAS", c.Delete("added"), nil)
	check("CompareAndSwap deleted", c.CompareAndSwap(stale), memcache.ErrCacheMiss)

	// Delete.
	check("Delete", c.Delete("foo"), nil)
	miss("foo")
	check("Delete missing", c.Delete("foo"), memcache.ErrCacheMiss)

	// Increment, Decrement: wrap at 2^64, floor at 0, errors.
	check("Set counter", c.Set(&memcache.Item{Key: "n", Value: []byte("10")}), nil)
	n, err := c.Increment("n", 5)
	if err != nil || n != 15 {
		t.Fatalf("Increment = %d, %v; want 15", n, err)
	}
	n, err = c.Decrement("n", 100)
	if err != nil || n != 0 {
		t.Fatalf("Decrement below zero = %d, %v; want 0", n, err)
	}
	check("Set max", c.Set(&memcache.Item{Key: "max", Value: []byte("18446744073709551615")}), nil)
	n, err = c.Increment("max", 2)
	if err != nil || n != 1 {
		t.Fatalf("Increment past 2^64-1 = %d, %v; want 1", n, err)
	}
	_, err = c.Increment("missing", 1)
	check("Increment missing", err, memcache.ErrCacheMiss)
	_, err = c.Decrement("missing", 1)
	check("Decrement missing", err, memcache.ErrCacheMiss)
	check("Set text", c.Set(&memcache.Item{Key: "text", Value: []byte("abc")}), nil)
	if _, err = c.Increment("text", 1); err == nil || !strings.Contains(err.Error(), "cannot increment or decrement non-numeric value") {
		t.Fatalf("Increment non-numeric: %v, want the client error", err)
	}
	// memcached pads a decremented value that got shorter with spaces.
	check("Set 100", c.Set(&memcache.Item{Key: "pad", Value: []byte("100")}), nil)
	if n, err = c.Decrement("pad", 1); err != nil || n != 99 {
		t.Fatalf("Decrement 100 by 1 = %d, %v", n, err)
	}
	value("pad", "99 ", 0)

	// Touch and GetAndTouch.
	check("Set ttl", c.Set(&memcache.Item{Key: "ttl", Value: []byte("t"), Expiration: 100}), nil)
	check("Touch", c.Touch("ttl", 1000), nil)
	check("Touch missing", c.Touch("nope", 10), memcache.ErrCacheMiss)
	got, err := c.GetAndTouch("ttl", 1000)
	if err != nil || string(got.Value) != "t" {
		t.Fatalf("GetAndTouch = %v, %v", got, err)
	}
	_, err = c.GetAndTouch("nope", 10)
	check("GetAndTouch missing", err, memcache.ErrCacheMiss)
	check("Touch to expire", c.Touch("ttl", -1), nil)
	miss("ttl")
	check("Set expired", c.Set(&memcache.Item{Key: "gone", Value: []byte("g"), Expiration: -1}), nil)
	miss("gone")

	// A large value close to the 1 MB item limit, and one over it.
	big := []byte(strings.Repeat("x", 1000*1000))
	check("Set big", c.Set(&memcache.Item{Key: "big", Value: big}), nil)
	if it, err := c.Get("big"); err != nil || len(it.Value) != len(big) {
		t.Fatalf("Get big: %v", err)
	}
	if err := c.Set(&memcache.Item{Key: "huge", Value: make([]byte, 2<<20)}); err == nil || !strings.Contains(err.Error(), "object too large") {
		t.Fatalf("Set 2 MB: %v, want SERVER_ERROR object too large for cache", err)
	}
	check("Ping after too large", c.Ping(), nil)

	// FlushAll, then an item stored in the same second survives.
	check("FlushAll", c.FlushAll(), nil)
	miss("n")
	miss("big")
	check("Set after flush", c.Set(&memcache.Item{Key: "after", Value: []byte("a")}), nil)
	value("after", "a", 0)

	// DeleteAll sends flush_all too.
	check("DeleteAll", c.DeleteAll(), nil)
	miss("after")

	// The pooled connections stay usable.
	for i := 0; i < 20; i++ {
		k := fmt.Sprintf("k%d", i)
		check("Set "+k, c.Set(&memcache.Item{Key: k, Value: []byte(k)}), nil)
	}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	m, err = c.GetMulti(keys)
	if err != nil || len(m) != 20 {
		t.Fatalf("GetMulti of 20: %d items, %v", len(m), err)
	}
}
