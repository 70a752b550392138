package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

// dialText opens a text-protocol connection with a deadline on every
// operation so a broken server fails the test instead of hanging it.
func dialText(t *testing.T, network, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// No test talks to a connection for this long: a server that stops
	// answering fails the test rather than hanging it.
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// expectReply sends req and requires the whole reply to be want.
func expectReply(t *testing.T, c net.Conn, r *bufio.Reader, req, want string) {
	t.Helper()
	if got := roundTrip(t, c, r, req); got != want {
		t.Fatalf("%q: got %q, want %q", req, got, want)
	}
}

// expectClosed reads until the server closes the connection.
func expectClosed(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("want EOF, got %v after %q", err, rest)
	}
	return string(rest)
}

// dialServed dials until the server accepts the connection for service:
// a connection that just closed may still hold its slot for a moment.
func dialServed(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		c, r := dialText(t, "tcp", addr)
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, "version\r\n")
		if line, _ := r.ReadString('\n'); strings.HasPrefix(line, "VERSION") {
			return c, r
		}
		if time.Now().After(deadline) {
			t.Fatal("no connection slot freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConnectionLimit(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.MaxConns = 2 })
	c1, _ := dialServed(t, addr)
	c2, r2 := dialServed(t, addr)
	_, r3 := dialText(t, "tcp", addr)
	if got := expectClosed(t, r3); got != "ERROR Too many open connections\r\n" {
		t.Fatalf("third connection got %q", got)
	}
	c1.Close()
	dialServed(t, addr) // c1's slot is released
	expectReply(t, c2, r2, "version\r\n", "VERSION "+server.Version+"\r\n")
}

func TestLongLineClosesConnection(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, r := dialText(t, "tcp", addr)
	if _, err := c.Write([]byte(strings.Repeat("x", 4096))); err != nil {
		t.Fatal(err)
	}
	if got := expectClosed(t, r); got != "" {
		t.Fatalf("got %q before close", got)
	}
	// A long multiget line is fine.
	c, r = dialText(t, "tcp", addr)
	keys := strings.Repeat(" "+strings.Repeat("k", 250), 100)
	expectReply(t, c, r, "get"+keys+"\r\n", "END\r\n")
}

func TestIdleTimeout(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.IdleTimeout = 300 * time.Millisecond })
	c, r := dialText(t, "tcp", addr)
	expectReply(t, c, r, "version\r\n", "VERSION "+server.Version+"\r\n")
	start := time.Now()
	expectClosed(t, r)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

func TestTooLargeValueIsSwallowed(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MaxItemSize = 2048 })
	c, r := dialText(t, "tcp", addr)
	expectReply(t, c, r, "set k 0 0 1\r\na\r\n", "STORED\r\n")
	big := strings.Repeat("v", 100000)
	expectReply(t, c, r, "set k 0 0 100000\r\n"+big+"\r\n", "SERVER_ERROR object too large for cache\r\n")
	// The payload was not parsed as commands, and the old value is gone.
	expectReply(t, c, r, "get k\r\n", "END\r\n")
}

func TestUnixSocket(t *testing.T) {
	path := testutil.StartGocachedUnix(t, func(cfg *server.Config) { cfg.UnixMask = 0o770 })
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o770 {
		t.Errorf("socket mode %o, want 770", perm)
	}
	c, r := dialText(t, "unix", path)
	expectReply(t, c, r, "set k 0 0 1\r\na\r\n", "STORED\r\n")
}

// TestShutdownFinishesInFlight: replies to requests already read are
// written before the connection closes, and Serve returns ErrServerClosed.
func TestShutdownFinishesInFlight(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.Listen = []string{"127.0.0.1"}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	c, r := dialText(t, "tcp", s.Addrs()[0].String())
	expectReply(t, c, r, "set k 0 0 1\r\na\r\n", "STORED\r\n")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, server.ErrServerClosed) {
		t.Fatalf("Serve returned %v", err)
	}
	expectClosed(t, r)
	if _, err := net.DialTimeout("tcp", s.Addrs()[0].String(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestShutdownCommand(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.Port = 0
	cfg.Listen = []string{"127.0.0.1"}
	cfg.EnableShutdown = true
	s, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	c, r := dialText(t, "tcp", s.Addrs()[0].String())
	_, _ = io.WriteString(c, "shutdown\r\n")
	expectClosed(t, r)
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not begin shutting down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStatsGo: gocached's own "stats go" group reports the Go runtime.
func TestStatsGo(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, r := dialText(t, "tcp", addr)
	got := roundTrip(t, c, r, "stats go\r\n")
	for _, key := range []string{"STAT go_heap_objects ", "STAT go_gc_pause_max_ns ", "STAT go_goroutines "} {
		if !strings.Contains(got, key) {
			t.Errorf("stats go lacks %q:\n%s", key, got)
		}
	}
	if !strings.HasSuffix(got, "END\r\n") {
		t.Errorf("stats go does not end with END: %q", got)
	}
}

// TestConnectionLimitSlow: without maxconns_fast a client over the limit
// waits in the listen backlog and is served once a slot frees.
func TestConnectionLimitSlow(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.MaxConns = 1
		cfg.MaxConnsFast = false
	})
	c1, _ := dialServed(t, addr)
	c2, r2 := dialText(t, "tcp", addr)
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c2, "version\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c2.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if line, err := r2.ReadString('\n'); err == nil {
		t.Fatalf("served over the limit: %q", line)
	}
	c1.Close()
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r2.ReadString('\n'); line != "VERSION "+server.Version+"\r\n" {
		t.Fatalf("after a slot freed: %q, %v", line, err)
	}
}

// TestMetadumpFormat: lru_crawler metadump prints memcached's line format
// (URI-encoded key, absolute expiry or -1, last access, CAS, fetched,
// class, size), then END.
func TestMetadumpFormat(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	c, r := dialText(t, "tcp", addr)
	roundTrip(t, c, r, "set foo 0 0 3\r\nbar\r\nset k%20x 5 100 1\r\nz\r\nget foo\r\n")
	got := roundTrip(t, c, r, "lru_crawler metadump all\r\n")
	want := regexp.MustCompile(`^(key=(foo exp=-1|k%2520x exp=\d+) la=\d+ cas=\d+ fetch=(yes|no) cls=\d+ size=\d+\n){2}END\r\n$`)
	if !want.MatchString(got) || !strings.Contains(got, "key=foo exp=-1") || !strings.Contains(got, "fetch=yes") {
		t.Fatalf("metadump:\n%s", got)
	}
}

// TestCachedumpExpired: stats cachedump shows an item stored already
// expired (negative or long-past exptime) as memcached does, with the
// time one second after its epoch, 62 s before the server started.
func TestCachedumpExpired(t *testing.T) {
	// No background maintenance: its LRU reclaiming would take the dead
	// items first (as memcached's maintainer may); cachedump in recency
	// order: memcached's segmented LRU.
	addr := testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.Maintenance = -1
		cfg.Store.Eviction = slab.EvictionLRU
	})
	c, r := dialText(t, "tcp", addr)
	roundTrip(t, c, r, "set neg 0 -1 1\r\nx\r\nset past 0 1000000000 1\r\nx\r\nset live 0 0 1\r\nx\r\n")
	stats := roundTrip(t, c, r, "stats\r\n")
	var now, uptime int64
	for _, line := range strings.Split(stats, "\r\n") {
		_, _ = fmt.Sscanf(line, "STAT time %d", &now)
		_, _ = fmt.Sscanf(line, "STAT uptime %d", &uptime)
	}
	shown := now - uptime - 61
	got := roundTrip(t, c, r, "stats cachedump 1 0\r\n")
	want := fmt.Sprintf("ITEM live [1 b; 0 s]\r\nITEM past [1 b; %d s]\r\nITEM neg [1 b; %d s]\r\nEND\r\n", shown, shown)
	if got != want {
		t.Fatalf("cachedump:\n%s\nwant:\n%s", got, want)
	}
}
