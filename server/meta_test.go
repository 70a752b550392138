package server_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// roundTrip sends req then "mn\r\n" and returns everything before "MN\r\n".
func roundTrip(t testing.TB, c net.Conn, r *bufio.Reader, req string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(req + "mn\r\n")); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, sb.String())
		}
		if line == "MN\r\n" {
			return sb.String()
		}
		sb.WriteString(line)
	}
}

// TestMetaProtocolTxt checks where gocached follows the current
// protocol.txt rather than memcached 1.6.18 (the p_* cases of
// internal/difftest/testdata/meta_protocol.txt).
func TestMetaProtocolTxt(t *testing.T) {
	steps := []struct{ req, want string }{
		// ms s: the stored size (1.6.18 ignores s).
		{"ms k 3 s\r\nabc\r\n", "HD s3\r\n"},
		{"ms k 2 MA s\r\nde\r\n", "HD s5\r\n"},
		// ms MA N: append vivifies on a miss (1.6.18: NS).
		{"ms v 1 MA N0\r\nx\r\n", "HD\r\n"},
		{"mg v v\r\n", "VA 1\r\nx\r\n"},
		// E is refused, as 1.6.18 refuses it.
		{"mg k E5\r\n", "CLIENT_ERROR invalid flag\r\n"},
		// md x empties the value, keeping the client flags.
		{"ms x 1 F5\r\nx\r\n", "HD\r\n"},
		{"md x x\r\n", "HD\r\n"},
		{"mg x v f\r\n", "VA 0 f5\r\n\r\n"},
		// md x I leaves a stale tombstone.
		{"md x x I\r\n", "HD\r\n"},
		{"mg x v\r\n", "VA 0 X W\r\n\r\n"},
	}
	addr := testutil.StartGocached(t, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, s := range steps {
		if got := roundTrip(t, c, r, s.req); got != s.want {
			t.Errorf("%q: got %q, want %q", s.req, got, s.want)
		}
	}
}

func TestMetaDebugDisabled(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.DisableDumping = true })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	got := roundTrip(t, c, r, "ms k 1\r\nx\r\nme k\r\n")
	if want := "HD\r\n" + string(server.ErrMetaDebugDisabled) + "\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// BenchmarkMetaServer measures pipelined mg and ms end to end over
// loopback (allocations include the benchmark's own I/O).
func BenchmarkMetaServer(b *testing.B) {
	addr := testutil.StartGocached(b, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	req := strings.Repeat("ms bench:key 16 T0 F1 q\r\n0123456789abcdef\r\nmg bench:key v f t c k O1\r\n", 10)
	b.ReportAllocs()
	for b.Loop() {
		roundTrip(b, c, r, req)
	}
}
