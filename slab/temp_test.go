package slab

import (
	"bytes"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// tempSet stores a value of size bytes under key, expiring at exp.
func tempSet(t *testing.T, s *Store, key string, size int, exp int64) Result {
	t.Helper()
	r, _ := s.Set([]byte(key), bytes.Repeat([]byte("v"), size), &SetOptions{Exptime: exp})
	return r
}

func TestTempLink(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		exp    int64 // relative to now; 0 = never
		isTemp bool
	}{
		{"off", Config{}, 5, false},
		{"below", Config{TempLRU: true, TemporaryTTL: 10}, 5, true},
		{"equal", Config{TempLRU: true, TemporaryTTL: 10}, 10, true}, // memcached: <=
		{"above", Config{TempLRU: true, TemporaryTTL: 10}, 11, false},
		{"never expires", Config{TempLRU: true, TemporaryTTL: 10}, 0, false},
		{"ttl 0", Config{TempLRU: true}, 1, false},
		{"flat", Config{TempLRU: true, TemporaryTTL: 10, NoLRUMaintainer: true}, 5, true},
		{"flat, long", Config{TempLRU: true, TemporaryTTL: 10, NoLRUMaintainer: true}, 50, false},
		{"s3fifo", Config{TempLRU: true, TemporaryTTL: 10, Eviction: EvictionS3FIFO}, 5, true},
		{"clock", Config{TempLRU: true, TemporaryTTL: 10, Eviction: EvictionClock}, 5, true},
		{"s3clock", Config{TempLRU: true, TemporaryTTL: 10, Eviction: EvictionS3Clock}, 5, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Maintenance = -1
			s, clk := newTestStore(t, tc.cfg)
			exp := tc.exp
			if exp != 0 {
				exp += clk.sec()
			}
			set(t, s, "k", "v", &SetOptions{Exptime: exp})
			if got := segOf(s, "k"); (got == segTemp) != tc.isTemp || got < 0 {
				t.Fatalf("item in list %d, TEMP wanted: %v", got, tc.isTemp)
			}
			checkStore(t, s)
		})
	}
}

func TestTempTTLSettings(t *testing.T) {
	tests := []struct {
		cfg    Config
		ttl    int
		tempOn bool
	}{
		{Config{}, 61, false},
		{Config{TemporaryTTL: 30}, 30, false},
		{Config{TempLRU: true}, 0, true},
		{Config{TempLRU: true, TemporaryTTL: 10}, 10, true},
	}
	for _, tc := range tests {
		tc.cfg.Maintenance = -1
		s, _ := newTestStore(t, tc.cfg)
		if ttl, on := s.TempTTL(); ttl != tc.ttl || on != tc.tempOn {
			t.Errorf("%+v: TempTTL() = %d, %v; want %d, %v", tc.cfg, ttl, on, tc.ttl, tc.tempOn)
		}
	}
	// "lru temp_ttl": switching off keeps the value and the items already
	// in TEMP; new items go to HOT.
	s, clk := newTestStore(t, Config{Maintenance: -1, TempLRU: true, TemporaryTTL: 10})
	set(t, s, "a", "v", &SetOptions{Exptime: clk.sec() + 5})
	s.SetTempTTL(10, false)
	set(t, s, "b", "v", &SetOptions{Exptime: clk.sec() + 5})
	if ttl, on := s.TempTTL(); ttl != 10 || on {
		t.Fatalf("after off: %d %v", ttl, on)
	}
	if segOf(s, "a") != segTemp || segOf(s, "b") == segTemp {
		t.Fatalf("a in %d, b in %d", segOf(s, "a"), segOf(s, "b"))
	}
	s.SetTempTTL(20, true)
	set(t, s, "c", "v", &SetOptions{Exptime: clk.sec() + 20})
	if segOf(s, "c") != segTemp {
		t.Fatalf("c in %d", segOf(s, "c"))
	}
}

// TestTempReadsDoNotMove checks that reads mark TEMP items but never move
// them, and count as hits_to_temp.
func TestTempReadsDoNotMove(t *testing.T) {
	for _, noMaint := range []bool{false, true} {
		s, clk := newTestStore(t, Config{Maintenance: -1, TempLRU: true, TemporaryTTL: 100, NoLRUMaintainer: noMaint})
		set(t, s, "k", "v", &SetOptions{Exptime: clk.sec() + 100})
		for range 3 {
			clk.advance(61 * time.Second / 3)
			if _, _, ok := get(s, "k"); !ok {
				t.Fatal("miss")
			}
		}
		if segOf(s, "k") != segTemp {
			t.Fatalf("flat %v: item moved to %d", noMaint, segOf(s, "k"))
		}
		cs := s.Classes()[0]
		if cs.HitsToTemp != 3 || cs.NumberTemp != 1 || cs.NumberHot+cs.NumberWarm+cs.NumberCold != 0 {
			t.Fatalf("flat %v: %+v", noMaint, cs)
		}
		checkStore(t, s)
	}
}

// TestTempNotEvicted fills one page: TEMP items are never evicted, so a
// class holding only TEMP items answers OutOfMemory, and one holding both
// evicts the others.
func TestTempNotEvicted(t *testing.T) {
	const size = 900
	tests := []struct {
		name    string
		cfg     Config
		temp    int // TEMP items of the page
		wantOOM bool
	}{
		{"all temp", Config{Eviction: EvictionLRU}, -1, true},
		{"all temp, flat", Config{NoLRUMaintainer: true}, -1, true},
		{"all temp, s3fifo", Config{Eviction: EvictionS3FIFO}, -1, true},
		{"half temp", Config{Eviction: EvictionLRU}, 0, false},
		{"half temp, flat", Config{NoLRUMaintainer: true}, 0, false},
		{"half temp, s3fifo", Config{Eviction: EvictionS3FIFO}, 0, false},
		{"all temp, clock", Config{Eviction: EvictionClock}, -1, true},
		{"half temp, clock", Config{Eviction: EvictionClock}, 0, false},
		{"all temp, s3clock", Config{Eviction: EvictionS3Clock}, -1, true},
		{"half temp, s3clock", Config{Eviction: EvictionS3Clock}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.MemoryLimit, cfg.Maintenance = 1<<20, -1
			cfg.TempLRU, cfg.TemporaryTTL = true, 60
			s, clk := newTestStore(t, cfg)
			per := perPage(s, size)
			ntemp := tc.temp
			if ntemp < 0 {
				ntemp = per
			} else {
				ntemp = per / 2
			}
			for i := range per {
				exp := int64(0)
				if i < ntemp {
					exp = clk.sec() + 30
				}
				if r := tempSet(t, s, "k"+strconv.Itoa(i), size, exp); r != Stored {
					t.Fatalf("k%d: %v", i, r)
				}
			}
			r := tempSet(t, s, "more", size, 0)
			if got := r == OutOfMemory; got != tc.wantOOM {
				t.Fatalf("set past the page: %v", r)
			}
			cs := classStatsFor(t, s, size)
			if cs.NumberTemp != ntemp {
				t.Fatalf("number_temp %d, want %d", cs.NumberTemp, ntemp)
			}
			for i := range ntemp {
				if _, _, ok := get(s, "k"+strconv.Itoa(i)); !ok {
					t.Fatalf("TEMP item k%d evicted", i)
				}
			}
			if tc.wantOOM && (cs.OutOfMemory != 1 || cs.Evicted != 0) {
				t.Fatalf("outofmemory %d evicted %d", cs.OutOfMemory, cs.Evicted)
			}
			if !tc.wantOOM && cs.Evicted != 1 {
				t.Fatalf("evicted %d", cs.Evicted)
			}
			checkStore(t, s)
		})
	}
}

// TestTempReclaim checks the three ways expired TEMP items are freed: the
// maintenance tick (from the tail, stopping at a live item), the crawler
// (anywhere in the list) and an allocation that finds nothing to evict.
func TestTempReclaim(t *testing.T) {
	const size = 900
	s, clk := newTestStore(t, Config{MemoryLimit: 1 << 20, Maintenance: -1, TempLRU: true, TemporaryTTL: 60, Eviction: EvictionLRU})
	per := perPage(s, size)
	now := clk.sec()
	// Tail first: per-10 items expiring at +10, one at +50 (it stops the
	// tail walk), then 9 more at +10.
	for i := range per {
		exp := now + 10
		if i == per-10 {
			exp = now + 50
		}
		if r := tempSet(t, s, "k"+strconv.Itoa(i), size, exp); r != Stored {
			t.Fatalf("k%d: %v", i, r)
		}
	}
	if r := tempSet(t, s, "x", size, 0); r != OutOfMemory {
		t.Fatalf("full of live TEMP items: %v", r)
	}
	clk.advance(11 * time.Second)
	// An allocation reclaims one expired TEMP item rather than fail.
	if r := tempSet(t, s, "x", size, 0); r != Stored {
		t.Fatalf("after expiry: %v", r)
	}
	// Ticks reclaim up to 500 each, until the live item.
	s.maintain()
	if got := classStatsFor(t, s, size).Expired; got != min(501, uint64(per-10)) {
		t.Fatalf("reclaimed %d after one tick", got)
	}
	for range per / tempReclaimMax {
		s.maintain()
	}
	cs := classStatsFor(t, s, size)
	if cs.Expired != uint64(per-10) || cs.NumberTemp != 10 {
		t.Fatalf("after ticks: reclaimed %d, number_temp %d (per page %d)", cs.Expired, cs.NumberTemp, per)
	}
	// The crawler frees the rest.
	if _, reclaimed := s.crawl(s.classes); reclaimed != 9 {
		t.Fatalf("crawler reclaimed %d", reclaimed)
	}
	if cs := classStatsFor(t, s, size); cs.NumberTemp != 1 || cs.ExpiredUnfetched != uint64(per-10) {
		t.Fatalf("after crawl: %+v", cs)
	}
	checkStore(t, s)
}

func TestEvictionHook(t *testing.T) {
	const size = 900
	for _, tc := range []struct {
		cfg  Config
		read bool // read k0 once: it stays the victim (not with S3-FIFO)
	}{
		{Config{Eviction: EvictionLRU}, true},
		{Config{NoLRUMaintainer: true}, true},
		{Config{Eviction: EvictionS3FIFO}, false},
		{Config{Eviction: EvictionClock}, false},
		{Config{}, false}, // s3clock: k0 is the oldest of the small queue
	} {
		cfg := tc.cfg
		cfg.MemoryLimit, cfg.Maintenance = 1<<20, -1
		s, clk := newTestStore(t, cfg)
		per := perPage(s, size)
		var got []Eviction
		s.SetEvictionHook(func(e Eviction) {
			e.Key = bytes.Clone(e.Key)
			got = append(got, e)
		})
		if r := tempSet(t, s, "k0", size, clk.sec()+1000); r != Stored {
			t.Fatal(r)
		}
		if tc.read {
			get(s, "k0")
		}
		clk.advance(5 * time.Second)
		for i := 1; i <= per; i++ {
			if r := tempSet(t, s, "k"+strconv.Itoa(i), size, 0); r != Stored {
				t.Fatalf("k%d: %v", i, r)
			}
		}
		if len(got) != 1 {
			t.Fatalf("%+v: %d evictions reported", cfg, len(got))
		}
		want := Eviction{Key: []byte("k0"), Exptime: t0 + 1000, LastAccess: t0, Now: t0 + 5,
			Fetched: tc.read, Class: classStatsFor(t, s, size).ID, ValueLen: size}
		if e := got[0]; !bytes.Equal(e.Key, want.Key) || e.Exptime != want.Exptime || e.LastAccess != want.LastAccess ||
			e.Now != want.Now || e.Fetched != want.Fetched || e.Class != want.Class || e.ValueLen != want.ValueLen {
			t.Fatalf("%+v: got %+v, want %+v", cfg, e, want)
		}
		s.SetEvictionHook(nil)
		tempSet(t, s, "more", size, 0)
		if len(got) != 1 || s.Stats().Evictions != 2 {
			t.Fatalf("hook called after removal: %d, evictions %d", len(got), s.Stats().Evictions)
		}
	}
}

func TestPersistTemp(t *testing.T) {
	skipNoMmap(t)
	cfg := persistCfg(filepath.Join(t.TempDir(), "mem"), "")
	cfg.TempLRU, cfg.TemporaryTTL = true, 60
	s, clk := newTestStore(t, cfg)
	set(t, s, "temp", "t", &SetOptions{Exptime: clk.sec() + 30})
	set(t, s, "cold", "c", nil)
	if err := s.Persist(); err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, cfg, clk, s)
	if r := s2.Restore(); !r.Restored || r.Items != 2 {
		t.Fatalf("restore: %+v", r)
	}
	if segOf(s2, "temp") != segTemp || segOf(s2, "cold") == segTemp {
		t.Fatalf("temp in %d, cold in %d", segOf(s2, "temp"), segOf(s2, "cold"))
	}
	checkStore(t, s2)
}
