package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

// randomValue returns n bytes that include "\r\n" pairs, so a reader that
// stopped at the first one would be caught.
func randomValue(rng *rand.Rand, n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = "ab\r\nxyz"[rng.Intn(7)]
	}
	return v
}

// TestSetValueArrivesInPieces sends storage commands whose values arrive
// a byte at a time (or, for values over a page, in random pieces): values
// that fit the read buffer and values read straight into their item,
// text and meta, followed in the same write by the next request.
func TestSetValueArrivesInPieces(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MaxItemSize = 2 << 20 })
	rng := rand.New(rand.NewSource(1))
	tests := []struct {
		name   string
		line   string // %d: the value's length
		size   int
		trail  string // what follows the value ("\r\n", or a bad chunk's bytes)
		reply  string
		stored bool
	}{
		{"set in the read buffer", "set k 7 0 %d\r\n", 100, "\r\n", "STORED\r\n", true},
		{"set into its item", "set k 7 0 %d\r\n", 6000, "\r\n", "STORED\r\n", true},
		{"set chained", "set k 7 0 %d\r\n", 1500 << 10, "\r\n", "STORED\r\n", true},
		{"ms into its item", "ms k %d F7 T0\r\n", 9000, "\r\n", "HD\r\n", true},
		{"ms noreply quiet", "ms k %d F7 q\r\n", 9000, "\r\n", "", true},
		{"set noreply", "set k 7 0 %d noreply\r\n", 9000, "\r\n", "", true},
		{"bad chunk in its item", "set k 0 0 %d\r\n", 6000, "xy", "CLIENT_ERROR bad data chunk\r\n", false},
		{"ms bad chunk", "ms k %d\r\n", 6000, "\rx", "CLIENT_ERROR bad data chunk\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := dialText(t, "tcp", addr)
			roundTrip(t, c, r, "delete k\r\n")
			_ = c.SetDeadline(time.Now().Add(time.Minute)) // slow under -race on a busy machine
			value := randomValue(rng, tt.size)
			if _, err := fmt.Fprintf(c, tt.line, tt.size); err != nil {
				t.Fatal(err)
			}
			for rest := value; len(rest) > 0; {
				n := 1
				if tt.size > 64<<10 {
					n = min(len(rest), 1+rng.Intn(64<<10))
				}
				if _, err := c.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
			}
			want := tt.reply + "END\r\n"
			if tt.stored {
				want = tt.reply + "VALUE k 7 " + strconv.Itoa(tt.size) + "\r\n" + string(value) + "\r\nEND\r\n"
			}
			if got := longRoundTrip(t, c, r, tt.trail+"get k\r\n"); got != want {
				t.Fatalf("got %.80q..., want %.80q...", got, want)
			}
		})
	}
}

// TestSetValuesBackToBack sends storage commands in one stream, each value
// followed at once by the next command, so that a read that ends a value
// in item memory goes on into the read buffer (values.go, readIntoValue)
// with the value's "\r\n" and part or all of the next request.
func TestSetValuesBackToBack(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MaxItemSize = 2 << 20 })
	rng := rand.New(rand.NewSource(2))
	sizes := []int{6000, 3000, 100, 70000, 2100, 1500 << 10, 9000, 5, 300 << 10}
	var req, want bytes.Buffer
	values := make([][]byte, len(sizes))
	for i, size := range sizes {
		values[i] = randomValue(rng, size)
		if i%3 == 2 {
			fmt.Fprintf(&req, "ms k%d %d F%d\r\n%s\r\n", i, size, i, values[i])
			want.WriteString("HD\r\n")
		} else {
			fmt.Fprintf(&req, "set k%d %d 0 %d\r\n%s\r\n", i, i, size, values[i])
			want.WriteString("STORED\r\n")
		}
	}
	for i, size := range sizes {
		fmt.Fprintf(&req, "get k%d\r\n", i)
		fmt.Fprintf(&want, "VALUE k%d %d %d\r\n%s\r\nEND\r\n", i, i, size, values[i])
	}
	c, r := dialText(t, "tcp", addr)
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	go func() { _, _ = c.Write(req.Bytes()) }()
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		i := 0
		for i < len(got) && got[i] == want.Bytes()[i] {
			i++
		}
		t.Fatalf("replies differ at byte %d: got %.80q, want %.80q", i, got[i:], want.Bytes()[i:])
	}
}

// TestRefusedValueAnsweredAfterIt: memcached answers a value it cannot
// store (too large for -I, or no memory for it) only after reading and
// discarding it.
func TestRefusedValueAnsweredAfterIt(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.MemoryLimit = 4 << 20
		cfg.Store.DisableEvictions = true
	})
	c, r := dialText(t, "tcp", addr)
	// Fill memory: -M refuses what does not fit.
	fill := strings.Repeat("f", 400<<10)
	for i := 0; ; i++ {
		if got := roundTrip(t, c, r, fmt.Sprintf("set f%d 0 0 %d\r\n%s\r\n", i, len(fill), fill)); got != "STORED\r\n" {
			break
		}
	}
	for _, tt := range []struct {
		name, line, reply string
		size              int
	}{
		{"too large", "set big 0 0 %d\r\n", "SERVER_ERROR object too large for cache\r\n", 2 << 20},
		{"ms too large", "ms big %d\r\n", "SERVER_ERROR object too large for cache\r\n", 2 << 20},
		{"out of memory", "set big 0 0 %d\r\n", "SERVER_ERROR out of memory storing object\r\n", 400 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			half := strings.Repeat("v", tt.size/2)
			if _, err := fmt.Fprintf(c, tt.line+"%s", tt.size, half); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if line, err := r.ReadString('\n'); !isTimeout(err) {
				t.Fatalf("answered %q (%v) before the value was sent", line, err)
			}
			if got := roundTrip(t, c, r, strings.Repeat("v", tt.size-len(half))+"\r\nget big\r\n"); got != tt.reply+"END\r\n" {
				t.Fatalf("got %q, want %q", got, tt.reply+"END\r\n")
			}
		})
	}
}

// longRoundTrip is roundTrip with a deadline long enough for megabytes
// under -race on a busy machine.
func longRoundTrip(t *testing.T, c net.Conn, r *bufio.Reader, req string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := io.WriteString(c, req+"mn\r\n"); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v after %d bytes", err, sb.Len())
		}
		if line == "MN\r\n" {
			return sb.String()
		}
		sb.WriteString(line)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestSlowUploadersServed: many clients sending large values slowly are
// all answered, their values held in items inside -m (those that find no
// memory are told so after their value), and a normal client is served
// meanwhile.
func TestSlowUploadersServed(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MemoryLimit = 8 << 20 })
	const uploaders, size, pieces = 40, 300 << 10, 10
	var wg sync.WaitGroup
	replies := make(chan string, uploaders)
	for i := 0; i < uploaders; i++ {
		c, r := dialText(t, "tcp", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fmt.Fprintf(c, "set up%d 0 0 %d\r\n", i, size); err != nil {
				replies <- err.Error()
				return
			}
			piece := strings.Repeat("u", size/pieces)
			for j := 0; j < pieces; j++ {
				time.Sleep(20 * time.Millisecond)
				if _, err := io.WriteString(c, piece); err != nil {
					replies <- err.Error()
					return
				}
			}
			_, _ = io.WriteString(c, "\r\n")
			line, err := r.ReadString('\n')
			if err != nil {
				line = err.Error()
			}
			replies <- line
		}()
	}
	c, r := dialText(t, "tcp", addr)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	expectReply(t, c, r, "set small 0 0 1\r\nx\r\nget small\r\n", "STORED\r\nVALUE small 0 1\r\nx\r\nEND\r\n")
	if d := time.Since(start); d > time.Second {
		t.Errorf("a normal client waited %v behind slow uploaders", d)
	}
	wg.Wait()
	close(replies)
	stored := 0
	for line := range replies {
		switch line {
		case "STORED\r\n":
			stored++
		case "SERVER_ERROR out of memory storing object\r\n":
		default:
			t.Errorf("uploader got %q", line)
		}
	}
	if stored == 0 {
		t.Error("no uploader stored its value")
	}
	t.Logf("%d of %d uploads stored at -m 8", stored, uploaders)
}

// modelValue is version v of key's value: its header names both, its
// length depends on v, so a reader can tell a whole stored value from
// anything else.
func modelValue(key string, v int) []byte {
	sizes := []int{2500, 9000, 40000, 150000, 300000}
	head := fmt.Sprintf("<%s:%d>", key, v)
	return []byte((head + strings.Repeat(head, sizes[v%len(sizes)]/len(head)))[:sizes[v%len(sizes)]])
}

// checkModelValue reports why value is not a whole value stored under key.
func checkModelValue(key string, value []byte) error {
	end := bytes.IndexByte(value, '>')
	if end < 0 || value[0] != '<' {
		return fmt.Errorf("%s: no header in %.40q", key, value)
	}
	k, vs, ok := strings.Cut(string(value[1:end]), ":")
	v, err := strconv.Atoi(vs)
	if !ok || err != nil || k != key {
		return fmt.Errorf("%s: header %q", key, value[:end+1])
	}
	if !bytes.Equal(value, modelValue(key, v)) {
		return fmt.Errorf("%s: version %d corrupted (%d bytes)", key, v, len(value))
	}
	return nil
}

// TestRepliesFromPinnedItems is the value path's model test: readers
// pipeline gets of large values and stall mid-reply while the same keys
// are overwritten, deleted, flushed and evicted and their pages moved;
// every value that arrives must be one that was stored whole.
func TestRepliesFromPinnedItems(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		// Less than a page per class the test uses: every class evicts.
		cfg.Store.MemoryLimit = 4 << 20
		cfg.Store.Automove = slab.AutomoveAggressive // a page move on each eviction
	})
	keys := []string{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"}
	{
		c, r := dialText(t, "tcp", addr)
		for i, k := range keys {
			v := modelValue(k, i)
			expectReply(t, c, r, fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", k, len(v), v), "STORED\r\n")
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	var ops atomic.Int64
	errs := make(chan error, 16)
	getLine := "get " + strings.Join(keys, " ") + "\r\n"
	for i := 0; i < 6; i++ {
		c, _ := dialText(t, "tcp", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(i)))
			r := bufio.NewReaderSize(&stallingReader{c: c, rng: rng}, 4096)
			for batch := 0; time.Now().Before(deadline); batch++ {
				const pipelined = 4
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				if _, err := io.WriteString(c, strings.Repeat(getLine, pipelined)); err != nil {
					errs <- err
					return
				}
				for ends := 0; ends < pipelined; {
					line, err := r.ReadString('\n')
					if err != nil {
						errs <- fmt.Errorf("reader %d: %v", i, err)
						return
					}
					if line == "END\r\n" {
						ends++
						continue
					}
					var key string
					var flags, n int
					if _, err := fmt.Sscanf(line, "VALUE %s %d %d\r\n", &key, &flags, &n); err != nil {
						errs <- fmt.Errorf("reader %d: line %q", i, line)
						return
					}
					value := make([]byte, n+2)
					if _, err := io.ReadFull(r, value); err != nil {
						errs <- err
						return
					}
					if err := checkModelValue(key, value[:n]); err != nil || string(value[n:]) != "\r\n" {
						errs <- fmt.Errorf("reader %d: %v", i, err)
						return
					}
				}
			}
		}()
	}
	for w := 0; w < 2; w++ {
		c, r := dialText(t, "tcp", addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(100 + w)))
			filler := strings.Repeat("f", 200<<10)
			for version := len(keys) + w; time.Now().Before(deadline); version += 2 {
				k := keys[rng.Intn(len(keys))]
				var req string
				switch op := rng.Intn(20); {
				case op < 8:
					v := modelValue(k, version)
					req = fmt.Sprintf("set %s 0 0 %d noreply\r\n%s\r\n", k, len(v), v)
				case op < 10:
					req = "delete " + k + " noreply\r\n"
				case op < 11:
					req = "flush_all noreply\r\n"
				case op < 12:
					req = "incr " + k + " 1 noreply\r\n" // not a number: refused, never rewritten
				default:
					// Filler: evictions in the large classes, and page moves.
					req = fmt.Sprintf("set fill%d 0 0 %d noreply\r\n%s\r\n", rng.Intn(200), len(filler), filler)
				}
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				if _, err := io.WriteString(c, req); err != nil {
					errs <- err
					return
				}
				if version%50 < 2 {
					roundTrip(t, c, r, "") // keep the writer in step with the server
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c, r := dialText(t, "tcp", addr)
	stats := roundTrip(t, c, r, "stats\r\n")
	t.Logf("%d writes", ops.Load())
	if statOf(stats, "evictions") == 0 {
		t.Error("no evictions: the test did not churn memory")
	}
	t.Logf("evictions %d, slabs moved %d", statOf(stats, "evictions"), statOf(stats, "slabs_moved"))
	waitPinsReleased(t, c, r)
}

// stallingReader reads a connection in small pieces with pauses, now and
// then a long one: a client that reads its replies slowly.
type stallingReader struct {
	c   net.Conn
	rng *rand.Rand
}

func (s *stallingReader) Read(p []byte) (int, error) {
	switch s.rng.Intn(50) {
	case 0:
		time.Sleep(50 * time.Millisecond)
	case 1, 2, 3:
		time.Sleep(time.Millisecond)
	}
	return s.c.Read(p[:min(len(p), 1+s.rng.Intn(8192))])
}

// statOf returns the value of stat name in the stats reply stats (0 if absent).
func statOf(stats, name string) uint64 {
	for _, line := range strings.Split(stats, "\r\n") {
		if v, ok := strings.CutPrefix(line, "STAT "+name+" "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// waitPinsReleased waits until no reply pins an item.
func waitPinsReleased(t *testing.T, c net.Conn, r *bufio.Reader) {
	t.Helper()
	for i := 0; ; i++ {
		stats := roundTrip(t, c, r, "stats go\r\n")
		if !strings.Contains(stats, "STAT value_pinned_items ") {
			t.Fatalf("stats go lacks value_pinned_items:\n%s", stats)
		}
		if statOf(stats, "value_pinned_items") == 0 && statOf(stats, "value_pinned_bytes") == 0 {
			return
		}
		if i > 100 {
			t.Fatalf("pins not released:\n%s", stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNonReadingClients: clients that pipeline gets of a large value and
// never read are stopped by backpressure: they pin the item rather than
// copy it, nobody is refused, and a normal client is served meanwhile.
func TestNonReadingClients(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MemoryLimit = 8 << 20 })
	c, r := dialText(t, "tcp", addr)
	big := strings.Repeat("b", 200<<10)
	expectReply(t, c, r, fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(big), big), "STORED\r\n")
	var stalled []net.Conn
	for i := 0; i < 20; i++ {
		sc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, sc)
		go func() { _, _ = io.WriteString(sc, strings.Repeat("get big\r\n", 30)) }()
	}
	time.Sleep(300 * time.Millisecond)
	stats := roundTrip(t, c, r, "stats go\r\n")
	if n := statOf(stats, "value_pinned_items"); n != 1 {
		t.Errorf("value_pinned_items = %d, want 1 (every stalled reply pins the same item)", n)
	}
	start := time.Now()
	expectReply(t, c, r, "set small 0 0 1\r\nx\r\nget small\r\n", "STORED\r\nVALUE small 0 1\r\nx\r\nEND\r\n")
	if d := time.Since(start); d > time.Second {
		t.Errorf("a normal client waited %v", d)
	}
	// Overwriting the pinned value is fine; the stalled readers get the
	// old one whole when they read.
	expectReply(t, c, r, fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(big), strings.Repeat("B", len(big))), "STORED\r\n")
	br := bufio.NewReader(stalled[0])
	_ = stalled[0].SetReadDeadline(time.Now().Add(time.Minute))
	for i := 0; i < 30; i++ {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("VALUE big 0 %d\r\n", len(big)) {
			t.Fatalf("reply %d: %q, %v", i, line, err)
		}
		value := make([]byte, len(big)+2+5)
		if _, err := io.ReadFull(br, value); err != nil {
			t.Fatal(err)
		}
		if v := string(value[:len(big)]); v != big && v != strings.Repeat("B", len(big)) {
			t.Fatalf("reply %d: mixed value", i)
		}
		if string(value[len(big):]) != "\r\nEND\r\n" {
			t.Fatalf("reply %d ends %q", i, value[len(big):])
		}
	}
	for _, sc := range stalled {
		sc.Close()
	}
	waitPinsReleased(t, c, r)
}
