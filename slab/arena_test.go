package slab

import (
	"bytes"
	"runtime"
	"strconv"
	"testing"
)

// TestPagesOffHeap: item memory is not Go heap, so the collector's goal
// does not grow with -m (see arena.go).
func TestPagesOffHeap(t *testing.T) {
	if !offHeapPages {
		t.Skip("item pages are on the heap in this build (race detector, or not Linux)")
	}
	for _, huge := range []bool{false, true} {
		s, _ := newTestStore(t, Config{MemoryLimit: 64 << 20, Maintenance: -1, LargePages: huge})
		val := bytes.Repeat([]byte("v"), 1000)
		for i := range 60000 {
			if r, _ := s.Set([]byte("k"+strconv.Itoa(i)), val, nil); r != Stored {
				t.Fatalf("k%d: %v", i, r)
			}
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if st := s.Stats(); st.TotalMalloced < 60<<20 || ms.HeapAlloc > 16<<20 {
			t.Fatalf("huge %v: %d MB of pages, %d MB of Go heap", huge, st.TotalMalloced>>20, ms.HeapAlloc>>20)
		}
		if v, _, ok := get(s, "k59999"); !ok || v != string(val) {
			t.Fatal("last item lost")
		}
		runtime.KeepAlive(s)
	}
}
