package slab

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// readPinned reads key with every value byte left in item memory.
func readPinned(t *testing.T, s *Store, key string) ([][]byte, Pin) {
	t.Helper()
	_, spans, _, p, ok := s.Read(nil, nil, []byte(key), nil, -1)
	if !ok || p == (Pin{}) {
		t.Fatalf("Read %q: ok=%v pin=%v", key, ok, p)
	}
	return spans, p
}

func joined(spans [][]byte) []byte { return bytes.Join(spans, nil) }

// TestPinSurvivesRemoval pins a value and then removes or changes its item
// every way the store can, under every eviction policy, and fills memory
// so that freed chunks are reused: the pinned bytes must not change until
// Unpin, and afterwards the memory must be reusable.
func TestPinSurvivesRemoval(t *testing.T) {
	actions := []string{"delete", "overwrite", "append", "flush", "expire", "evict", "incr", "move"}
	for _, policy := range []string{EvictionLRU, EvictionS3FIFO, EvictionClock} {
		for _, action := range actions {
			for _, size := range []int{3000, 1500 << 10} { // one chunk; chained over two pages
				t.Run(fmt.Sprintf("%s/%s/%d", policy, action, size), func(t *testing.T) {
					if (testing.Short() || !offHeapPages) && policy != EvictionLRU && size > 1<<20 {
						// Chained items are in lists under every policy: the
						// flat LRU's case covers them when time is short (-race).
						t.Skip("short")
					}
					testPinSurvives(t, policy, action, size)
				})
			}
		}
	}
}

func testPinSurvives(t *testing.T, policy, action string, size int) {
	s, clk := newTestStore(t, Config{MemoryLimit: 4 << 20, MaxItemSize: 2 << 20, Eviction: policy,
		Maintenance: -1, Automove: AutomoveDisabled})
	want := bytes.Repeat([]byte("0123456789"), size/10)
	if action == "incr" {
		if size > 1<<20 {
			t.Skip("a chained value is not a number")
		}
		// A number followed by spaces: incr rewrites it in place unless pinned.
		want = append([]byte("1234"), bytes.Repeat([]byte(" "), size-4)...)
	}
	if r, _ := s.Set([]byte("k"), want, &SetOptions{Exptime: t0 + 100}); r != Stored {
		t.Fatal(r)
	}
	spans, p := readPinned(t, s, "k")
	if got := joined(spans); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want %d", len(got), len(want))
	}
	if items, b := s.PinStats(); items != 1 || b < int64(len(want)) {
		t.Fatalf("PinStats = %d, %d", items, b)
	}
	filler := func(n, vlen int) {
		v := bytes.Repeat([]byte("x"), vlen)
		for i := 0; i < n; i++ {
			s.Set([]byte(fmt.Sprint("f", i)), v, nil)
		}
	}
	moved := make(chan bool, 1)
	switch action {
	case "delete":
		s.Delete([]byte("k"), 0, false, 0)
	case "overwrite":
		set(t, s, "k", string(bytes.Repeat([]byte("N"), len(want))), nil)
	case "append":
		s.Set([]byte("k"), []byte("tail"), &SetOptions{Mode: ModeAppend})
	case "flush":
		s.FlushAll(0)
	case "expire":
		clk.advance(200 * time.Second)
	case "incr":
		if _, _, r := s.Arith([]byte("k"), true, 1, nil); r != Stored {
			t.Fatal(r)
		}
	case "evict":
	case "move":
		go func() { moved <- s.movePage(s.classFor(s.readLayout(s.chunk(p.h))).id, 0) }()
		time.Sleep(20 * time.Millisecond)
	}
	// Churn: every class of the test fills memory several times over.
	filler(3*(4<<20)/size+20, size)
	filler(2000, 3000)
	if got := joined(spans); !bytes.Equal(got, want) {
		t.Fatalf("%s: pinned value changed before Unpin", action)
	}
	if action == "evict" {
		if v, _, ok := s.Get(nil, []byte("k"), nil); !ok || !bytes.Equal(v, want) {
			t.Fatalf("pinned item evicted (found %v)", ok)
		}
	}
	s.Unpin(p)
	if action == "move" {
		<-moved
	}
	if items, b := s.PinStats(); items != 0 || b != 0 {
		t.Fatalf("PinStats after Unpin = %d, %d", items, b)
	}
	checkStore(t, s)
	// The retired item's memory is reused: fill again, all chunks accounted.
	filler(3*(4<<20)/size+20, size)
	checkStore(t, s)
	for _, cs := range s.Classes() {
		if cs.UsedChunks > cs.TotalChunks {
			t.Fatalf("class %d: %d chunks used of %d", cs.ID, cs.UsedChunks, cs.TotalChunks)
		}
	}
}

// TestMoveGivesUpOnPinnedPage: a page holding an item pinned by a client
// that never reads is not waited for forever.
func TestMoveGivesUpOnPinnedPage(t *testing.T) {
	defer func(n int) { maxMovePasses = n }(maxMovePasses)
	maxMovePasses = 50
	s, _ := newTestStore(t, Config{MemoryLimit: 8 << 20, Maintenance: -1, Automove: AutomoveDisabled})
	id := classID(s, 3000)
	v := bytes.Repeat([]byte("p"), 3000)
	for i := 0; i < 3*s.classes[id-1].perPage; i++ {
		s.Set([]byte(fmt.Sprint("k", i)), v, nil)
	}
	_, p := readPinned(t, s, "k0") // on the first page, the one the mover picks
	if s.movePage(id, 0) {
		t.Fatal("moved a page with a pinned item")
	}
	checkStore(t, s)
	s.Unpin(p)
	if !s.movePage(id, 0) {
		t.Fatal("move failed after Unpin")
	}
	checkStore(t, s)
	if got, _, ok := get(s, "k0"); ok && got != string(v) {
		t.Fatal("k0 corrupted by the move")
	}
}

func TestReadCopiesSmallValues(t *testing.T) {
	s, _ := newTestStore(t, Config{Maintenance: -1})
	set(t, s, "k", "small", nil)
	dst, spans, it, p, ok := s.Read(nil, nil, []byte("k"), nil, 16)
	if !ok || string(dst) != "small" || len(spans) != 0 || p != (Pin{}) || it.Size != 5 {
		t.Fatalf("Read = %q %d %v %v %+v", dst, len(spans), p, ok, it)
	}
	s.Unpin(p) // the zero Pin: nothing
	if _, _, _, _, ok := s.Read(nil, nil, []byte("missing"), nil, 16); ok {
		t.Fatal("hit on a missing key")
	}
	_, _, it, p, ok = s.Read(nil, nil, []byte("viv"), &GetOptions{Vivify: true}, 16)
	if !ok || !it.Won || p != (Pin{}) {
		t.Fatalf("vivify: %v %+v", ok, it)
	}
}

// fillReservation writes v into r one byte at a time, as a slow client's
// value arrives.
func fillReservation(t *testing.T, r *Reservation, v []byte) {
	t.Helper()
	for len(v) > 0 {
		span := r.Next()
		if len(span) == 0 {
			t.Fatal("reservation full early")
		}
		span[0] = v[0]
		r.Fill(1)
		v = v[1:]
	}
	if r.Remaining() != 0 || r.Next() != nil {
		t.Fatalf("reservation not complete: %d left", r.Remaining())
	}
}

func TestReserve(t *testing.T) {
	big := bytes.Repeat([]byte("B"), 3<<20/2)
	tests := []struct {
		name    string
		before  string // value stored first, "" = none
		mode    Mode
		cas     bool // give the item's CAS (true) or a wrong one
		wrong   bool
		value   []byte
		want    Result
		wantVal string // after Commit; "-" = missing
	}{
		{"set", "", ModeSet, false, false, []byte("hello"), Stored, "hello"},
		{"set chained", "old", ModeSet, false, false, big, Stored, string(big)},
		{"add existing", "old", ModeAdd, false, false, []byte("new"), NotStored, "old"},
		{"add missing", "", ModeAdd, false, false, []byte("new"), Stored, "new"},
		{"replace missing", "", ModeReplace, false, false, []byte("new"), NotStored, "-"},
		{"append", "old", ModeAppend, false, false, []byte("+tail"), Stored, "old+tail"},
		{"prepend", "old", ModePrepend, false, false, []byte("head+"), Stored, "head+old"},
		{"append missing", "", ModeAppend, false, false, []byte("x"), NotStored, "-"},
		{"cas match", "old", ModeCAS, true, false, []byte("new"), Stored, "new"},
		{"cas mismatch", "old", ModeCAS, true, true, []byte("new"), Exists, "old"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestStore(t, Config{MaxItemSize: 2 << 20, Maintenance: -1})
			opt := &SetOptions{Mode: tt.mode, Flags: 7}
			if tt.before != "" {
				cas := set(t, s, "k", tt.before, &SetOptions{Flags: 3})
				if tt.cas {
					opt.CAS = cas
					if tt.wrong {
						opt.CAS++
					}
				}
			}
			used := usedChunks(s)
			var r Reservation
			if res := s.Reserve(&r, []byte("k"), len(tt.value), opt); res != Stored || !r.Active() {
				t.Fatalf("Reserve = %v", res)
			}
			if _, _, ok := s.Get(nil, []byte("k"), nil); ok != (tt.before != "") {
				t.Fatal("reserved item visible before Commit")
			}
			fillReservation(t, &r, tt.value)
			res, cas := r.Commit()
			if res != tt.want || (res == Stored) != (cas != 0) {
				t.Fatalf("Commit = %v, %d", res, cas)
			}
			r.Abort() // no-op after Commit
			v, it, ok := s.Get(nil, []byte("k"), nil)
			if tt.wantVal == "-" {
				if ok {
					t.Fatalf("found %q", v)
				}
			} else if !ok || string(v) != tt.wantVal {
				t.Fatalf("value %q (%v), want %q", v, ok, tt.wantVal)
			} else if res == Stored && it.CAS != cas {
				t.Fatalf("CAS %d, Commit said %d", it.CAS, cas)
			}
			if res == Stored && tt.mode != ModeAppend && tt.mode != ModePrepend && it.Flags != 7 {
				t.Fatalf("flags %d", it.Flags)
			}
			if res != Stored && usedChunks(s) != used {
				t.Fatalf("chunks used %d, %d before: the reservation leaked", usedChunks(s), used)
			}
			checkStore(t, s)
		})
	}
}

func usedChunks(s *Store) int {
	n := 0
	for _, cs := range s.Classes() {
		n += cs.UsedChunks
	}
	return n
}

func TestReserveAbortAndLimits(t *testing.T) {
	s, _ := newTestStore(t, Config{MemoryLimit: 2 << 20, Maintenance: -1, DisableEvictions: true})
	var r Reservation
	if res := s.Reserve(&r, []byte("k"), 2<<20, nil); res != TooLarge || r.Active() {
		t.Fatalf("Reserve too large = %v", res)
	}
	if res := s.Reserve(&r, []byte("k"), 1000, nil); res != Stored {
		t.Fatal(res)
	}
	r.Write([]byte("partial"))
	r.Abort()
	if usedChunks(s) != 0 {
		t.Fatal("Abort leaked chunks")
	}
	if _, _, ok := s.Get(nil, []byte("k"), nil); ok {
		t.Fatal("aborted item visible")
	}
	// Fill memory (no evictions): a set that cannot reserve removes the old item.
	set(t, s, "old", "value", nil)
	v := bytes.Repeat([]byte("v"), 100<<10)
	for i := 0; ; i++ {
		if res, _ := s.Set([]byte(fmt.Sprint("f", i)), v, nil); res != Stored {
			break
		}
	}
	var rs []*Reservation
	for {
		r := new(Reservation)
		res := s.Reserve(r, []byte("old"), 100<<10, nil)
		if res == OutOfMemory {
			break
		}
		rs = append(rs, r)
	}
	if _, _, ok := s.Get(nil, []byte("old"), nil); ok {
		t.Fatal("a set that could not reserve memory left the old item")
	}
	for _, r := range rs {
		r.Abort()
	}
	checkStore(t, s)
}
