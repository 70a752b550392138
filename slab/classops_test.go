package slab

import (
	"fmt"
	"strings"
	"testing"
)

// classOps returns the command counters of the class holding an item with
// key and a value of vlen bytes (zero when the class has no page).
func classOps(s *Store, key string, vlen int) ClassStats {
	id := s.classFor(s.layoutFor(len(key), vlen, false)).id
	for _, c := range s.Classes() {
		if c.ID == id {
			return ClassStats{CmdSet: c.CmdSet, DeleteHits: c.DeleteHits,
				IncrHits: c.IncrHits, DecrHits: c.DecrHits, CasHits: c.CasHits,
				CasBadval: c.CasBadval, TouchHits: c.TouchHits,
				HitsToHot: c.HitsToHot + c.HitsToWarm + c.HitsToCold + c.HitsToTemp}
		}
	}
	return ClassStats{}
}

// TestClassOpCounters checks the per-class counters of "stats slabs"
// against memcached's slab_stats: what counts, and in which class.
func TestClassOpCounters(t *testing.T) {
	big := strings.Repeat("v", 3000) // a class of its own
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store)
		key  string // the class checked: key's item with a value of vlen
		vlen int
		want ClassStats // HitsToHot holds the get hits of every list
	}{
		{"set stored or not", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			s.Set([]byte("k"), []byte("2"), &SetOptions{Mode: ModeAdd})
			s.Set([]byte("x"), []byte("2"), &SetOptions{Mode: ModeReplace})
			s.CountSet([]byte("k"), 1, 0) // a bad data chunk
		}, "k", 1, ClassStats{CmdSet: 4}},
		{"set too large counts nowhere", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			s.Set([]byte("k"), make([]byte, 2<<20), nil)
			s.CountSet([]byte("k"), 2<<20, 0)
		}, "k", 1, ClassStats{CmdSet: 1}},
		{"set counts in the new item's class", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			set(t, s, "k", big, nil)
		}, "k", len(big), ClassStats{CmdSet: 1}},
		{"append counts in the appended part's class", func(t *testing.T, s *Store) {
			set(t, s, "k", big, nil)
			set(t, s, "k", "1", &SetOptions{Mode: ModeAppend})
		}, "k", len(big), ClassStats{CmdSet: 1}},
		{"cas hit in the replaced item's class", func(t *testing.T, s *Store) {
			c := set(t, s, "k", "1", nil)
			s.Set([]byte("k"), []byte(big), &SetOptions{Mode: ModeCAS, CAS: c})
		}, "k", 1, ClassStats{CmdSet: 1, CasHits: 1}},
		{"cas mismatch and miss", func(t *testing.T, s *Store) {
			c := set(t, s, "k", "1", nil)
			s.Set([]byte("k"), []byte("2"), &SetOptions{Mode: ModeCAS, CAS: c + 1})
			s.Set([]byte("k"), []byte("2"), &SetOptions{CAS: c + 1}) // set with C
			s.Set([]byte("x"), []byte("2"), &SetOptions{Mode: ModeCAS, CAS: c})
			s.Set([]byte("k"), []byte("2"), &SetOptions{Mode: ModeAppend, CAS: c + 1})
		}, "k", 1, ClassStats{CmdSet: 5, CasBadval: 2}},
		{"stale cas is a hit", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			c := set(t, s, "k", "2", nil)
			s.Set([]byte("k"), []byte("3"), &SetOptions{CAS: c - 1, Invalidate: true})
		}, "k", 1, ClassStats{CmdSet: 3, CasHits: 1}},
		{"delete", func(t *testing.T, s *Store) {
			c := set(t, s, "k", "1", nil)
			s.Delete([]byte("k"), c+1, false, 0) // mismatch
			s.Delete([]byte("k"), 0, true, 0)    // md I keeps the item
			s.Delete([]byte("k"), 0, false, 0)
			s.Delete([]byte("k"), 0, false, 0) // miss
		}, "k", 1, ClassStats{CmdSet: 1, DeleteHits: 1}},
		{"incr and decr", func(t *testing.T, s *Store) {
			c := set(t, s, "k", "5", nil)
			set(t, s, "t", "x", nil)
			s.Arith([]byte("k"), true, 1, nil)
			s.Arith([]byte("k"), false, 1, nil)
			s.Arith([]byte("k"), false, 1, &ArithOptions{CAS: c}) // stale CAS
			s.Arith([]byte("t"), true, 1, nil)                    // non-numeric
			s.Arith([]byte("x"), true, 1, nil)                    // miss
			s.Arith([]byte("v"), true, 1, &ArithOptions{Vivify: true})
		}, "k", 1, ClassStats{CmdSet: 2, IncrHits: 1, DecrHits: 1}},
		{"incr that grows counts in the old class", func(t *testing.T, s *Store) {
			set(t, s, "k", "9", nil)
			s.Arith([]byte("k"), true, 1<<60, nil)
		}, "k", 1, ClassStats{CmdSet: 1, IncrHits: 1}},
		{"touch and touching gets", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			s.Touch([]byte("k"), 0)
			s.Touch([]byte("x"), 0)
			s.Get(nil, []byte("k"), &GetOptions{Touch: true})
			s.Get(nil, []byte("k"), &GetOptions{Touch: true, NoBump: true})
		}, "k", 1, ClassStats{CmdSet: 1, TouchHits: 3}},
		{"get hits", func(t *testing.T, s *Store) {
			set(t, s, "k", "1", nil)
			s.Get(nil, []byte("k"), nil)
			s.Get(nil, []byte("k"), &GetOptions{NoBump: true}) // mg u
			s.Get(nil, []byte("k"), &GetOptions{Peek: true})   // internal: no hit
			s.Get(nil, []byte("x"), nil)
		}, "k", 1, ClassStats{CmdSet: 1, HitsToHot: 2}},
		{"vivify is a hit, or a touch hit", func(t *testing.T, s *Store) {
			s.Get(nil, []byte("k"), &GetOptions{Vivify: true})
			s.Get(nil, []byte("l"), &GetOptions{Vivify: true, Touch: true})
		}, "k", 0, ClassStats{HitsToHot: 1, TouchHits: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t, Config{})
			tt.run(t, s)
			if got := classOps(s, tt.key, tt.vlen); got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestClassOpCountersSum checks that the per-class counters add up to the
// store's global ones, as memcached's do.
func TestClassOpCountersSum(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	for i, v := range []string{"1", strings.Repeat("2", 500), strings.Repeat("3", 5000)} {
		k := []byte{'k', byte('0' + i)}
		c := set(t, s, string(k), v, nil)
		s.Set(k, []byte("9"), &SetOptions{Mode: ModeCAS, CAS: c + 100})
		c = set(t, s, string(k), "7", nil)
		s.Set(k, []byte(v), &SetOptions{Mode: ModeCAS, CAS: c})
		s.Touch(k, 0)
		s.Delete(k, 0, false, 0)
	}
	var sum ClassStats
	for _, c := range s.Classes() {
		sum.CasHits += c.CasHits
		sum.CasBadval += c.CasBadval
		sum.TouchHits += c.TouchHits
		sum.DeleteHits += c.DeleteHits
		sum.CmdSet += c.CmdSet
	}
	st := s.Stats()
	if sum.CasHits != st.CasHits || sum.CasBadval != st.CasBadval || sum.TouchHits != st.TouchHits ||
		sum.DeleteHits != st.DeleteHits || sum.CmdSet != 12 {
		t.Errorf("classes sum %+v, store %+v", sum, st)
	}
}

// TestClassOpCountersOutOfMemory checks that a set that cannot allocate
// its item counts no cmd_set, as memcached's.
func TestClassOpCountersOutOfMemory(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 1 << 20, DisableEvictions: true})
	val := []byte(strings.Repeat("v", 100))
	stored := uint64(0)
	for i := 0; ; i++ {
		r, _ := s.Set([]byte(fmt.Sprintf("k%05d", i)), val, nil)
		if r == OutOfMemory {
			break
		}
		if r != Stored || i > 1<<20 {
			t.Fatalf("set %d: %v", i, r)
		}
		stored++
	}
	if got := classOps(s, "k00000", len(val)).CmdSet; got != stored {
		t.Errorf("cmd_set %d, want %d (the stored sets only)", got, stored)
	}
}
