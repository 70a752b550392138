package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// groupStat reads one "stats [group]" value over a fresh connection.
func groupStat(t *testing.T, addr, group, name string) int {
	t.Helper()
	c, r := dialText(t, "tcp", addr)
	defer c.Close()
	got := roundTrip(t, c, r, strings.TrimSpace("stats "+group)+"\r\n")
	for _, line := range strings.Split(got, "\r\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == name {
			v, err := strconv.Atoi(f[2])
			if err != nil {
				t.Fatalf("stat %s: %q", name, line)
			}
			return v
		}
	}
	t.Fatalf("no stat %s in %q", name, got)
	return 0
}

// waitFor polls cond for up to 10 s (the sweeper works by the second).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// openIdle opens n connections that each send one version and then wait.
func openIdle(t *testing.T, addr string, n int) ([]net.Conn, []*bufio.Reader) {
	t.Helper()
	var cs []net.Conn
	var rs []*bufio.Reader
	for i := 0; i < n; i++ {
		c, r := dialText(t, "tcp", addr)
		expectReply(t, c, r, "version\r\n", "VERSION "+server.Version+"\r\n")
		cs, rs = append(cs, c), append(rs, r)
	}
	return cs, rs
}

// TestIdleConnectionsParkAndResume: idle connections give their goroutines
// back, and each is served again, in order, when it sends.
func TestIdleConnectionsParkAndResume(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections park only on Linux (epoll)")
	}
	addr := testutil.StartGocached(t, nil)
	base := groupStat(t, addr, "go", "go_goroutines")
	const n = 200
	cs, rs := openIdle(t, addr, n)
	// A connection that never sent anything parks too.
	silent, silentR := dialText(t, "tcp", addr)
	waitFor(t, "idle connections to park", func() bool { return groupStat(t, addr, "go", "go_goroutines") < base+n/4 })
	for i, c := range cs {
		key := fmt.Sprintf("k%d", i)
		expectReply(t, c, rs[i], "set "+key+" 0 0 1\r\nx\r\n", "STORED\r\n")
		expectReply(t, c, rs[i], "get "+key+"\r\n", "VALUE "+key+" 0 1\r\nx\r\nEND\r\n")
	}
	expectReply(t, silent, silentR, "get k0\r\n", "VALUE k0 0 1\r\nx\r\nEND\r\n")
	// Parked again after a while; a request split across the park is whole.
	waitFor(t, "connections to park again", func() bool { return groupStat(t, addr, "go", "go_goroutines") < base+n/4 })
	// A parked connection's counters are folded into the server's total.
	for name, want := range map[string]int{"cmd_set": n, "cmd_get": n + 1, "get_hits": n + 1} {
		if got := groupStat(t, addr, "", name); got != want {
			t.Errorf("%s = %d with the connections parked, want %d", name, got, want)
		}
	}
	// Connections parked again have left the netpoller (idle_linux.go: detach)
	// but are listed with their addresses as memcached lists them.
	probe, probeR := dialText(t, "tcp", addr)
	listed := roundTrip(t, probe, probeR, "stats conns\r\n")
	probe.Close()
	if got := strings.Count(listed, ":addr tcp:127.0.0.1:"); got < n+2 {
		t.Fatalf("stats conns lists %d client addresses, want at least %d:\n%s", got, n+2, listed)
	}
	c, r := cs[0], rs[0]
	// Its last request's deadline may have passed while it parked again.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("get k")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	expectReply(t, c, r, "1\r\n", "VALUE k1 0 1\r\nx\r\nEND\r\n")
	for _, c := range cs {
		c.Close()
	}
	silent.Close()
	waitFor(t, "closed connections to be counted", func() bool { return groupStat(t, addr, "", "curr_connections") == 1 })
}

// TestParkedConnectionIdleTimeout: the idle timeout closes parked
// connections too.
func TestParkedConnectionIdleTimeout(t *testing.T) {
	addr := testutil.StartGocached(t, func(cfg *server.Config) { cfg.IdleTimeout = 4 * time.Second })
	cs, rs := openIdle(t, addr, 3)
	start := time.Now()
	for i := range cs {
		_ = cs[i].SetReadDeadline(time.Now().Add(15 * time.Second))
		expectClosed(t, rs[i])
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
	if got := groupStat(t, addr, "", "idle_kicks"); got != len(cs) {
		t.Fatalf("idle_kicks = %d, want %d", got, len(cs))
	}
}

// TestShutdownWithParkedConnections: shutdown closes parked connections and
// does not wait for them to send.
func TestShutdownWithParkedConnections(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections park only on Linux (epoll)")
	}
	s := testutil.StartGocachedServer(t, nil)
	addr := s.Addrs()[0].String()
	base := groupStat(t, addr, "go", "go_goroutines")
	cs, rs := openIdle(t, addr, 20)
	waitFor(t, "idle connections to park", func() bool { return groupStat(t, addr, "go", "go_goroutines") < base+5 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for i := range cs {
		_ = cs[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		expectClosed(t, rs[i])
	}
}

// TestMidValueConnectionsDoNotPark: connections in the middle of a value
// (reading a set's value into its reserved item, or blocked writing a
// pinned reply to a client that does not read) keep their goroutines
// through the sweeper's passes, and every byte arrives whole.
func TestMidValueConnectionsDoNotPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("idle connections park only on Linux (epoll)")
	}
	addr := testutil.StartGocached(t, nil)
	base := groupStat(t, addr, "go", "go_goroutines")
	const n, size = 8, 100000
	value := []byte(strings.Repeat("0123456789abcdef", size/16+1)[:size])
	var cs []net.Conn
	var rs []*bufio.Reader
	for i := 0; i < n; i++ {
		c, r := dialText(t, "tcp", addr)
		if _, err := fmt.Fprintf(c, "set big%d 0 0 %d\r\n%s", i, size, value[:size/2]); err != nil {
			t.Fatal(err)
		}
		cs, rs = append(cs, c), append(rs, r)
	}
	// A reader that stops reading with pinned replies pending.
	stalled, stalledR := dialText(t, "tcp", addr)
	expectReply(t, stalled, stalledR, fmt.Sprintf("set pinned 0 0 %d\r\n%s\r\n", size, value), "STORED\r\n")
	const gets = 64
	if _, err := stalled.Write([]byte(strings.Repeat("get pinned\r\n", gets))); err != nil {
		t.Fatal(err)
	}
	// Past idleParkAfter and a few sweeps: none of them parked.
	time.Sleep(4500 * time.Millisecond)
	if g := groupStat(t, addr, "go", "go_goroutines"); g < base+n {
		t.Errorf("%d goroutines, want at least %d: a connection mid-value parked", g, base+n)
	}
	for i, c := range cs {
		expectReply(t, c, rs[i], string(value[size/2:])+"\r\n", "STORED\r\n")
		expectReply(t, c, rs[i], fmt.Sprintf("get big%d\r\n", i), fmt.Sprintf("VALUE big%d 0 %d\r\n%s\r\nEND\r\n", i, size, value))
	}
	want := fmt.Sprintf("VALUE pinned 0 %d\r\n%s\r\nEND\r\n", size, value)
	buf := make([]byte, len(want))
	_ = stalled.SetReadDeadline(time.Now().Add(30 * time.Second))
	for i := 0; i < gets; i++ {
		if _, err := io.ReadFull(stalledR, buf); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if string(buf) != want {
			t.Fatalf("reply %d differs from the stored value", i)
		}
	}
}
