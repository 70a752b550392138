package server_test

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// startGocachedUDP starts gocached with UDP on a free port (memcached's
// -U -1) and returns its TCP and UDP addresses.
func startGocachedUDP(t testing.TB, mutate func(*server.Config)) (tcpAddr, udpAddr string) {
	t.Helper()
	s := testutil.StartGocachedServer(t, func(c *server.Config) {
		c.UDPPort = -1
		if mutate != nil {
			mutate(c)
		}
	})
	udp := s.UDPAddrs()
	if len(udp) != 1 {
		t.Fatalf("UDP sockets %v", udp)
	}
	return s.Addrs()[0].String(), udp[0].String()
}

func dialUDP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// renderDatagrams shows datagrams as "id seq/total len payload".
func renderDatagrams(ds []testutil.UDPDatagram) string {
	var b strings.Builder
	for _, d := range ds {
		p := d.Payload
		shown := fmt.Sprintf("%q", p)
		if len(p) > 80 {
			shown = fmt.Sprintf("%q...%q", p[:40], p[len(p)-20:])
		}
		fmt.Fprintf(&b, "  id=%d seq=%d/%d len=%d %s\n", d.RequestID, d.Seq, d.Total, len(p), shown)
	}
	return b.String()
}

// valueOfSize returns a set request whose "get key" reply (VALUE line,
// data, END) is exactly total bytes.
func valueOfSize(key string, total int) (set string) {
	v := total - len("VALUE  0 \r\n\r\nEND\r\n") - len(key)
	for i := 0; i < 3; i++ {
		v = total - len(fmt.Sprintf("VALUE %s 0 %d\r\n\r\nEND\r\n", key, v))
	}
	return fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, v, strings.Repeat("q", v))
}

// udpSteps are requests sent in order, each in one datagram, to both
// servers; their replies must be the same datagrams.
var udpSteps = []string{
	"set a 0 0 1\r\nx\r\n",
	"get a\r\n",
	"get a b a\r\n",
	"get b\r\n",
	"get b c\r\n",
	"get b c d\r\n",
	"get a b c\r\n",
	"get b a\r\n",
	"set big 5 0 3000\r\n" + strings.Repeat("y", 3000) + "\r\n",
	"get big\r\n",
	"get big a\r\n",
	"get a big\r\n",
	"get big b c\r\n",
	"mg big v\r\n",
	valueOfSize("s1", 1392), "get s1\r\n",
	valueOfSize("s2", 1393), "get s2\r\n",
	valueOfSize("s3", 1400), "get s3\r\n",
	valueOfSize("s4", 2784), "get s4\r\n",
	valueOfSize("s5", 2785), "get s5\r\n",
	"get a\r\nget a\r\n",
	"version\r\n",
	"version\n",
	"bogus\r\n",
	"get\r\n",
	"set n 0 0 1 noreply\r\nx\r\n",
	"set n 0 0 1 noreply\r\nx\r\nget n\r\n",
	"set c 0 0 1\r\n5\r\nincr c 3\r\n",
	"incr c 1 noreply\r\nget c\r\n",
	"delete n\r\n",
	"delete n\r\n",
	"touch a 0\r\n",
	"mn\r\n",
	"mg a s v\r\nmn\r\n",
	"ms m 2\r\nhi\r\n",
	"set a 0 0 1\r\nxx\r\nversion\r\n",
	"quit\r\n",
	"quit\r\nversion\r\n",
	"version\r\nquit\r\nversion\r\n",
	"verbosity 0\r\n",
	"get a",
	"version\r\nget a",
	"\x00\x01\x02",
	// binary: get of a missing key, noop, getq miss then noop, version.
	"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00z",
	"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00",
	"\x80\x09\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00z" +
		"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00",
	// binary setq alone, then with a noop.
	"\x80\x11\x00\x01\x08\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00qv",
	"\x80\x11\x00\x01\x08\x00\x00\x00\x00\x00\x00\x0a\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00qv" +
		"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x00",
	"get big\r\n",
}

// TestUDPMatchesMemcached compares gocached's UDP datagrams, headers and
// payloads, with memcached -U's for every step.
func TestUDPMatchesMemcached(t *testing.T) {
	_, refUDP := testutil.StartMemcachedUDP(t)
	_, gotUDP := startGocachedUDP(t, nil)
	conns := [2]net.Conn{dialUDP(t, refUDP), dialUDP(t, gotUDP)}
	for i, step := range udpSteps {
		var replies [2][]testutil.UDPDatagram
		var errs [2]error
		var wg sync.WaitGroup
		for j := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[j], errs[j] = testutil.UDPRoundTripWait(conns[j], uint16(0x1200+i), []byte(step), time.Second, 100*time.Millisecond)
			}()
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("step %d %q: %v, %v", i, step, errs[0], errs[1])
		}
		want, got := renderDatagrams(replies[0]), renderDatagrams(replies[1])
		if want != got || !sameDatagrams(replies[0], replies[1]) {
			t.Errorf("step %d %.60q:\nmemcached:\n%sgocached:\n%s", i, step, want, got)
		}
	}
}

func sameDatagrams(a, b []testutil.UDPDatagram) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].RequestID != b[i].RequestID || a[i].Seq != b[i].Seq || a[i].Total != b[i].Total || !bytes.Equal(a[i].Payload, b[i].Payload) {
			return false
		}
	}
	return true
}

// TestUDPDropped covers datagrams memcached ignores: a bare header or less,
// a request announced as several datagrams, and one whose value is cut
// (memcached then waits for the value in the next datagram, whoever sends
// it: gocached forgets the request with its datagram).
func TestUDPDropped(t *testing.T) {
	_, addr := startGocachedUDP(t, nil)
	c := dialUDP(t, addr)
	for _, d := range [][]byte{
		{0, 1, 0, 0, 0, 1, 0, 0},
		{0, 1, 0},
		append([]byte{0, 1, 0, 0, 0, 2, 0, 0}, "version\r\n"...),
		append([]byte{0, 1, 0, 1, 0, 2, 0, 0}, "version\r\n"...),
		append([]byte{0, 1, 0, 0, 0, 1, 0, 0}, "version\r\nset p 0 0 10\r\nx\r\n"...),
	} {
		if _, err := c.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	got, err := testutil.UDPRoundTrip(c, 9, []byte("version\r\n"), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].RequestID != 9 || string(got[0].Payload) != "VERSION "+server.Version+"\r\n" {
		t.Fatalf("replies:\n%s", renderDatagrams(got))
	}
}

// reassemble orders a message's datagrams by sequence number and joins
// them, checking the count each announces.
func reassemble(t testing.TB, ds []testutil.UDPDatagram) []byte {
	t.Helper()
	if len(ds) == 0 {
		t.Fatal("no datagram")
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Seq < ds[j].Seq })
	var out []byte
	for i, d := range ds {
		if int(d.Seq) != i || int(d.Total) != len(ds) {
			t.Fatalf("datagram %d: seq %d of %d, %d received", i, d.Seq, d.Total, len(ds))
		}
		if len(d.Payload) > 1400-8 {
			t.Fatalf("datagram %d: %d bytes of payload", i, len(d.Payload))
		}
		out = append(out, d.Payload...)
	}
	return out
}

// TestUDPLargeGet sets a value over TCP and reads it back over UDP, a
// message of many datagrams reassembled by sequence number.
func TestUDPLargeGet(t *testing.T) {
	tcpAddr, udpAddr := startGocachedUDP(t, nil)
	value := bytes.Repeat([]byte("0123456789abcdef"), 60<<10/16)
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if got := textRoundTrip(t, tc, fmt.Sprintf("set large 3 0 %d\r\n%s\r\n", len(value), value), "\r\n"); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	c := dialUDP(t, udpAddr)
	// Loopback may drop datagrams under load: retry a few times.
	var ds []testutil.UDPDatagram
	want := fmt.Sprintf("VALUE large 3 %d\r\n%s\r\nEND\r\n", len(value), value)
	for try := 0; try < 3; try++ {
		ds, err = testutil.UDPRoundTrip(c, uint16(100+try), []byte("get large\r\n"), 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) > 0 && int(ds[0].Total) == len(ds) {
			break
		}
	}
	if got := reassemble(t, ds); string(got) != want {
		t.Fatalf("reassembled %d bytes, want %d", len(got), len(want))
	}
}

// TestUDPReplyBudget: one datagram cannot make gocached send much more
// than the largest item: a get naming a big key many times answers
// SERVER_ERROR, and requests past the budget are not executed.
func TestUDPReplyBudget(t *testing.T) {
	tcpAddr, udpAddr := startGocachedUDP(t, nil)
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	value := strings.Repeat("z", 900<<10)
	if got := textRoundTrip(t, tc, fmt.Sprintf("set k 0 0 %d\r\n%s\r\n", len(value), value), "\r\n"); got != "STORED\r\n" {
		t.Fatalf("set: %q", got)
	}
	c := dialUDP(t, udpAddr)
	// A second to answer: the thousand lookups take hundreds of
	// milliseconds under -race on a loaded machine.
	ds, err := testutil.UDPRoundTrip(c, 1, []byte("get "+strings.Repeat("k ", 1000)+"\r\n"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || string(ds[0].Payload) != "SERVER_ERROR out of memory writing get response\r\n" {
		t.Fatalf("multiget past the budget:\n%s", renderDatagrams(ds))
	}
	// Each stats reply is a few KB: a datagram full of them stops at the
	// budget.
	ds, err = testutil.UDPRoundTrip(c, 2, []byte(strings.Repeat("stats\r\n", 9000)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for _, d := range ds {
		sent += len(d.Payload)
	}
	if sent > 2<<20 {
		t.Fatalf("%d bytes sent for one datagram", sent)
	}
}

func TestUDPConfig(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.UDPPort, cfg.SASL = 11211, true
	if _, err := server.New(cfg); err == nil || err.Error() != "ERROR: Cannot enable UDP while using binary SASL authentication." {
		t.Errorf("UDP with SASL: %v", err)
	}
	// UDP is off by default.
	s := testutil.StartGocachedServer(t, nil)
	if len(s.UDPAddrs()) != 0 {
		t.Errorf("UDP sockets by default: %v", s.UDPAddrs())
	}
	// -s disables UDP.
	cfg = server.DefaultConfig()
	cfg.UDPPort, cfg.UnixSocket = -1, "/nonexistent/sock"
	if s, err := server.New(cfg); err != nil || len(s.UDPAddrs()) != 0 {
		t.Errorf("UDP with a unix socket: %v", err)
	}
}

// TestUDPStats checks that UDP traffic is counted and its readers are
// connections, as memcached's per-thread UDP connections.
func TestUDPStats(t *testing.T) {
	tcpAddr, udpAddr := startGocachedUDP(t, func(c *server.Config) { c.Threads = 2 })
	c := dialUDP(t, udpAddr)
	if _, err := testutil.UDPRoundTrip(c, 1, []byte("get nothing\r\n"), 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	tc, err := net.Dial("tcp", tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	out := textRoundTrip(t, tc, "stats\r\n", "END\r\n")
	for _, want := range []string{"STAT cmd_get 1\r\n", "STAT get_misses 1\r\n", "STAT curr_connections 3\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats lack %q", want)
		}
	}
	out = textRoundTrip(t, tc, "stats conns\r\n", "END\r\n")
	if !strings.Contains(out, "addr udp:"+udpAddr+"\r\n") {
		t.Errorf("stats conns shows no UDP connection:\n%s", out)
	}
}
