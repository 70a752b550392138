package slab

import (
	"reflect"
	"strings"
	"testing"
)

// TestSizesBuckets checks the histogram's item sizes and rounding against
// memcached's ITEM_ntotal (observed with memcached 1.6.18 -o track_sizes).
func TestSizesBuckets(t *testing.T) {
	tests := []struct {
		key, val string
		flags    uint32
		noCAS    bool
		want     int
	}{
		{"a", "x", 0, false, 64},     // 48 + 2 + 3 + 8 = 61
		{"a", "x", 1, false, 96},     // 65 with the flags
		{"dd", "xyz", 0, false, 64},  // exactly 64
		{"e", "vwxyz", 0, false, 96}, // 65
		{"a", "x", 0, true, 64},      // 53 without the CAS
		{"a", strings.Repeat("y", 100), 0, false, 160},
		{"a", strings.Repeat("y", 1900), 0, false, 1984}, // chained items count whole
	}
	for _, tt := range tests {
		s, _ := newTestStore(t, Config{TrackSizes: true, DisableCAS: tt.noCAS})
		set(t, s, tt.key, tt.val, &SetOptions{Flags: tt.flags})
		got, on := s.Sizes()
		if want := []SizeCount{{tt.want, 1}}; !on || !reflect.DeepEqual(got, want) {
			t.Errorf("%q=%d bytes flags %d noCAS %v: got %v %v, want %v", tt.key, len(tt.val), tt.flags, tt.noCAS, got, on, want)
		}
	}
}

// TestSizesLifecycle checks what enters and leaves the histogram.
func TestSizesLifecycle(t *testing.T) {
	s, _ := newTestStore(t, Config{})
	if _, on := s.Sizes(); on || s.SizesOn() {
		t.Fatal("histogram on by default")
	}
	set(t, s, "old", "x", nil)
	before := s.cas.Load()
	if !s.EnableSizes() || !s.EnableSizes() {
		t.Fatal("EnableSizes refused")
	}
	if s.cas.Load() != before+1 {
		t.Errorf("enabling took %d CAS values, want 1 (and none when already on)", s.cas.Load()-before)
	}
	want := func(step string, w ...SizeCount) {
		t.Helper()
		got, _ := s.Sizes()
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s: got %v, want %v", step, got, w)
		}
	}
	want("after enable")
	set(t, s, "k", "x", nil)
	set(t, s, "n", "1", nil)
	want("two items", SizeCount{64, 2})
	s.Arith([]byte("n"), true, 1, nil) // in place: no change
	want("incr in place", SizeCount{64, 2})
	s.Arith([]byte("n"), true, 1<<62, nil) // grows: replaced by a larger item
	want("incr grows", SizeCount{64, 1}, SizeCount{96, 1})
	set(t, s, "k", strings.Repeat("y", 100), nil)
	want("replace", SizeCount{96, 1}, SizeCount{160, 1})
	s.Delete([]byte("old"), 0, false, 0) // predates the histogram
	s.Delete([]byte("n"), 0, false, 0)
	want("deletes", SizeCount{160, 1})
	s.DisableSizes()
	if _, on := s.Sizes(); on || s.SizesOn() {
		t.Fatal("still on after DisableSizes")
	}
	s.Delete([]byte("k"), 0, false, 0)
	s.EnableSizes()
	want("re-enabled, empty")

	nc, _ := newTestStore(t, Config{DisableCAS: true})
	if nc.EnableSizes() || nc.SizesOn() {
		t.Error("EnableSizes with DisableCAS")
	}
}

// TestSizesArgOrder checks the settings memcached fixes when it reads
// -o track_sizes: the -I before it bounds the sizes, a -C after it leaves
// every item uncounted.
func TestSizesArgOrder(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		vlen int
		want []SizeCount
	}{
		{"sized for the earlier -I", Config{MaxItemSize: 2 << 20, TrackSizes: true, TrackSizesItemMax: 1 << 20}, 1100000, nil},
		{"sized for -I", Config{MaxItemSize: 2 << 20, TrackSizes: true}, 1100000, []SizeCount{{1100064, 1}}},
		{"-C after", Config{DisableCAS: true, TrackSizes: true, TrackSizesNoItems: true}, 1, nil},
		{"-C before", Config{DisableCAS: true, TrackSizes: true}, 1, []SizeCount{{64, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t, tt.cfg)
			set(t, s, "a", strings.Repeat("y", tt.vlen), nil)
			if got, on := s.Sizes(); !on || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v %v, want %v", got, on, tt.want)
			}
		})
	}
}
