package server_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// statValue returns the value of one "stats" line, "" when it is absent.
func statValue(t *testing.T, c net.Conn, r *bufio.Reader, name string) string {
	t.Helper()
	for _, line := range strings.Split(roundTrip(t, c, r, "stats\r\n"), "\r\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == name {
			return f[2]
		}
	}
	return ""
}

// TestNewerMemcached checks where gocached follows the current memcached
// (../shared/reference/memcached-protocol.txt and its source) rather than
// Debian's 1.6.18; the corpus cases of the same requests are marked
// skip-gocached (internal/difftest/testdata/errors.txt, storage.txt).
func TestNewerMemcached(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, r := dialText(t, "tcp", addr)
	for _, tt := range []struct{ req, want string }{
		// 1.6.18: ERROR, then ERROR for the data line; now the data
		// line is swallowed.
		{"cas k 0 0 1\r\nb\r\nversion\r\n", "CLIENT_ERROR bad command line format\r\nVERSION " + server.Version + "\r\n"},
		{"cas k 0 0 4\r\nb\r\nb\r\nversion\r\n", "CLIENT_ERROR bad command line format\r\nVERSION " + server.Version + "\r\n"},
		// A bad length swallows nothing (no length to trust).
		{"cas k 0 0 x\r\nversion\r\n", "CLIENT_ERROR bad command line format\r\nVERSION " + server.Version + "\r\n"},
	} {
		if got := roundTrip(t, c, r, tt.req); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.req, got, tt.want)
		}
	}
}

// TestAuthTokenTooLong: under -Y, an unauthenticated set whose data block
// cannot be an auth token is refused with the current memcached's reply,
// and the connection closes (1.6.18 closes without a reply).
func TestAuthTokenTooLong(t *testing.T) {
	path := writeAuthFile(t, testAuthFile)
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.AuthFile = path })
	c, r := dialText(t, "tcp", addr)
	if _, err := io.WriteString(c, "set a 0 0 100000\r\n"); err != nil {
		t.Fatal(err)
	}
	if got := expectClosed(t, r); got != "CLIENT_ERROR auth token too long\r\n" {
		t.Fatalf("got %q", got)
	}
}

// TestConnYields: a pipeline yields every -R requests, counted in
// conn_yields as memcached 1.6.18 counts them (100 gets and a version with
// -R 20: 5 yields).
func TestConnYields(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.ReqsPerEvent = 20 })
	c, r := dialText(t, "tcp", addr)
	got := roundTrip(t, c, r, strings.Repeat("get k\r\n", 100)+"version\r\n")
	if want := strings.Repeat("END\r\n", 100) + "VERSION " + server.Version + "\r\n"; got != want {
		t.Fatalf("replies %q", got)
	}
	if v := statValue(t, c, r, "conn_yields"); v != "5" {
		t.Errorf("conn_yields %s, want 5", v)
	}
}

// TestIdleKicks: idle_kicks counts the connections closed for the idle
// timeout, and is listed only under -o idle_timeout, as memcached.
func TestIdleKicks(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, r := dialText(t, "tcp", addr)
	if v := statValue(t, c, r, "idle_kicks"); v != "" {
		t.Errorf("idle_kicks listed without idle_timeout: %s", v)
	}

	addr = testutil.StartGocached(t, func(cfg *server.Config) { cfg.IdleTimeout = time.Second })
	idle, ir := dialText(t, "tcp", addr)
	roundTrip(t, idle, ir, "version\r\n")
	if rest := expectClosed(t, ir); rest != "" {
		t.Fatalf("idle connection got %q before closing", rest)
	}
	c, r = dialText(t, "tcp", addr)
	if v := statValue(t, c, r, "idle_kicks"); v != "1" {
		t.Errorf("idle_kicks %q, want 1", v)
	}
}

// TestBufferRefusalsCounted: a request refused over read_buf_mem_limit
// counts in read_buf_oom. Text values are read into their items, not the
// read buffer (values.go), so the request is a long multiget line, which
// still grows the read buffer.
func TestBufferRefusalsCounted(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.ReadBufMemLimit = 64 << 10
		cfg.Store.MaxItemSize = 1 << 20
	})
	c, r := dialText(t, "tcp", addr)
	if _, err := io.WriteString(c, "get"+strings.Repeat(" k0123456789", 40000)+"\r\n"); err != nil {
		t.Fatal(err)
	}
	// The rest of the line is unread: the close may come as a reset.
	if line, err := r.ReadString('\n'); line != "SERVER_ERROR out of memory reading request\r\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("connection still open")
	}
	c, r = dialText(t, "tcp", addr)
	if v := statValue(t, c, r, "read_buf_oom"); v != "1" {
		t.Errorf("read_buf_oom %q, want 1", v)
	}
}
