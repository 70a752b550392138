package server_test

import (
	"bufio"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

// statLines returns the lines of out that contain any of subs, in order.
func statLines(out string, subs ...string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(out, "\r\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				b.WriteString(l)
				break
			}
		}
	}
	return b.String()
}

// TestTempLRUStats checks stats settings, stats items and "lru temp_ttl"
// against memcached 1.6.18 -o temporary_ttl=10.
func TestTempLRUStats(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.TempLRU, cfg.Store.TemporaryTTL = true, 10
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rt := func(req, end string) string { t.Helper(); return textRoundTrip(t, c, req, end) }
	settings := func() string {
		t.Helper()
		return statLines(rt("stats settings\r\n", "END\r\n"), "STAT temp_lru ", "STAT temporary_ttl ")
	}
	items := func() string {
		t.Helper()
		return statLines(rt("stats items\r\n", "END\r\n"), ":number", ":age_hot", ":hits_to_temp")
	}
	if got, want := settings(), "STAT temp_lru yes\r\nSTAT temporary_ttl 10\r\n"; got != want {
		t.Fatalf("stats settings: %q, want %q", got, want)
	}
	rt("set a 0 5 1\r\nx\r\nset b 0 10 1\r\nx\r\nset c 0 11 1\r\nx\r\nset d 0 0 1\r\nx\r\n", "STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n")
	rt("get a\r\nget a\r\nget b\r\n", "END\r\nVALUE b 0 1\r\nx\r\nEND\r\n")
	got := items()
	// HOT, WARM and COLD hold c and d (their split is the LRU's); TEMP a
	// and b, shown after number_cold.
	for _, re := range []string{
		`STAT items:1:number 4\r\n`,
		`STAT items:1:number_cold \d\r\nSTAT items:1:number_temp 2\r\nSTAT items:1:age_hot 0\r\n`,
		`STAT items:1:hits_to_temp 3\r\n`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("stats items %q lacks %s", got, re)
		}
	}
	for _, tc := range []struct{ req, settings string }{
		{"lru temp_ttl 20\r\n", "STAT temp_lru yes\r\nSTAT temporary_ttl 20\r\n"},
		{"lru temp_ttl -1\r\n", "STAT temp_lru no\r\nSTAT temporary_ttl 20\r\n"},
		// safe_strtol stores into an int32_t.
		{"lru temp_ttl 3000000000\r\n", "STAT temp_lru no\r\nSTAT temporary_ttl 20\r\n"},
		{"lru temp_ttl -3000000000\r\n", "STAT temp_lru yes\r\nSTAT temporary_ttl 1294967296\r\n"},
		{"lru temp_ttl +7\r\n", "STAT temp_lru yes\r\nSTAT temporary_ttl 7\r\n"},
	} {
		if got := rt(tc.req, "\r\n"); got != "OK\r\n" {
			t.Fatalf("%q: %q", tc.req, got)
		}
		if got := settings(); got != tc.settings {
			t.Errorf("after %q: %q, want %q", tc.req, got, tc.settings)
		}
	}
	for _, req := range []string{"lru temp_ttl abc\r\n", "lru temp_ttl\r\n"} {
		if got := rt(req, "\r\n"); got != "ERROR\r\n" {
			t.Errorf("%q: %q", req, got)
		}
	}
	// Off: number_temp is not shown, though TEMP still holds a and b.
	rt("lru temp_ttl -1\r\n", "OK\r\n")
	if got := items(); strings.Contains(got, "number_temp") || !strings.Contains(got, "items:1:number 4\r\n") {
		t.Errorf("stats items with the TEMP LRU off: %q", got)
	}
}

func TestTempLRUDefaultSettings(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := textRoundTrip(t, c, "stats settings\r\n", "END\r\n")
	if got, want := statLines(out, "STAT temp_lru ", "STAT temporary_ttl "), "STAT temp_lru no\r\nSTAT temporary_ttl 61\r\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	textRoundTrip(t, c, "set a 0 5 1\r\nx\r\n", "STORED\r\n")
	if out := textRoundTrip(t, c, "stats items\r\n", "END\r\n"); strings.Contains(out, "number_temp") {
		t.Fatalf("number_temp without the TEMP LRU: %q", out)
	}
}

// TestTempLRUOutOfMemory fills memory with TEMP items: they cannot be
// evicted, so further stores fail as in memcached.
func TestTempLRUOutOfMemory(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.MemoryLimit = 1 << 20
		cfg.Store.TempLRU, cfg.Store.TemporaryTTL = true, 100
	})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	val := strings.Repeat("v", 1000)
	r := bufio.NewReader(c)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	stored, oom := 0, 0
	for i := 0; i < 3000 && oom == 0; i++ {
		if _, err := c.Write([]byte("set k" + strconv.Itoa(i) + " 0 50 1000\r\n" + val + "\r\n")); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch line {
		case "STORED\r\n":
			stored++
		case "SERVER_ERROR out of memory storing object\r\n":
			oom++
		default:
			t.Fatalf("set %d: %q", i, line)
		}
	}
	if oom == 0 || stored == 0 {
		t.Fatalf("stored %d, out of memory %d", stored, oom)
	}
	// Every TEMP item is still there.
	if _, err := c.Write([]byte("get k0\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, _ := r.ReadString('\n'); line != "VALUE k0 0 1000\r\n" {
		t.Fatalf("k0 evicted: %q", line)
	}
}

// TestWatchEvictions checks the eviction lines against memcached 1.6.18's
// (-m 2, watch evictions; ts, gid and clsid vary):
//
//	ts=1795690244.385593 gid=2 type=eviction key=fetched fetch=yes ttl=-1 la=0 clsid=12 size=1000
//	ts=1795690244.385599 gid=8 type=eviction key=%00bin%20key%FF fetch=no ttl=100 la=0 clsid=12 size=1000
func TestWatchEvictions(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.MemoryLimit = 1 << 20
		cfg.Store.Eviction = slab.EvictionLRU // memcached's eviction order, line for line
	})
	w, wr := startWatcher(t, addr, "watch evictions\r\n")
	c := dialWatch(t, addr)
	cr := bufio.NewReader(c)
	val := strings.Repeat("v", 1000)
	watchRT(t, c, cr, "set fetched 0 0 1000\r\n"+val+"\r\n", "STORED\r\n")
	watchRT(t, c, cr, "get fetched\r\n", "VALUE fetched 0 1000\r\n"+val+"\r\nEND\r\n")
	watchRT(t, c, cr, "ms AGJpbiBrZXn/ 1000 b T100\r\n"+val+"\r\n", "HD\r\n")
	var batch strings.Builder
	for i := range 2000 {
		batch.WriteString("set key" + strconv.Itoa(i) + " 0 1000 1000 noreply\r\n" + val + "\r\n")
	}
	if _, err := c.Write([]byte(batch.String())); err != nil {
		t.Fatal(err)
	}
	watchRT(t, c, cr, "version\r\n", "VERSION "+server.Version+"\r\n")
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	// A slow machine may cross a few second boundaries: la counts them up,
	// ttl down.
	for i, re := range []string{
		`^ts=\d+\.\d+ gid=\d+ type=eviction key=fetched fetch=yes ttl=-1 la=\d clsid=\d+ size=1000\n$`,
		`^ts=\d+\.\d+ gid=\d+ type=eviction key=%00bin%20key%FF fetch=no ttl=(100|9\d) la=\d clsid=\d+ size=1000\n$`,
		`^ts=\d+\.\d+ gid=\d+ type=eviction key=key0 fetch=no ttl=(1000|99\d) la=\d clsid=\d+ size=1000\n$`,
	} {
		line, err := wr.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if !regexp.MustCompile(re).MatchString(line) {
			t.Errorf("line %d: %q, want %s", i, line, re)
		}
	}
}
