package slab

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const t0 = 1_700_000_000 // fake clock start, Unix seconds

type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) sec() int64              { return c.ns.Load() / 1e9 }

func newTestStore(t testing.TB, cfg Config) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{}
	clk.ns.Store(t0 * 1e9)
	if cfg.Clock == nil {
		cfg.Clock = clk
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

func get(s *Store, key string) (string, Item, bool) {
	v, it, ok := s.Get(nil, []byte(key), nil)
	return string(v), it, ok
}

func set(t testing.TB, s *Store, key, val string, o *SetOptions) uint64 {
	t.Helper()
	r, cas := s.Set([]byte(key), []byte(val), o)
	if r != Stored {
		t.Fatalf("set %q: %v", key, r)
	}
	return cas
}

func TestConfigDefaults(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	c := s.Config()
	if c.MemoryLimit != 64<<20 || c.PageSize != 1<<20 || c.GrowthFactor != 1.25 || c.MinChunkSize != 48 || c.MaxItemSize != 1<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	sizes := s.ClassSizes()
	if sizes[0] != 72 { // 17-byte header (no LRU links under s3clock) + 48, aligned to 8
		t.Errorf("class 1 = %d, want 72", sizes[0])
	}
	if s.Eviction() != EvictionS3Clock {
		t.Errorf("default eviction %q, want %q", s.Eviction(), EvictionS3Clock)
	}
	for _, cfg := range []Config{{Eviction: EvictionLRU}, {NoLRUMaintainer: true}, {HotLRUPct: 10}, {WarmMaxFactor: 3}} {
		if lru, _ := newTestStore(t, cfg); lru.Eviction() != EvictionLRU || lru.ClassSizes()[0] != 80 { // 25-byte header
			t.Errorf("%+v: eviction %q, class 1 = %d; want lru, 80", cfg, lru.Eviction(), lru.ClassSizes()[0])
		}
	}
	if sizes[len(sizes)-1] != 1<<20 || sizes[len(sizes)-2] != 1<<19 {
		t.Errorf("last classes = %v", sizes[len(sizes)-2:])
	}
	for i := 1; i < len(sizes); i++ {
		if sizes[i]%8 != 0 || sizes[i] <= sizes[i-1] {
			t.Errorf("class %d size %d after %d", i+1, sizes[i], sizes[i-1])
		}
	}
	for _, bad := range []Config{{GrowthFactor: 0.5}, {PageSize: 100}, {MaxItemSize: 2 << 30}, {MemoryLimit: -1}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) succeeded", bad)
		}
	}
}

func TestSetModes(t *testing.T) {
	tests := []struct {
		name    string
		exists  bool
		opt     SetOptions
		val     string
		want    Result
		wantVal string // "" with wantHit false = missing
		wantHit bool
		wantFl  uint32
	}{
		{"set new", false, SetOptions{Mode: ModeSet, Flags: 7}, "v", Stored, "v", true, 7},
		{"set over", true, SetOptions{Mode: ModeSet}, "v", Stored, "v", true, 0},
		{"add new", false, SetOptions{Mode: ModeAdd}, "v", Stored, "v", true, 0},
		{"add exists", true, SetOptions{Mode: ModeAdd}, "v", NotStored, "old", true, 5},
		{"replace missing", false, SetOptions{Mode: ModeReplace}, "v", NotStored, "", false, 0},
		{"replace", true, SetOptions{Mode: ModeReplace, Flags: 9}, "v", Stored, "v", true, 9},
		{"append", true, SetOptions{Mode: ModeAppend, Flags: 1}, "+a", Stored, "old+a", true, 5},
		{"prepend", true, SetOptions{Mode: ModePrepend, Flags: 1}, "p+", Stored, "p+old", true, 5},
		{"append missing", false, SetOptions{Mode: ModeAppend}, "a", NotStored, "", false, 0},
		{"append vivify", false, SetOptions{Mode: ModeAppend, Vivify: true}, "a", Stored, "a", true, 0},
		{"append bad cas", true, SetOptions{Mode: ModeAppend, CAS: 999}, "a", Exists, "old", true, 5},
		{"cas missing", false, SetOptions{Mode: ModeCAS, CAS: 1}, "v", NotFound, "", false, 0},
		{"cas zero", true, SetOptions{Mode: ModeCAS}, "v", Exists, "old", true, 5},
		{"set with bad cas", true, SetOptions{Mode: ModeSet, CAS: 999}, "v", Exists, "old", true, 5},
		{"replace with bad cas", true, SetOptions{Mode: ModeReplace, CAS: 999}, "v", Exists, "old", true, 5},
		{"add ignores cas", false, SetOptions{Mode: ModeAdd, CAS: 999}, "v", Stored, "v", true, 0},
		{"empty value", false, SetOptions{}, "", Stored, "", true, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			if tc.exists {
				set(t, s, "k", "old", &SetOptions{Flags: 5, Exptime: t0 + 100})
			}
			r, cas := s.Set([]byte("k"), []byte(tc.val), &tc.opt)
			if r != tc.want {
				t.Fatalf("result %v, want %v", r, tc.want)
			}
			if (r == Stored) != (cas != 0) {
				t.Errorf("cas %d with result %v", cas, r)
			}
			v, it, ok := get(s, "k")
			if ok != tc.wantHit || v != tc.wantVal || it.Flags != tc.wantFl {
				t.Fatalf("get = %q %v flags %d, want %q %v %d", v, ok, it.Flags, tc.wantVal, tc.wantHit, tc.wantFl)
			}
			if ok && r == Stored && it.CAS != cas {
				t.Errorf("get cas %d, set returned %d", it.CAS, cas)
			}
			if tc.exists && (tc.opt.Mode == ModeAppend || tc.opt.Mode == ModePrepend) && r == Stored && it.Exptime != t0+100 {
				t.Errorf("append changed exptime to %d", it.Exptime)
			}
		})
	}
}

func TestCAS(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	c1 := set(t, s, "k", "a", nil)
	c2 := set(t, s, "j", "b", nil)
	if c1 == 0 || c2 <= c1 {
		t.Fatalf("cas not increasing: %d %d", c1, c2)
	}
	if r, _ := s.Set([]byte("k"), []byte("x"), &SetOptions{Mode: ModeCAS, CAS: c1 + 100}); r != Exists {
		t.Fatalf("bad cas: %v", r)
	}
	r, c3 := s.Set([]byte("k"), []byte("x"), &SetOptions{Mode: ModeCAS, CAS: c1})
	if r != Stored || c3 <= c2 {
		t.Fatalf("good cas: %v %d", r, c3)
	}
	if r, _ := s.Set([]byte("k"), []byte("y"), &SetOptions{Mode: ModeCAS, CAS: c1}); r != Exists {
		t.Fatalf("reused cas: %v", r)
	}
	if r, _ := s.Set([]byte("nope"), []byte("y"), &SetOptions{Mode: ModeCAS, CAS: c1}); r != NotFound {
		t.Fatalf("cas miss: %v", r)
	}
	// Touch does not change the CAS; incr does.
	s.Touch([]byte("k"), 0)
	if _, it, _ := get(s, "k"); it.CAS != c3 {
		t.Fatalf("touch changed cas %d -> %d", c3, it.CAS)
	}
	st := s.Stats()
	if st.CasHits != 1 || st.CasBadval != 2 || st.CasMisses != 1 {
		t.Errorf("cas stats %d/%d/%d", st.CasHits, st.CasBadval, st.CasMisses)
	}

	// Invalidate: an older CAS stores the value marked stale, keeping TTL.
	s.Set([]byte("i"), []byte("v1"), &SetOptions{Exptime: t0 + 50})
	c5 := set(t, s, "i", "v2", &SetOptions{Exptime: t0 + 60})
	r, _ = s.Set([]byte("i"), []byte("v3"), &SetOptions{CAS: c5 - 1, Invalidate: true, Exptime: t0 + 999})
	if r != Stored {
		t.Fatalf("invalidate: %v", r)
	}
	v, it, _ := get(s, "i")
	if v != "v3" || !it.Stale || it.Exptime != t0+60 {
		t.Fatalf("invalidated item: %q %+v", v, it)
	}
	if r, _ := s.Set([]byte("i"), []byte("v4"), &SetOptions{CAS: it.CAS + 1, Invalidate: true}); r != Exists {
		t.Fatalf("invalidate with newer cas: %v", r)
	}
}

func TestDisableCAS(t *testing.T) {
	// memcached -C: CAS reads as 0, cas/ms C always EXISTS on a hit.
	s, _ := newTestStore(t, Config{DisableCAS: true})
	if cas := set(t, s, "k", "a", nil); cas != 0 {
		t.Fatalf("cas %d", cas)
	}
	_, it, _ := get(s, "k")
	if it.CAS != 0 {
		t.Fatalf("item cas %d", it.CAS)
	}
	for _, c := range []uint64{0, 1, 5} {
		if r, _ := s.Set([]byte("k"), []byte("b"), &SetOptions{Mode: ModeCAS, CAS: c}); r != Exists {
			t.Errorf("cas %d: %v", c, r)
		}
	}
	if r, _ := s.Set([]byte("m"), []byte("b"), &SetOptions{Mode: ModeCAS, CAS: 1}); r != NotFound {
		t.Errorf("cas miss: %v", r)
	}
	if r, _ := s.Set([]byte("k"), []byte("+"), &SetOptions{Mode: ModeAppend, CAS: 7}); r != Stored {
		t.Errorf("append ignores cas: %v", r)
	}
	if r := s.Delete([]byte("k"), 3, false, 0); r != Exists {
		t.Errorf("delete with cas: %v", r)
	}
	// Flush still works without CAS.
	s.FlushAll(0)
	if _, _, ok := get(s, "k"); ok {
		t.Error("flushed item survived")
	}
	set(t, s, "k", "a", nil)
	if _, _, ok := get(s, "k"); !ok {
		t.Error("item after flush lost")
	}
}

func TestArith(t *testing.T) {
	tests := []struct {
		val     string
		incr    bool
		delta   uint64
		want    uint64
		res     Result
		stored  string
		flagsIn uint32
	}{
		{"1", true, 1, 2, Stored, "2", 0},
		{"100", false, 1, 99, Stored, "99 ", 0},
		{"99", true, 1, 100, Stored, "100", 3},
		{"99 ", true, 1, 100, Stored, "100", 0},
		{" 99", true, 1, 100, Stored, "100", 0},
		{"5", false, 10, 0, Stored, "0", 0},
		{"0", false, 1, 0, Stored, "0", 0},
		{"18446744073709551615", true, 2, 1, Stored, "1                   ", 0},
		{"18446744073709551616", true, 1, 0, NonNumeric, "18446744073709551616", 0},
		{"018446744073709551615", true, 2, 1, Stored, "1                    ", 0},
		{"1 2 ", true, 1, 2, Stored, "2   ", 0},
		{"12abc", true, 1, 0, NonNumeric, "12abc", 0},
		{"abc", true, 1, 0, NonNumeric, "abc", 0},
		{"", true, 1, 0, NonNumeric, "", 0},
		{"-1", true, 1, 0, NonNumeric, "-1", 0},
		{"9", true, 18446744073709551615, 8, Stored, "8", 0},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q/%v/%d", tc.val, tc.incr, tc.delta), func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			c0 := set(t, s, "n", tc.val, &SetOptions{Flags: tc.flagsIn, Exptime: t0 + 100})
			n, cas, r := s.Arith([]byte("n"), tc.incr, tc.delta, nil)
			if r != tc.res || n != tc.want {
				t.Fatalf("got %d %v, want %d %v", n, r, tc.want, tc.res)
			}
			v, it, _ := get(s, "n")
			if v != tc.stored {
				t.Fatalf("stored %q, want %q", v, tc.stored)
			}
			if r == Stored && (cas <= c0 || it.CAS != cas || it.Flags != tc.flagsIn || it.Exptime != t0+100) {
				t.Fatalf("after arith cas %d (was %d, item %d), item %+v", cas, c0, it.CAS, it)
			}
		})
	}

	s, _ := newTestStore(t, Config{})
	if _, _, r := s.Arith([]byte("x"), true, 1, nil); r != NotFound {
		t.Fatalf("miss: %v", r)
	}
	n, cas, r := s.Arith([]byte("x"), false, 1, &ArithOptions{Vivify: true, Initial: 42, Exptime: t0 + 10})
	if r != Stored || n != 42 || cas == 0 {
		t.Fatalf("vivify: %d %d %v", n, cas, r)
	}
	if _, _, r := s.Arith([]byte("x"), true, 1, &ArithOptions{CAS: cas + 1}); r != Exists {
		t.Fatalf("cas mismatch: %v", r)
	}
	n, _, r = s.Arith([]byte("x"), true, 1, &ArithOptions{CAS: cas, Touch: true, NewExptime: t0 + 500})
	if v, it, _ := get(s, "x"); r != Stored || n != 43 || v != "43" || it.Exptime != t0+500 {
		t.Fatalf("incr with cas+touch: %d %v %q %+v", n, r, v, it)
	}
	// As memcached: the CAS mismatch is no hit, the vivified decr no miss.
	st := s.Stats()
	if st.IncrHits != 1 || st.IncrMisses != 1 || st.DecrMisses != 0 {
		t.Errorf("arith stats %+v", st)
	}
}

func TestExpiryAndTouch(t *testing.T) {
	s, clk := newTestStore(t, Config{})
	set(t, s, "a", "1", &SetOptions{Exptime: t0 + 10})
	set(t, s, "never", "1", nil)
	set(t, s, "past", "1", &SetOptions{Exptime: t0})
	set(t, s, "neg", "1", &SetOptions{Exptime: -1})
	for _, k := range []string{"past", "neg"} {
		if _, _, ok := get(s, k); ok {
			t.Errorf("%s: expired item returned", k)
		}
	}
	clk.advance(9 * time.Second)
	if _, _, ok := get(s, "a"); !ok {
		t.Fatal("expired early")
	}
	if r := s.Touch([]byte("a"), t0+20); r != Touched {
		t.Fatal(r)
	}
	clk.advance(5 * time.Second)
	if _, it, ok := get(s, "a"); !ok || it.Exptime != t0+20 {
		t.Fatal("touch did not extend")
	}
	// gat: touch through Get.
	if _, it, ok := s.Get(nil, []byte("a"), &GetOptions{Touch: true, NewExptime: t0 + 15}); !ok || it.Exptime != t0+15 {
		t.Fatal("gat")
	}
	clk.advance(2 * time.Second)
	if _, _, ok := get(s, "a"); ok {
		t.Fatal("gat exptime ignored")
	}
	if r := s.Touch([]byte("a"), 0); r != NotFound {
		t.Fatal("touch expired item", r)
	}
	clk.advance(1000 * time.Hour)
	if _, _, ok := get(s, "never"); !ok {
		t.Fatal("exptime 0 expired")
	}
	st := s.Stats()
	if st.GetExpired != 3 || st.TouchHits != 2 || st.TouchMisses != 1 || st.CurrItems != 1 {
		t.Errorf("stats: expired %d touch %d/%d items %d", st.GetExpired, st.TouchHits, st.TouchMisses, st.CurrItems)
	}
}

func TestFlushAll(t *testing.T) {
	s, clk := newTestStore(t, Config{})
	set(t, s, "old", "1", nil)
	s.FlushAll(0)
	set(t, s, "new", "1", nil) // same second as the flush: survives
	if _, _, ok := get(s, "old"); ok {
		t.Fatal("old survived flush")
	}
	if _, _, ok := get(s, "new"); !ok {
		t.Fatal("item stored right after flush lost")
	}
	if st := s.Stats(); st.GetFlushed != 1 {
		t.Errorf("get_flushed %d", st.GetFlushed)
	}

	// Delayed flush: items stored before its time go when it comes.
	s.FlushAll(clk.Now() + int64(10*time.Second))
	set(t, s, "before", "1", nil)
	clk.advance(9 * time.Second)
	for _, k := range []string{"new", "before"} {
		if _, _, ok := get(s, k); !ok {
			t.Fatalf("%s flushed early", k)
		}
	}
	clk.advance(time.Second)
	set(t, s, "after", "1", nil)
	for _, k := range []string{"new", "before"} {
		if _, _, ok := get(s, k); ok {
			t.Fatalf("%s survived delayed flush", k)
		}
	}
	if _, _, ok := get(s, "after"); !ok {
		t.Fatal("item stored after delayed flush lost")
	}
	// An immediate flush cancels a pending delayed one.
	s.FlushAll(clk.Now() + int64(5*time.Second))
	s.FlushAll(0)
	set(t, s, "x", "1", nil)
	clk.advance(10 * time.Second)
	if _, _, ok := get(s, "x"); !ok {
		t.Fatal("cancelled delayed flush still ran")
	}
}

func TestDelete(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	cas := set(t, s, "k", "v", nil)
	if r := s.Delete([]byte("k"), cas+1, false, 0); r != Exists {
		t.Fatal(r)
	}
	if r := s.Delete([]byte("k"), cas, false, 0); r != Deleted {
		t.Fatal(r)
	}
	if r := s.Delete([]byte("k"), 0, false, 0); r != NotFound {
		t.Fatal(r)
	}
	if _, _, ok := get(s, "k"); ok {
		t.Fatal("deleted item found")
	}
	st := s.Stats()
	if st.DeleteHits != 1 || st.DeleteMisses != 1 || st.CurrItems != 0 || st.Bytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestMetaTokens(t *testing.T) {
	s, clk := newTestStore(t, Config{})
	viv := &GetOptions{Vivify: true, VivifyExptime: t0 + 30}

	// N: the first miss vivifies and wins; later callers see Z.
	v, it, ok := s.Get(nil, []byte("k"), viv)
	if !ok || len(v) != 0 || !it.Won || it.TokenSent || it.Exptime != t0+30 {
		t.Fatalf("vivify: %v %+v", ok, it)
	}
	_, it, ok = s.Get(nil, []byte("k"), viv)
	if !ok || it.Won || !it.TokenSent {
		t.Fatalf("second vivify: %+v", it)
	}
	// Recaching it clears the token.
	set(t, s, "k", "data", &SetOptions{Exptime: t0 + 100})

	// R: remaining TTL below the threshold wins once.
	rec := &GetOptions{RecacheBelow: 30}
	if _, it, _ = s.Get(nil, []byte("k"), rec); it.Won {
		t.Fatal("won with 100 s left")
	}
	clk.advance(80 * time.Second)
	if _, it, _ = s.Get(nil, []byte("k"), rec); !it.Won || it.TokenSent {
		t.Fatalf("R win: %+v", it)
	}
	if _, it, _ = s.Get(nil, []byte("k"), rec); it.Won || !it.TokenSent {
		t.Fatalf("R second: %+v", it)
	}

	// md I: stale, CAS bumped, token cleared, TTL set; next reader wins.
	_, before, _ := get(s, "k")
	if r := s.Delete([]byte("k"), 0, true, t0+200); r != Deleted {
		t.Fatal(r)
	}
	v, it, ok = s.Get(nil, []byte("k"), &GetOptions{})
	if !ok || string(v) != "data" || !it.Stale || !it.Won || it.TokenSent || it.CAS <= before.CAS || it.Exptime != t0+200 {
		t.Fatalf("stale read: %q %v %+v", v, ok, it)
	}
	if _, it, _ = s.Get(nil, []byte("k"), &GetOptions{}); it.Won || !it.TokenSent || !it.Stale {
		t.Fatalf("second stale read: %+v", it)
	}
	// A plain store clears stale.
	set(t, s, "k", "fresh", nil)
	if _, it, _ = s.Get(nil, []byte("k"), &GetOptions{}); it.Stale || it.TokenSent || it.Won {
		t.Fatalf("after set: %+v", it)
	}
}

func TestFetchedAndLastAccess(t *testing.T) {
	s, clk := newTestStore(t, Config{})
	set(t, s, "k", "v", nil)
	clk.advance(5 * time.Second)
	_, it, _ := s.Get(nil, []byte("k"), &GetOptions{NoBump: true})
	if it.Fetched || it.LastAccess != t0 {
		t.Fatalf("NoBump read: %+v", it)
	}
	_, it, _ = get(s, "k")
	if it.Fetched {
		t.Fatal("NoBump set fetched")
	}
	_, it, _ = get(s, "k")
	if !it.Fetched || it.LastAccess != t0 {
		t.Fatalf("second read: %+v", it)
	}
	clk.advance(60 * time.Second)
	get(s, "k") // bumps: older than 60 s
	_, it, _ = get(s, "k")
	if it.LastAccess != t0+65 {
		t.Fatalf("last access %d, want %d", it.LastAccess, t0+65)
	}
}

func TestTooLarge(t *testing.T) {
	s, _ := newTestStore(t, Config{MaxItemSize: 1000})
	set(t, s, "k", "small", nil)
	big := bytes.Repeat([]byte("x"), 1000)
	if r, _ := s.Set([]byte("k"), big, &SetOptions{Mode: ModeAdd}); r != TooLarge {
		t.Fatal(r)
	}
	if _, _, ok := get(s, "k"); !ok {
		t.Fatal("add too large removed the item")
	}
	if r, _ := s.Set([]byte("k"), big, nil); r != TooLarge {
		t.Fatal(r)
	}
	if _, _, ok := get(s, "k"); ok {
		t.Fatal("set too large kept the old item")
	}
	set(t, s, "a", string(big[:900]), nil)
	if r, _ := s.Set([]byte("a"), big[:100], &SetOptions{Mode: ModeAppend}); r != NotStored {
		t.Fatal("append beyond max:", r)
	}
	if r, _ := s.Set(bytes.Repeat([]byte("k"), 251), nil, nil); r != TooLarge {
		t.Fatal("long key:", r)
	}
}

func TestLargeItems(t *testing.T) {
	// Items bigger than a page are chained over full-page chunks.
	s, _ := newTestStore(t, Config{MemoryLimit: 64 << 20, MaxItemSize: 8 << 20})
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 65534, 65535, 65536, 500_000, 1<<20 - 40, 1 << 20, 1<<20 + 1, 3<<20 + 12345, 8<<20 - 100} {
		val := make([]byte, n)
		rng.Read(val)
		key := "big" + strconv.Itoa(n)
		set(t, s, key, string(val), &SetOptions{Flags: uint32(n)})
		got, it, ok := s.Get(nil, []byte(key), nil)
		if !ok || !bytes.Equal(got, val) || it.Size != n || it.Flags != uint32(n) {
			t.Fatalf("size %d: ok %v len %d %+v", n, ok, len(got), it)
		}
		// Append across segment boundaries.
		set(t, s, key, "xyz", &SetOptions{Mode: ModeAppend})
		got, _, _ = s.Get(got[:0], []byte(key), nil)
		if !bytes.Equal(got[:n], val) || string(got[n:]) != "xyz" {
			t.Fatalf("append to %d bytes broke the value", n)
		}
		s.Delete([]byte(key), 0, false, 0)
	}
	st := s.Stats()
	if st.CurrItems != 0 || st.Bytes != 0 || st.TotalMalloced > 64<<20 {
		t.Fatalf("leak: %+v", st)
	}
	for _, c := range s.Classes() {
		if c.UsedChunks != 0 {
			t.Fatalf("class %d: %d chunks still used", c.ID, c.UsedChunks)
		}
	}
}

// fillClass stores n items of the same size, in key order.
func fillClass(t *testing.T, s *Store, prefix string, n, size int) {
	val := bytes.Repeat([]byte("v"), size)
	for i := 0; i < n; i++ {
		if r, _ := s.Set([]byte(prefix+strconv.Itoa(i)), val, nil); r != Stored {
			t.Fatalf("%s%d: %v", prefix, i, r)
		}
	}
}

// perPage is how many items of fillClass's shape fit in one page.
func perPage(s *Store, size int) int {
	l := s.layoutFor(len("k0000"), size, false)
	return s.classFor(l).perPage
}

func TestEvictionOrder(t *testing.T) {
	// One page: the store holds exactly per items of this size. Flat LRU.
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, NoLRUMaintainer: true})
	const size = 900
	per := perPage(s, size)
	fillClass(t, s, "k", per, size)
	cs := s.Classes()
	if cs[0].UsedChunks != per {
		t.Fatalf("page not full: %+v", cs[0])
	}
	clk.advance(2 * updateInterval * time.Second)
	// Read the oldest item: it must survive the next eviction.
	if _, _, ok := get(s, "k0"); !ok {
		t.Fatal("k0 missing")
	}
	fillClass(t, s, "n", 2, size)
	if _, _, ok := get(s, "k0"); !ok {
		t.Fatal("recently read item evicted")
	}
	for _, k := range []string{"k1", "k2"} {
		if _, _, ok := get(s, k); ok {
			t.Fatalf("%s (LRU tail) not evicted", k)
		}
	}
	if _, _, ok := get(s, "k3"); !ok {
		t.Fatal("k3 evicted out of order")
	}
	st := s.Stats()
	if st.Evictions != 2 || st.EvictedUnfetched != 2 || st.TotalMalloced != 1<<20 {
		t.Fatalf("stats %+v", st)
	}
	if c := s.Classes()[0]; c.Evicted != 2 || c.EvictedTime != 2*updateInterval || c.OldestAge != 2*updateInterval {
		t.Fatalf("class stats %+v", c)
	}
}

func TestReclaimExpiredFirst(t *testing.T) {
	// No maintenance goroutine: its LRU juggling could evict or reclaim
	// between the steps (it failed once in a loaded make test).
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Eviction: EvictionLRU, Maintenance: -1})
	const size = 900
	val := bytes.Repeat([]byte("v"), size)
	fillClass(t, s, "k", perPage(s, size)-4, size)
	// Four short-lived items at the head of the LRU (most recent).
	for i := 0; i < 4; i++ {
		set(t, s, "exp"+strconv.Itoa(i), string(val), &SetOptions{Exptime: t0 + 5})
	}
	clk.advance(10 * time.Second)
	// Expired items near the tail are reclaimed before live ones are
	// evicted; these are at the head, so the first store evicts k0.
	fillClass(t, s, "n", 1, size)
	if st := s.Stats(); st.Evictions != 1 || st.Reclaimed != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Now make the tail expired: touch k1..k3 to expire.
	for i := 1; i <= 3; i++ {
		s.Touch([]byte("k"+strconv.Itoa(i)), t0+1)
	}
	fillClass(t, s, "m", 3, size)
	st := s.Stats()
	if st.Evictions != 1 || st.Reclaimed != 3 {
		t.Fatalf("expired not reclaimed first: %+v", st)
	}
	if _, _, ok := get(s, "k4"); !ok {
		t.Fatal("live item evicted while expired ones existed")
	}
}

func TestDisableEvictions(t *testing.T) {
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, DisableEvictions: true})
	const size = 900
	fillClass(t, s, "k", perPage(s, size), size)
	val := bytes.Repeat([]byte("v"), size)
	if r, _ := s.Set([]byte("x"), val, nil); r != OutOfMemory {
		t.Fatal(r)
	}
	// Set over an existing key that cannot be stored removes it (memcached).
	if r, _ := s.Set([]byte("k5"), append(val, 'x'), nil); r != OutOfMemory {
		t.Fatal(r)
	}
	if _, _, ok := get(s, "k5"); ok {
		t.Fatal("failed set kept the old value")
	}
	// Expired items are still reclaimed.
	s.Touch([]byte("k0"), t0+1)
	clk.advance(2 * time.Second)
	if r, _ := s.Set([]byte("y"), val, nil); r != Stored {
		t.Fatal(r)
	}
	st := s.Stats()
	if st.OutOfMemory != 2 || st.Evictions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMemoryBound(t *testing.T) {
	const limit = 32 << 20
	s, _ := newTestStore(t, Config{MemoryLimit: limit, MaxItemSize: 2 << 20})
	rng := rand.New(rand.NewSource(2))
	val := make([]byte, 2<<20)
	written, oom := 0, 0
	keys := 0
	for written < 10*limit {
		n := rng.Intn(2000)
		switch rng.Intn(20) {
		case 0:
			n = rng.Intn(300_000)
		case 1:
			n = rng.Intn(2<<20 - 300)
		}
		key := []byte("key" + strconv.Itoa(rng.Intn(100000)))
		r, _ := s.Set(key, val[:n], &SetOptions{Flags: uint32(n)})
		switch r {
		case Stored:
			keys++
		case OutOfMemory:
			oom++
		default:
			t.Fatalf("set %d bytes: %v", n, r)
		}
		written += n
		if pages := s.npages.Load(); pages*int64(s.pageSize) > budgetWithFirstPages(s, limit) {
			t.Fatalf("%d pages exceed the limit", pages)
		}
	}
	st := s.Stats()
	if int64(st.TotalMalloced) > budgetWithFirstPages(s, limit) || st.Bytes > limit || st.Evictions == 0 {
		t.Fatalf("stats %+v", st)
	}
	var items, used, bytesSum uint64
	for _, c := range s.Classes() {
		items += uint64(c.Items)
		bytesSum += c.MemRequested
		used += uint64(c.UsedChunks * c.ChunkSize)
		if c.UsedChunks+c.FreeChunks != c.TotalChunks || c.TotalChunks != c.TotalPages*c.ChunksPerPage {
			t.Fatalf("class %+v", c)
		}
	}
	if items != st.CurrItems || bytesSum != st.Bytes || used > limit {
		t.Fatalf("classes disagree with stats: %d/%d items, %d/%d bytes", items, st.CurrItems, bytesSum, st.Bytes)
	}
	t.Logf("stored %d, oom %d, items %d, bytes %d, evictions %d", keys, oom, st.CurrItems, st.Bytes, st.Evictions)
}

func TestHashCollisionComparesKeys(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	// Force every key into one stripe slot chain by storing many keys;
	// then verify each returns its own value and missing keys miss.
	for i := 0; i < 20000; i++ {
		set(t, s, "k"+strconv.Itoa(i), strconv.Itoa(i), nil)
	}
	for i := 0; i < 20000; i++ {
		if v, _, ok := get(s, "k"+strconv.Itoa(i)); !ok || v != strconv.Itoa(i) {
			t.Fatalf("k%d = %q %v", i, v, ok)
		}
		if _, _, ok := get(s, "x"+strconv.Itoa(i)); ok {
			t.Fatal("phantom hit")
		}
	}
	for i := 0; i < 20000; i += 2 {
		s.Delete([]byte("k"+strconv.Itoa(i)), 0, false, 0)
	}
	for i := 0; i < 20000; i++ {
		_, _, ok := get(s, "k"+strconv.Itoa(i))
		if ok != (i%2 == 1) {
			t.Fatalf("k%d after deletes: %v", i, ok)
		}
	}
	// Same tag, different key: craft through the index directly.
	st, _, tag := s.stripeFor([]byte("k1"))
	st.mu.Lock()
	if _, h := s.find(st, tag, []byte("k1x")); h != 0 {
		t.Fatal("tag match returned another key")
	}
	st.mu.Unlock()
}

func TestConcurrent(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 4 << 20})
	var wg sync.WaitGroup
	ops := 3000
	if testing.Short() {
		ops = 1000
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			var buf []byte
			val := make([]byte, 3000)
			for i := 0; i < ops; i++ {
				key := []byte("k" + strconv.Itoa(rng.Intn(3000)))
				switch rng.Intn(8) {
				case 0, 1:
					var it Item
					var ok bool
					buf, it, ok = s.Get(buf[:0], key, nil)
					if ok && it.Size != len(buf) {
						t.Errorf("size %d, value %d", it.Size, len(buf))
					}
				case 2, 3:
					s.Set(key, val[:rng.Intn(len(val))], &SetOptions{Flags: 1})
				case 4:
					_, it, ok := s.Get(nil, key, nil)
					if ok {
						s.Set(key, []byte("1"), &SetOptions{Mode: ModeCAS, CAS: it.CAS})
					}
				case 5:
					s.Arith(key, rng.Intn(2) == 0, 3, &ArithOptions{Vivify: true})
				case 6:
					s.Set(key, []byte("ab"), &SetOptions{Mode: ModeAppend})
				case 7:
					if rng.Intn(10) == 0 {
						s.Delete(key, 0, rng.Intn(2) == 0, 0)
					} else {
						s.Touch(key, 0)
					}
				}
				if i%500 == 0 {
					s.Stats()
					s.Classes()
				}
			}
		}(g)
	}
	wg.Wait()
	st := s.Stats()
	if int64(st.TotalMalloced) > budgetWithFirstPages(s, 4<<20) {
		t.Fatalf("over budget: %+v", st)
	}
	// Counters in a single counter key stay exact under contention.
	s, _ = newTestStore(t, Config{})
	var cwg sync.WaitGroup
	for g := 0; g < 4; g++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for i := 0; i < 250; i++ {
				s.Arith([]byte("ctr"), true, 1, &ArithOptions{Vivify: true})
			}
		}()
	}
	cwg.Wait()
	if v, _, _ := get(s, "ctr"); v != "999" && v != "1000" {
		// The vivifying call stores the initial 0 without adding.
		t.Fatalf("counter %q", v)
	}
}

func BenchmarkGetHit(b *testing.B) {
	s, _ := newTestStore(b, Config{})
	key := []byte("some:key:12345")
	s.Set(key, bytes.Repeat([]byte("v"), 100), nil)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst, _, _ = s.Get(dst[:0], key, nil)
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	s, _ := newTestStore(b, Config{})
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
		s.Set(keys[i], bytes.Repeat([]byte("v"), 100), nil)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]byte, 0, 256)
		i := 0
		for pb.Next() {
			dst, _, _ = s.Get(dst[:0], keys[i&1023], nil)
			i++
		}
	})
}

func BenchmarkSetOverwrite(b *testing.B) {
	s, _ := newTestStore(b, Config{})
	key := []byte("some:key:12345")
	val := bytes.Repeat([]byte("v"), 100)
	b.ReportAllocs()
	for b.Loop() {
		s.Set(key, val, nil)
	}
}

func BenchmarkSetNewKeys(b *testing.B) {
	s, _ := newTestStore(b, Config{MemoryLimit: 16 << 20})
	val := bytes.Repeat([]byte("v"), 100)
	key := []byte("key:0000000000000000")
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		putHex(key[4:], i)
		i++
		s.Set(key, val, nil)
	}
}

// putHex writes v as 16 hex digits into b.
func putHex(b []byte, v uint64) {
	const digits = "0123456789abcdef"
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
}

// BenchmarkManyItems loads N small items (GOCACHED_BENCH_ITEMS, default
// 1M; 10M needs about 1.5 GB) and then times full garbage collections:
// ns/op is one runtime.GC() with all items live. It reports the heap object
// count and the store's per-item overhead, to show that GC work does not
// grow with N (compare N=100000 and N=1000000).
func BenchmarkManyItems(b *testing.B) {
	for _, ev := range []string{EvictionLRU, EvictionClock, EvictionS3Clock} {
		b.Run(ev, func(b *testing.B) { benchmarkManyItems(b, ev) })
	}
}

func benchmarkManyItems(b *testing.B, eviction string) {
	n := 1_000_000
	if v := os.Getenv("GOCACHED_BENCH_ITEMS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	const vlen = 10
	s, _ := newTestStore(b, Config{MemoryLimit: int64(n)*128 + 64<<20, Eviction: eviction})
	key := []byte("key:0000000000000000")
	val := bytes.Repeat([]byte("v"), vlen)
	for i := 0; i < n; i++ {
		putHex(key[4:], uint64(i))
		if r, _ := s.Set(key, val, nil); r != Stored {
			b.Fatalf("item %d: %v", i, r)
		}
	}
	st := s.Stats()
	if st.CurrItems != uint64(n) {
		b.Fatalf("%d items, want %d", st.CurrItems, n)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var before debug.GCStats
	debug.ReadGCStats(&before)
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.StopTimer()
	var after debug.GCStats
	debug.ReadGCStats(&after)
	var pause time.Duration
	if k := after.NumGC - before.NumGC; k > 0 {
		pause = (after.PauseTotal - before.PauseTotal) / time.Duration(k)
	}
	payload := uint64(len(key) + vlen)
	b.ReportMetric(float64(n), "items")
	b.ReportMetric(float64(ms.HeapObjects), "heap-objects")
	b.ReportMetric(float64(pause.Nanoseconds()), "gc-pause-ns")
	b.ReportMetric(float64(st.Bytes)/float64(n)-float64(payload), "header-B/item")
	b.ReportMetric(float64(st.HashBytes)/float64(n), "index-B/item")
	b.ReportMetric(float64(st.TotalMalloced+st.HashBytes)/float64(n)-float64(payload), "total-overhead-B/item")
	ring := 0 // s3clock's small-queue rings (s3clock.go)
	for _, c := range s.classes {
		c.mu.Lock()
		ring += 8 * len(c.small.e)
		c.mu.Unlock()
	}
	b.ReportMetric(float64(ring)/float64(n), "queue-B/item")
	runtime.KeepAlive(s)
}

// budgetWithFirstPages is the most memory a store may hold: its limit plus
// the first page of every class, which memcached grants past the limit.
func budgetWithFirstPages(s *Store, limit int64) int64 {
	return limit + int64(len(s.ClassSizes()))*int64(s.pageSize)
}

// TestStripeTable exercises one index stripe past 2^16 slots (where tags
// repeat) with inserts, lookups by handle and backward-shift deletions.
func TestStripeTable(t *testing.T) {
	var st stripe
	st.init(initStripeSlots)
	rng := rand.New(rand.NewSource(3))
	const n = 100_000
	tags := make([]uint32, n+1)
	for h := uint32(1); h <= n; h++ {
		tags[h] = rng.Uint32()
		st.insert(tags[h], h)
	}
	if len(st.tags) <= 1<<16 || st.count != n {
		t.Fatalf("%d slots, %d items", len(st.tags), st.count)
	}
	for h := uint32(1); h <= n; h += 2 {
		pos := st.posOf(tags[h], h)
		if pos < 0 {
			t.Fatalf("handle %d not found", h)
		}
		st.removeAt(pos)
	}
	for h := uint32(1); h <= n; h++ {
		if found := st.posOf(tags[h], h) >= 0; found != (h%2 == 0) {
			t.Fatalf("handle %d: found %v", h, found)
		}
	}
	if st.count != n/2 {
		t.Fatalf("%d items", st.count)
	}
}

// TestGetMiss checks Item.Miss: why a Get found no live item, the second
// lookup of a dead key finding it already removed.
func TestGetMiss(t *testing.T) {
	s, clk := newTestStore(t, Config{})
	set(t, s, "flushed", "1", nil)
	set(t, s, "vexp", "1", &SetOptions{Exptime: t0 + 1})
	s.FlushAll(0)
	set(t, s, "exp", "1", &SetOptions{Exptime: t0 + 1}) // after the flush
	clk.advance(2 * time.Second)
	set(t, s, "live", "1", nil)
	viv := &GetOptions{Vivify: true, VivifyExptime: t0 + 30}
	for _, tc := range []struct {
		key  string
		opt  *GetOptions
		ok   bool
		miss Miss
	}{
		{"live", nil, true, MissNone},
		{"none", nil, false, MissAbsent},
		{"exp", nil, false, MissExpired},
		{"exp", nil, false, MissAbsent},
		{"flushed", &GetOptions{Touch: true, NewExptime: t0 + 10}, false, MissFlushed},
		{"flushed", &GetOptions{Peek: true}, false, MissAbsent},
		{"vexp", viv, true, MissFlushed}, // flushed before it expired
		{"vexp", viv, true, MissNone},
		{"vnew", viv, true, MissAbsent},
	} {
		_, it, ok := s.Get(nil, []byte(tc.key), tc.opt)
		if ok != tc.ok || it.Miss != tc.miss {
			t.Errorf("%s %+v: ok %v miss %d, want %v %d", tc.key, tc.opt, ok, it.Miss, tc.ok, tc.miss)
		}
	}
}

// TestExpiredMemoryReused checks that expired items give their memory back
// before new memory is taken, as memcached's do_item_alloc_pull and LRU
// maintainer do (memcached 1.6.18: ten 66560-byte items with a 2 s TTL,
// 4 s, ten more: total_malloced stays 1 MB, reclaimed 10): by an
// allocation that would take a new page, by the maintainer's background
// reclaiming, and under the flat LRU by every allocation.
func TestExpiredMemoryReused(t *testing.T) {
	const size = 60000
	for _, tt := range []struct {
		name       string
		cfg        Config
		maintainer bool // run one maintainer pass before the second fill
		fill       int  // items stored and expired before the second fill (-1: a page's worth)
		reclaimed  uint64
	}{
		// Each policy: the page is full, the next store reuses the
		// dead tail instead of taking a page.
		{name: "segmented", cfg: Config{Eviction: EvictionLRU}, fill: -1},
		{name: "flat", cfg: Config{NoLRUMaintainer: true}, fill: -1},
		{name: "s3fifo", cfg: Config{Eviction: EvictionS3FIFO}, fill: -1},
		// Without lists, a page's worth of chunks is searched in place.
		{name: "s3clock", cfg: Config{}, fill: -1},
		{name: "clock", cfg: Config{Eviction: EvictionClock}, fill: -1},
		// The maintainer reclaims every dead tail item in the background.
		{name: "maintainer", cfg: Config{Eviction: EvictionLRU}, maintainer: true, fill: 3, reclaimed: 3},
		// The flat LRU reclaims at COLD's tail before every allocation,
		// even with room left in the page: the first store frees all three.
		{name: "flat with room", cfg: Config{NoLRUMaintainer: true}, fill: 3, reclaimed: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Maintenance = -1 // no background goroutine: the test runs the maintainer
			s, clk := newTestStore(t, tt.cfg)
			per := perPage(s, size)
			n := tt.fill
			if n < 0 {
				n = per
				tt.reclaimed = uint64(per)
			}
			val := string(bytes.Repeat([]byte("v"), size))
			for i := 0; i < n; i++ {
				set(t, s, "e"+strconv.Itoa(i), val, &SetOptions{Exptime: t0 + 2})
			}
			malloced := s.Stats().TotalMalloced
			clk.advance(4 * time.Second)
			if tt.maintainer {
				s.maintainLRU()
				if st := s.Stats(); st.CurrItems != 0 || st.Reclaimed != uint64(n) {
					t.Fatalf("after the maintainer: curr_items %d, reclaimed %d; want 0, %d", st.CurrItems, st.Reclaimed, n)
				}
			}
			for i := 0; i < n; i++ {
				set(t, s, "n"+strconv.Itoa(i), val, nil)
			}
			st := s.Stats()
			if st.TotalMalloced != malloced {
				t.Errorf("total_malloced %d, want %d: new memory taken while expired items held it", st.TotalMalloced, malloced)
			}
			if st.Reclaimed != tt.reclaimed || st.Evictions != 0 {
				t.Errorf("reclaimed %d, evictions %d; want %d, 0", st.Reclaimed, st.Evictions, tt.reclaimed)
			}
		})
	}
}
