package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/server"
)

func dialWatch(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func watchRT(t *testing.T, c net.Conn, r *bufio.Reader, req, want string) {
	t.Helper()
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := watchReadFull(r, got); err != nil || string(got) != want {
		t.Fatalf("%q: got %q (%v), want %q", req, got, err, want)
	}
}

func watchReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// startWatcher opens a connection, turns it into a watcher with cmd and
// returns it once the server has answered OK.
func startWatcher(t *testing.T, addr, cmd string) (net.Conn, *bufio.Reader) {
	t.Helper()
	w := dialWatch(t, addr)
	wr := bufio.NewReader(w)
	watchRT(t, w, wr, cmd, "OK\r\n")
	return w, wr
}

// TestWatchFormat checks the log lines against memcached 1.6.18's (ts,
// gid, clsid and cfd vary).
func TestWatchFormat(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	w, wr := startWatcher(t, addr, "watch fetchers mutations\r\n")
	c := dialWatch(t, addr)
	cr := bufio.NewReader(c)
	watchRT(t, c, cr, "set foo 5 0 3\r\nbar\r\n", "STORED\r\n")
	watchRT(t, c, cr, "get nope foo\r\n", "VALUE foo 5 3\r\nbar\r\nEND\r\n")
	watchRT(t, c, cr, "add foo 0 0 1\r\nx\r\n", "NOT_STORED\r\n")
	watchRT(t, c, cr, "append foo 0 0 1\r\nx\r\n", "STORED\r\n")
	watchRT(t, c, cr, "set k%2C 0 10 1\r\nx\r\n", "STORED\r\n")
	watchRT(t, c, cr, "delete foo\r\n", "DELETED\r\n")
	watchRT(t, c, cr, "ms mk 2 MR\r\nhi\r\n", "NS\r\n")
	watchRT(t, c, cr, "ms mk 2 T0\r\nhi\r\n", "HD\r\n")
	watchRT(t, c, cr, "mg mk v\r\n", "VA 2\r\nhi\r\n")
	watchRT(t, c, cr, "md mk\r\n", "HD\r\n")
	watchRT(t, c, cr, "touch mk 10\r\n", "NOT_FOUND\r\n")
	watchRT(t, c, cr, "incr mk 1\r\n", "NOT_FOUND\r\n")
	want := []string{
		"type=item_get key=foo status=not_found clsid=0 cfd=N size=0",
		"type=item_store key=foo status=stored cmd=set ttl=0 clsid=1 cfd=N size=3",
		"type=item_get key=nope status=not_found clsid=0 cfd=N size=0",
		"type=item_get key=foo status=found clsid=1 cfd=N size=3",
		"type=item_get key=foo status=found clsid=1 cfd=N size=3",
		"type=item_store key=foo status=not_stored cmd=add ttl=0 clsid=1 cfd=N size=1",
		"type=item_get key=foo status=found clsid=1 cfd=N size=3",
		"type=item_store key=foo status=stored cmd=append ttl=0 clsid=1 cfd=N size=4",
		"type=item_get key=k%252C status=not_found clsid=0 cfd=N size=0",
		"type=item_store key=k%252C status=stored cmd=set ttl=10 clsid=1 cfd=N size=1",
		"type=item_get key=foo status=found clsid=1 cfd=N size=4",
		"type=item_get key=mk status=not_found clsid=0 cfd=N size=0",
		"type=item_store key=mk status=not_stored cmd=replace ttl=0 clsid=1 cfd=N size=2",
		"type=item_get key=mk status=not_found clsid=0 cfd=N size=0",
		"type=item_store key=mk status=stored cmd=set ttl=0 clsid=1 cfd=N size=2",
		"type=item_get key=mk status=found clsid=1 cfd=N size=2",
		"type=item_get key=mk status=found clsid=1 cfd=N size=2",
		"type=item_get key=mk status=not_found clsid=0 cfd=N size=0",
		"type=item_get key=mk status=not_found clsid=0 cfd=N size=0",
	}
	head := regexp.MustCompile(`^ts=\d+\.\d+ gid=(\d+) `)
	cfd := regexp.MustCompile(` cfd=\d+ `)
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	lastGid := ""
	for i, wl := range want {
		line, err := wr.ReadString('\n')
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if strings.HasSuffix(line, "\r\n") {
			t.Fatalf("line %d ends in CRLF: %q", i, line)
		}
		m := head.FindStringSubmatch(line)
		if m == nil || m[1] == lastGid {
			t.Fatalf("line %d: bad head: %q", i, line)
		}
		lastGid = m[1]
		got := cfd.ReplaceAllString(strings.TrimSuffix(line[len(m[0]):], "\n"), " cfd=N ")
		if got != wl {
			t.Errorf("line %d:\n got %s\nwant %s", i, got, wl)
		}
	}
	// Requests on a watcher are ignored, as in memcached; it keeps logging.
	if _, err := w.Write([]byte("get foo\r\n")); err != nil {
		t.Fatal(err)
	}
	watchRT(t, c, cr, "get zz\r\n", "END\r\n")
	line, err := wr.ReadString('\n')
	if err != nil || !strings.Contains(line, "type=item_get key=zz status=not_found") {
		t.Fatalf("got %q, %v", line, err)
	}
}

func TestWatchArgs(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	for req, want := range map[string]string{
		"watch bogus\r\n":                        "ERROR\r\n",
		"watch fetchers FETCHERS\r\n":            "ERROR\r\n",
		"watch\r\n":                              "OK\r\n",
		"watch connevents evictions rawcmds\r\n": "OK\r\n",
	} {
		c := dialWatch(t, addr)
		watchRT(t, c, bufio.NewReader(c), req, want)
	}
	// noreply silences the ERROR of the unknown "noreply" argument.
	c := dialWatch(t, addr)
	r := bufio.NewReader(c)
	watchRT(t, c, r, "watch fetchers noreply\r\nversion\r\n", "VERSION "+server.Version+"\r\n")

	addr = testutil.StartGocached(t, func(cfg *server.Config) { cfg.DisableWatch = true })
	c = dialWatch(t, addr)
	watchRT(t, c, bufio.NewReader(c), "watch fetchers\r\n", "CLIENT_ERROR watch commands not allowed\r\n")
}

func TestWatchConnEvents(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	w, wr := startWatcher(t, addr, "watch connevents\r\n")
	c := dialWatch(t, addr)
	watchRT(t, c, bufio.NewReader(c), "quit\r\n", "")
	port := c.LocalAddr().(*net.TCPAddr).Port
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	var lines []string
	for len(lines) < 2 {
		line, err := wr.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		// Skip the events of StartGocached's readiness probe.
		if strings.Contains(line, " rport="+strconv.Itoa(port)+" ") {
			lines = append(lines, line)
		}
	}
	for i, re := range []string{
		`^ts=\d+\.\d+ gid=\d+ type=conn_new rip=127\.0\.0\.1 rport=%d transport=tcp cfd=\d+\n$`,
		`^ts=\d+\.\d+ gid=\d+ type=conn_close rip=127\.0\.0\.1 rport=%d transport=tcp reason=normal cfd=\d+\n$`,
	} {
		line := lines[i]
		if !regexp.MustCompile(strings.Replace(re, "%d", strconv.Itoa(port), 1)).MatchString(line) {
			t.Errorf("got %q, want %s", line, re)
		}
	}
}

// TestWatchSkipped checks that a watcher that does not read loses lines
// (reported as skipped=N) rather than slowing requests down.
func TestWatchSkipped(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	w, wr := startWatcher(t, addr, "watch fetchers mutations\r\n")
	c := dialWatch(t, addr)
	cr := bufio.NewReader(c)
	batch := bytes.Repeat([]byte("set k 0 0 1 noreply\r\nx\r\n"), 1000)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 200; i++ {
		if _, err := c.Write(batch); err != nil {
			t.Fatal(err)
		}
	}
	// 200K logged sets take a while under -race on a loaded machine: the
	// version reply gets the whole deadline, not watchRT's 5 s.
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(deadline)
	if line, err := cr.ReadString('\n'); err != nil || line != "VERSION "+server.Version+"\r\n" {
		t.Fatalf("version: %q %v", line, err)
	}
	_ = w.SetReadDeadline(deadline)
	for {
		line, err := wr.ReadString('\n')
		if err != nil {
			t.Fatalf("no skipped= line: %v", err)
		}
		if strings.HasPrefix(line, "skipped=") {
			if !regexp.MustCompile(`^skipped=[1-9]\d*\n$`).MatchString(line) {
				t.Fatalf("bad skipped line %q", line)
			}
			return
		}
	}
}

// watchCfdRE matches a log line's cfd field.
var watchCfdRE = regexp.MustCompile(` cfd=\d+ `)

// readWatchUntil reads log lines up to one holding "key=<end> " and
// returns those before it, without their head (ts, gid) and with cfd
// masked.
func readWatchUntil(t *testing.T, w net.Conn, wr *bufio.Reader, end string) []string {
	t.Helper()
	lines := readWatchRaw(t, w, wr, end)
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		lines[i] = watchCfdRE.ReplaceAllString(l, " cfd=N ")
	}
	return lines
}

// readWatchRaw is readWatchUntil keeping cfd and the end line, which is
// the first whose key starts with end.
func readWatchRaw(t *testing.T, w net.Conn, wr *bufio.Reader, end string) []string {
	t.Helper()
	head := regexp.MustCompile(`^ts=\d+\.\d+ gid=\d+ `)
	_ = w.SetReadDeadline(time.Now().Add(5 * time.Second))
	var out []string
	for {
		line, err := wr.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %q, %v", out, line, err)
		}
		out = append(out, head.ReplaceAllString(strings.TrimSuffix(line, "\n"), ""))
		if strings.Contains(line, " key="+end) {
			return out
		}
	}
}

// TestWatchMissStatus checks the item_get statuses of a key that was there
// but expired or flushed, as memcached 1.6.18 logs them (observed with -o
// no_lru_maintainer, so that its maintainer does not reclaim the item
// before the lookup): status=expired or status=flushed with clsid=0 and
// size=0, once; the next lookup finds nothing (not_found). An exptime of -1
// stores an item that is already expired.
func TestWatchMissStatus(t *testing.T) {
	// No background maintenance: its LRU reclaiming would take the dead
	// item before the lookup sees it (it would log not_found).
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.Maintenance = -1 })
	w, wr := startWatcher(t, addr, "watch fetchers\r\n")
	c := dialWatch(t, addr)
	cr := bufio.NewReader(c)
	bc := dialBin(t, addr)
	const (
		notFound = "type=item_get key=k status=not_found clsid=0 cfd=N size=0"
		expired  = "type=item_get key=k status=expired clsid=0 cfd=N size=0"
		flushed  = "type=item_get key=k status=flushed clsid=0 cfd=N size=0"
	)
	nf := protocol.StatusKeyNotFound
	for _, tc := range []struct {
		req, reply string
		bin        []byte // a binary request instead, answered with binStatus
		binStatus  protocol.BinStatus
	}{
		{req: "get k\r\n", reply: "END\r\n"},
		{req: "gets k\r\n", reply: "END\r\n"},
		{req: "gat 10 k\r\n", reply: "END\r\n"},
		{req: "gats 10 k\r\n", reply: "END\r\n"},
		{req: "mg k v\r\n", reply: "EN\r\n"},
		{req: "mg k T10 v\r\n", reply: "EN\r\n"},
		{req: "touch k 10\r\n", reply: "NOT_FOUND\r\n"},
		{req: "incr k 1\r\n", reply: "NOT_FOUND\r\n"},
		{req: "decr k 1\r\n", reply: "NOT_FOUND\r\n"},
		{req: "delete k\r\n", reply: "NOT_FOUND\r\n"},
		{req: "md k\r\n", reply: "NF\r\n"},
		{req: "ma k\r\n", reply: "NF\r\n"},
		// A vivifying miss logs the miss alone, as memcached.
		{req: "mg k N30 v\r\n", reply: "VA 0 W\r\n\r\n"},
		// Storage commands look the key up first. (memcached logs
		// not_found when its allocation reclaimed the dead item first.)
		{req: "set k 0 0 1\r\ny\r\n", reply: "STORED\r\n"},
		{req: "add k 0 0 1\r\ny\r\n", reply: "STORED\r\n"},
		{req: "append k 0 0 1\r\ny\r\n", reply: "NOT_STORED\r\n"},
		{req: "ms k 1\r\ny\r\n", reply: "HD\r\n"},
		{bin: req(protocol.OpGet, 1, 0, nil, []byte("k"), nil), binStatus: nf},
		{bin: req(protocol.OpGAT, 1, 0, expExt(10), []byte("k"), nil), binStatus: nf},
		{bin: req(protocol.OpTouch, 1, 0, expExt(10), []byte("k"), nil), binStatus: nf},
		{bin: req(protocol.OpDelete, 1, 0, nil, []byte("k"), nil), binStatus: nf},
		{bin: req(protocol.OpIncrement, 1, 0, arithExt(1, 0, 0xffffffff), []byte("k"), nil), binStatus: nf},
	} {
		for _, why := range []string{expired, flushed} {
			setup, reply := "set k 0 -1 3\r\nabc\r\n", "STORED\r\n"
			if why == flushed {
				setup, reply = "set k 0 0 3\r\nabc\r\nflush_all\r\n", "STORED\r\nOK\r\n"
			}
			watchRT(t, c, cr, setup, reply)
			name := tc.req
			if tc.bin != nil {
				name = fmt.Sprintf("binary %#x", tc.bin[1])
				bc.send(tc.bin)
				bc.expect(tc.bin[1], 1, tc.binStatus, nil)
			} else {
				watchRT(t, c, cr, tc.req, tc.reply)
			}
			// Clean up, then mark the end of this case's lines.
			if _, err := c.Write([]byte("delete k noreply\r\n")); err != nil {
				t.Fatal(err)
			}
			watchRT(t, c, cr, "get end\r\n", "END\r\n")
			got := readWatchUntil(t, w, wr, "end")
			want := []string{notFound, why, notFound} // setup's set, the request, the delete
			if strings.Contains(tc.req, " N30") || strings.HasPrefix(tc.reply, "STORED") || tc.reply == "HD\r\n" {
				want[2] = "type=item_get key=k status=found clsid=1 cfd=N size=" + strconv.Itoa(map[bool]int{true: 0, false: 1}[strings.Contains(tc.req, " N30")])
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s after %q:\n got %q\nwant %q", name, setup, got, want)
			}
		}
	}
}

// watchMissScript runs, with a fetchers watcher on addr, lookups of keys
// that expired (exptime -1) or were flushed, and returns the log lines,
// ts, gid and cfd masked.
func watchMissScript(t *testing.T, addr string) []string {
	w, wr := startWatcher(t, addr, "watch fetchers\r\n")
	c := dialWatch(t, addr)
	cr := bufio.NewReader(c)
	bc := dialBin(t, addr)
	// memcached's workers start logging for a new watcher only once its
	// logger thread has passed by: get until the watcher sees a line.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("the watcher logs nothing")
		}
		watchRT(t, c, cr, "get ready"+strconv.Itoa(i)+"\r\n", "END\r\n")
		_ = w.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if line, err := wr.ReadString('\n'); err == nil && strings.Contains(line, " key=ready") {
			break
		}
	}
	for _, r := range []struct{ req, reply string }{
		{"get k\r\n", "END\r\n"},
		{"mg k T10 v\r\n", "EN\r\n"},
		{"touch k 10\r\n", "NOT_FOUND\r\n"},
		{"incr k 1\r\n", "NOT_FOUND\r\n"},
		{"delete k\r\n", "NOT_FOUND\r\n"},
		{"md k\r\n", "NF\r\n"},
		{"ma k\r\n", "NF\r\n"},
		{"mg k N30 v\r\n", "VA 0 W\r\n\r\n"},
		{"", ""}, // binary get
	} {
		for _, flush := range []bool{false, true} {
			if flush {
				watchRT(t, c, cr, "set k 0 0 3\r\nabc\r\nflush_all\r\n", "STORED\r\nOK\r\n")
			} else {
				watchRT(t, c, cr, "set k 0 -1 3\r\nabc\r\n", "STORED\r\n")
			}
			if r.req == "" {
				bc.send(req(protocol.OpGet, 1, 0, nil, []byte("k"), nil))
				bc.expect(protocol.OpGet, 1, protocol.StatusKeyNotFound, nil)
			} else {
				watchRT(t, c, cr, r.req, r.reply)
			}
			if _, err := c.Write([]byte("delete k noreply\r\n")); err != nil {
				t.Fatal(err)
			}
		}
	}
	watchRT(t, c, cr, "get end\r\n", "END\r\n")
	bc.send(req(protocol.OpGet, 2, 0, nil, []byte("endb"), nil))
	bc.expect(protocol.OpGet, 2, protocol.StatusKeyNotFound, nil)
	// memcached merges its worker threads' logs in no set order: read
	// until both connections' last lines, and keep each connection's lines
	// in order, the ASCII one's first. The binary one's cfd is endb's.
	var lines []string
	for seen := 0; seen < 2; {
		l := readWatchRaw(t, w, wr, "end")
		lines = append(lines, l...)
		if strings.Contains(l[len(l)-1], " key=end") { // end or endb
			seen++
		}
	}
	binCfd := ""
	for _, l := range lines {
		if strings.Contains(l, " key=endb ") {
			binCfd = watchCfdRE.FindString(l)
		}
	}
	var ascii, bin []string
	for _, l := range lines {
		masked := watchCfdRE.ReplaceAllString(l, " cfd=N ")
		switch {
		case strings.Contains(l, " key=ready"), strings.Contains(l, " key=end"):
			// the warm-up's late lines, the ends
		case watchCfdRE.FindString(l) == binCfd:
			bin = append(bin, masked)
		default:
			ascii = append(ascii, masked)
		}
	}
	return append(ascii, bin...)
}

// TestWatchMissStatusMatchesMemcached compares the item_get lines of
// lookups of expired and flushed keys with memcached's. memcached runs
// without its LRU maintainer and crawler, and gocached without its
// background maintenance, which would otherwise reclaim the dead item
// before the lookup sees it (it would log not_found).
func TestWatchMissStatusMatchesMemcached(t *testing.T) {
	testutil.RequireTool(t, "memcached")
	ref := testutil.StartMemcached(t, "-o", "no_lru_maintainer,no_lru_crawler")
	want := watchMissScript(t, ref)
	got := watchMissScript(t, testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.Maintenance = -1 }))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("gocached:\n%s\nmemcached:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
