package slab

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func skipNoMmap(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memory files need Linux")
	}
}

func persistCfg(path, eviction string) Config {
	return Config{MemoryLimit: 4 << 20, MaxItemSize: 3 << 20, MemoryFile: path, Maintenance: -1, Eviction: eviction}
}

// forListsAndClock runs test under the segmented LRU (items in lists)
// and under CLOCK (items found in place).
func forListsAndClock(t *testing.T, test func(t *testing.T, eviction string)) {
	for _, ev := range []string{EvictionLRU, EvictionClock, EvictionS3Clock} {
		t.Run(ev, func(t *testing.T) { test(t, ev) })
	}
}

// reopen opens cfg's memory file in a new store, after releasing the
// lock of the stores that hold it.
func reopen(t *testing.T, cfg Config, clk *fakeClock, old ...*Store) *Store {
	t.Helper()
	for _, o := range old {
		if err := o.closeMemoryFile(); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Clock = clk
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPersistRoundTrip(t *testing.T) { forListsAndClock(t, testPersistRoundTrip) }

func testPersistRoundTrip(t *testing.T, eviction string) {
	skipNoMmap(t)
	path := filepath.Join(t.TempDir(), "mem")
	cfg := persistCfg(path, eviction)
	s, clk := newTestStore(t, cfg)
	if r := s.Restore(); r.Restored || r.Reason == "" {
		t.Fatalf("fresh file: %+v", r)
	}
	set := func(key, val string, flags uint32, exp int64) uint64 {
		t.Helper()
		r, cas := s.Set([]byte(key), []byte(val), &SetOptions{Flags: flags, Exptime: exp})
		if r != Stored {
			t.Fatalf("set %s: %v", key, r)
		}
		return cas
	}
	set("flushed", "x", 0, 0)
	s.FlushAll(0)
	casA := set("a", "alpha", 7, 0)
	casB := set("b", "beta", 0, t0+100)
	set("short", "gone soon", 1, t0+5)
	big := bytes.Repeat([]byte("0123456789abcdef"), (2<<20)/16+5) // chained
	if r, _ := s.Set([]byte("big"), big, &SetOptions{Flags: 9}); r != Stored {
		t.Fatalf("set big: %v", r)
	}
	set("deleted", "x", 0, 0)
	if r := s.Delete([]byte("deleted"), 0, false, 0); r != Deleted {
		t.Fatal(r)
	}
	for i := range 500 {
		set(fmt.Sprintf("k%d", i), strings.Repeat("v", i), uint32(i), 0)
	}
	lastCAS := s.cas.Load()
	if err := s.Persist(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".meta"); err != nil {
		t.Fatal(err)
	}

	clk.advance(10 * time.Second)
	s2 := reopen(t, cfg, clk, s)
	r := s2.Restore()
	if !r.Restored || r.Items != 503 || r.Dropped != 2 || r.SavedAt.Unix() != t0 {
		t.Fatalf("restore: %+v", r)
	}
	if _, err := os.Stat(path + ".meta"); !os.IsNotExist(err) {
		t.Fatalf("metadata not removed after load: %v", err)
	}
	check := func(key, want string, flags uint32, cas uint64) {
		t.Helper()
		v, it, ok := get(s2, key)
		if !ok || v != want || it.Flags != flags || (cas != 0 && it.CAS != cas) {
			t.Fatalf("get %s = %q %+v %v, want %q flags %d cas %d", key, v, it, ok, want, flags, cas)
		}
	}
	check("a", "alpha", 7, casA)
	check("b", "beta", 0, casB)
	if _, it, _ := get(s2, "b"); it.Exptime != t0+100 {
		t.Fatalf("b exptime %d", it.Exptime)
	}
	check("big", string(big), 9, 0)
	for i := range 500 {
		check(fmt.Sprintf("k%d", i), strings.Repeat("v", i), uint32(i), 0)
	}
	for _, k := range []string{"flushed", "short", "deleted"} {
		if _, _, ok := get(s2, k); ok {
			t.Fatalf("%s restored", k)
		}
	}
	if st := s2.Stats(); st.CurrItems != 503 {
		t.Fatalf("curr_items %d", st.CurrItems)
	}
	// The CAS sequence carries on; a new flush still works.
	if _, cas := s2.Set([]byte("new"), []byte("n"), &SetOptions{}); cas <= lastCAS {
		t.Fatalf("CAS %d after restart, last saved %d", cas, lastCAS)
	}
	s2.FlushAll(0)
	if _, _, ok := get(s2, "a"); ok {
		t.Fatal("a survived flush_all")
	}
	// A restart without Persist starts empty.
	s3 := reopen(t, cfg, clk, s2)
	if r := s3.Restore(); r.Restored || !strings.Contains(r.Reason, "no metadata") {
		t.Fatalf("restart without persist: %+v", r)
	}
	if _, _, ok := get(s3, "k1"); ok {
		t.Fatal("item without persist")
	}
}

func TestPersistMismatch(t *testing.T) {
	skipNoMmap(t)
	path := filepath.Join(t.TempDir(), "mem")
	cfg := persistCfg(path, "")
	s, clk := newTestStore(t, cfg)
	s.Set([]byte("a"), []byte("1"), &SetOptions{})
	if err := s.Persist(); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.GrowthFactor = 1.5
	s2 := reopen(t, cfg2, clk, s)
	if r := s2.Restore(); r.Restored || !strings.Contains(r.Reason, "settings changed") {
		t.Fatalf("mismatch: %+v", r)
	}
	if _, _, ok := get(s2, "a"); ok {
		t.Fatal("item restored across a settings change")
	}
	if _, err := New(cfg2); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second store on the same file: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(s2.mem.slots) * int64(s2.pageSize); fi.Size() != want {
		t.Fatalf("file size %d, want %d", fi.Size(), want)
	}

	// A damaged metadata file is refused.
	s3 := reopen(t, cfg, clk, s2)
	s3.Set([]byte("a"), []byte("1"), &SetOptions{})
	if err := s3.Persist(); err != nil {
		t.Fatal(err)
	}
	meta, _ := os.ReadFile(path + ".meta")
	meta[20] ^= 1
	os.WriteFile(path+".meta", meta, 0o600)
	s4 := reopen(t, cfg, clk, s3)
	if r := s4.Restore(); r.Restored || !strings.Contains(r.Reason, "checksum") {
		t.Fatalf("damaged meta: %+v", r)
	}
}

// TestPersistChurn restores a store that evicted, deleted, overwrote and
// moved pages, and compares it with the items live at Persist.
func TestPersistChurn(t *testing.T) { forListsAndClock(t, testPersistChurn) }

func testPersistChurn(t *testing.T, eviction string) {
	skipNoMmap(t)
	path := filepath.Join(t.TempDir(), "mem")
	cfg := persistCfg(path, eviction)
	cfg.MemoryLimit = 2 << 20
	s, clk := newTestStore(t, cfg)
	rng := rand.New(rand.NewSource(1))
	val := func(k, n int) []byte { return bytes.Repeat([]byte{byte('a' + k%26)}, n) }
	sizes := map[int]int{}
	for i := range 20000 {
		k := rng.Intn(3000)
		key := []byte(fmt.Sprintf("key%d", k))
		switch rng.Intn(10) {
		case 0:
			s.Delete(key, 0, false, 0)
		default:
			n := rng.Intn(2000)
			if rng.Intn(100) == 0 {
				n = 1<<20 + rng.Intn(1<<20)
			}
			sizes[k] = n
			s.Set(key, val(k, n), &SetOptions{Flags: uint32(k), Exptime: int64(t0 + 1 + rng.Intn(1000))})
		}
		if i%5000 == 4999 {
			clk.advance(100 * time.Second)
			for id := 1; id <= len(s.classes); id++ {
				if s.classPages(id) >= 2 {
					s.movePage(id, 0)
					break
				}
			}
		}
	}
	live := map[string]int{}
	for k := range 3000 {
		key := fmt.Sprintf("key%d", k)
		if v, _, ok := s.Get(nil, []byte(key), &GetOptions{NoBump: true}); ok {
			if !bytes.Equal(v, val(k, sizes[k])) {
				t.Fatalf("%s: wrong value before persist", key)
			}
			live[key] = len(v)
		}
	}
	if len(live) == 0 {
		t.Fatal("nothing live")
	}
	if err := s.Persist(); err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, cfg, clk, s)
	if r := s2.Restore(); !r.Restored || r.Items != len(live) {
		t.Fatalf("restore %+v, want %d items", r, len(live))
	}
	for k := range 3000 {
		key := fmt.Sprintf("key%d", k)
		v, it, ok := s2.Get(nil, []byte(key), nil)
		n, want := live[key]
		if ok != want || ok && (len(v) != n || !bytes.Equal(v, val(k, n)) || it.Flags != uint32(k)) {
			t.Fatalf("%s: got %d bytes %v, want %d %v", key, len(v), ok, n, want)
		}
	}
	// The restored store keeps working: fill it past the limit.
	for i := range 5000 {
		s2.Set([]byte(fmt.Sprintf("new%d", i)), val(i, rng.Intn(3000)), &SetOptions{})
	}
	st := s2.Stats()
	if st.TotalMalloced > uint64(s2.mem.slots)*uint64(s2.pageSize) {
		t.Fatalf("malloced %d past the file", st.TotalMalloced)
	}
}
