package slab

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestSlabLayoutClasses checks the classes of -o slab_sizes and -o
// slab_chunk_max: the given sizes rounded up to 8 (as memcached's
// slabs_init), then the chunk-max class and the full-page class.
func TestSlabLayoutClasses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []int // nil: only the last two and the ascending order are checked
	}{
		{"sizes", Config{SlabSizes: []int{100, 200, 300}}, []int{104, 200, 304, 512 << 10, 1 << 20}},
		{"sizes at chunk max", Config{SlabSizes: []int{100, 512 << 10}}, []int{104, 512 << 10, 512 << 10, 1 << 20}},
		{"no sizes", Config{SlabSizes: []int{}}, []int{512 << 10, 1 << 20}},
		{"sizes and chunk max", Config{SlabSizes: []int{100, 1000}, SlabChunkMax: 16 << 10}, []int{104, 1000, 16 << 10, 1 << 20}},
		{"chunk max", Config{SlabChunkMax: 16 << 10}, nil},
		{"chunk max clock", Config{SlabChunkMax: 16 << 10, Eviction: EvictionClock}, nil},
		{"chunk max page", Config{SlabChunkMax: 1 << 20}, nil},
		{"chunk max tiny", Config{SlabChunkMax: 8}, []int{8, 1 << 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(t, tc.cfg)
			defer s.Close()
			got := s.ClassSizes()
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("classes %v, want %v", got, tc.want)
			}
			cm := tc.cfg.SlabChunkMax
			if cm == 0 {
				cm = 512 << 10
			}
			n := len(got)
			if got[n-2] != cm || got[n-1] != 1<<20 || s.Config().SlabChunkMax != cm {
				t.Fatalf("last classes %v, SlabChunkMax %d, want %d and a page", got[n-2:], s.Config().SlabChunkMax, cm)
			}
			for i := 1; i < n-1; i++ {
				if got[i]%8 != 0 || got[i] < got[i-1] || got[i] > cm {
					t.Errorf("class %d size %d after %d", i+1, got[i], got[i-1])
				}
			}
			// Every size stores and reads back, including the ones over
			// the chunk max (full-page class) and over a page (chained).
			for _, vlen := range []int{1, 20, 500, 5000, 15000, 20000, 600 << 10, 3 << 20} {
				if vlen > s.Config().MaxItemSize {
					continue
				}
				key := "k" + strings.Repeat("x", vlen%7)
				val := strings.Repeat("v", vlen)
				if r, _ := s.Set([]byte(key), []byte(val), nil); r != Stored {
					t.Fatalf("set %d bytes: %v", vlen, r)
				}
				if v, _, ok := get(s, key); !ok || v != val {
					t.Fatalf("get %d bytes: ok %v, %d bytes back", vlen, ok, len(v))
				}
			}
		})
	}
}

// TestSlabSizesClass checks that items land in the given classes.
func TestSlabSizesClass(t *testing.T) {
	s, _ := newTestStore(t, Config{SlabSizes: []int{100, 1000, 10000}})
	defer s.Close()
	for _, kv := range []struct {
		key  string
		vlen int
		cls  int
	}{{"a", 20, 1}, {"b", 500, 2}, {"c", 5000, 3}, {"d", 100000, 4}, {"e", 600 << 10, 5}} {
		set(t, s, kv.key, strings.Repeat("x", kv.vlen), nil)
		for _, cs := range s.Classes() {
			if cs.ID == kv.cls && cs.UsedChunks == 0 {
				t.Errorf("%q (%d bytes): class %d has no item", kv.key, kv.vlen, kv.cls)
			}
		}
	}
}

func TestSlabLayoutConfigErrors(t *testing.T) {
	many := make([]int, MaxSlabSizes+1)
	for i := range many {
		many[i] = 100 + 16*i
	}
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"descending", Config{SlabSizes: []int{200, 100}}},
		{"within 8 bytes", Config{SlabSizes: []int{100, 108}}},
		{"zero", Config{SlabSizes: []int{0, 100}}},
		{"above chunk max", Config{SlabSizes: []int{100, 600 << 10}}},
		{"above given chunk max", Config{SlabSizes: []int{100, 20000}, SlabChunkMax: 16 << 10}},
		{"too many", Config{SlabSizes: many}},
		{"chunk max not dividing page", Config{SlabChunkMax: 3000}},
		{"chunk max above page", Config{SlabChunkMax: 2 << 20}},
		{"chunk max negative", Config{SlabChunkMax: -8}},
	} {
		if s, err := New(tc.cfg); err == nil {
			s.Close()
			t.Errorf("%s: New(%+v) succeeded", tc.name, tc.cfg)
		}
	}
	if s, err := New(Config{SlabSizes: many[:MaxSlabSizes]}); err != nil {
		t.Errorf("%d sizes: %v", MaxSlabSizes, err)
	} else {
		if n := len(s.ClassSizes()); n != MaxSlabSizes+2 {
			t.Errorf("%d sizes: %d classes", MaxSlabSizes, n)
		}
		s.Close()
	}
}

// TestNoSlabReassign checks -o no_slab_reassign: every reassign is
// refused, whatever its classes, and automove moves nothing.
func TestNoSlabReassign(t *testing.T) {
	for _, mode := range []int{0, AutomoveAggressive} {
		s, _ := newTestStore(t, Config{MemoryLimit: 2 << 20, NoSlabReassign: true, Automove: mode, Maintenance: -1})
		for _, sd := range [][2]int{{1, 2}, {-1, 2}, {1, 1}, {99, 2}, {0, 1}} {
			if r := s.Reassign(sd[0], sd[1]); r != ReassignDisabled {
				t.Errorf("automove %d: Reassign(%d, %d) = %v, want ReassignDisabled", mode, sd[0], sd[1], r)
			}
		}
		// Fill one class past the limit (evictions), then run the
		// maintenance tick: no page may move.
		val := strings.Repeat("x", 100)
		for i := range 40000 {
			s.Set([]byte("k"+strings.Repeat("y", i%3)+strconv.Itoa(i)), []byte(val), nil)
		}
		for range 5 {
			s.maintain()
		}
		select {
		case dst := <-s.mv.evictKick:
			t.Errorf("automove %d: eviction kicked aggressive automove to class %d", mode, dst)
		default:
		}
		if st := s.Stats(); st.SlabsMoved != 0 {
			t.Errorf("automove %d: %d pages moved", mode, st.SlabsMoved)
		}
		s.Close()
	}
}
