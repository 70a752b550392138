package server_test

import (
	"bufio"
	"bytes"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
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
