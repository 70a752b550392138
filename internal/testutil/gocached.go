package testutil

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gocached/gocached/server"
)

// StartGocached starts gocached in-process on a free loopback TCP port, with
// memcached's defaults changed by mutate (which may be nil), shuts it down
// when the test ends, and returns its "127.0.0.1:port" address.
func StartGocached(tb testing.TB, mutate func(*server.Config)) string {
	tb.Helper()
	s := startGocached(tb, func(cfg *server.Config) {
		cfg.Port = 0
		cfg.Listen = []string{"127.0.0.1"}
		if mutate != nil {
			mutate(cfg)
		}
	})
	for _, a := range s.Addrs() {
		if a.Network() == "tcp" {
			WaitListening(tb, "tcp", a.String())
			return a.String()
		}
	}
	tb.Fatalf("gocached listens on no TCP address: %v", s.Addrs())
	return ""
}

// StartGocachedUnix starts gocached in-process listening only on a unix
// socket in a fresh temporary directory (memcached's -s, which disables TCP
// and UDP), with mutate applied after the socket path is set, shuts it down
// when the test ends, and returns the socket's path.
func StartGocachedUnix(tb testing.TB, mutate func(*server.Config)) string {
	tb.Helper()
	// A short directory: a unix socket path must fit in 108 bytes, and
	// tb.TempDir embeds the test's name.
	dir, err := os.MkdirTemp("", "gocached")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s")
	startGocached(tb, func(cfg *server.Config) {
		cfg.Port = 0
		cfg.UnixSocket = path
		if mutate != nil {
			mutate(cfg)
		}
	})
	WaitListening(tb, "unix", path)
	return path
}

// startGocached builds, opens and serves a server from DefaultConfig changed
// by mutate, and registers its shutdown with tb.
func startGocached(tb testing.TB, mutate func(*server.Config)) *server.Server {
	tb.Helper()
	cfg := server.DefaultConfig()
	mutate(&cfg)
	s, err := server.New(cfg)
	if err != nil {
		tb.Fatalf("server.New: %v", err)
	}
	if err := s.Listen(); err != nil {
		tb.Fatalf("server.Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("gocached shutdown: %v", err)
		}
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, server.ErrServerClosed) {
				tb.Errorf("gocached Serve: %v", err)
			}
		case <-ctx.Done():
			tb.Errorf("gocached Serve did not return after Shutdown")
		}
	})
	return s
}
