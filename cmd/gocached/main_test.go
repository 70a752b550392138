package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocached/gocached/server"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"gocached"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunHelpVersionLicense(t *testing.T) {
	code, out, errs := runArgs("-h")
	if code != 0 || !strings.HasPrefix(out, "gocached 1.6.18\n-p, --port=<num>          TCP port to listen on (default: 11211)\n") || errs != "" {
		t.Errorf("-h: %d %q %q", code, out[:min(len(out), 120)], errs)
	}
	for _, want := range []string{"-vv                       very verbose", "   - maxconns_fast:", "   - ssl_min_version:", "-N, --napi_ids"} {
		if !strings.Contains(out, want) {
			t.Errorf("-h output lacks %q", want)
		}
	}
	// Tools read -h to decide whether extstore is there: gocached has none.
	if strings.Contains(out, "ext_") || strings.Contains(out, "slab_automove_freeratio") {
		t.Error("-h lists extstore options, which gocached accepts but does not implement")
	}
	for _, args := range [][]string{{"-V"}, {"--version"}, {"memcached", "-V"}, {"-V", "-o", "bogus"}} {
		code, out, errs = runArgs(args...)
		if code != 0 || out != "gocached 1.6.18\n" || errs != "" {
			t.Errorf("%q: %d %q %q", args, code, out, errs)
		}
		// Scripts take the second word of "memcached -V".
		if f := strings.Fields(out); len(f) != 2 || f[1] != compatVersion {
			t.Errorf("%q: unparseable version line %q", args, out)
		}
	}
	code, out, _ = runArgs("-i")
	if code != 0 || !strings.HasPrefix(out, "gocached 1.6.18\n\n") {
		t.Errorf("-i: %d %q", code, out)
	}
}

func TestRunArgErrors(t *testing.T) {
	tests := []struct {
		args       []string
		code       int
		wantStderr string
	}{
		{[]string{"-o", "bogus"}, 1, "Illegal suboption \"bogus\"\n"},
		{[]string{"-o", "hashpower=20,nosuch=1"}, 1, "Illegal suboption \"nosuch=1\"\n"},
		{[]string{"-x"}, 1, "gocached: invalid option -- 'x'\nIllegal argument \"?\"\n"},
		{[]string{"-u", "root", "-I", "512"}, 64, "Item max size cannot be less than 1024 bytes.\n"},
		{[]string{"-u", "root", "-I", "2k"}, 64, "slab_chunk_max (bytes: 524288) cannot be larger than -I (item_size_max 2048)\n"},
	}
	for _, tt := range tests {
		code, out, errs := runArgs(tt.args...)
		if code != tt.code || errs != tt.wantStderr || out != "" {
			t.Errorf("%q: %d %q %q; want %d %q", tt.args, code, out, errs, tt.code, tt.wantStderr)
		}
	}
}

func TestRunRootNeedsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	code, _, errs := runArgs("-p", "0")
	if code != exUsage || errs != "can't run as root without the -u switch\n" {
		t.Errorf("root without -u: %d %q", code, errs)
	}
	code, _, errs = runArgs("-u", "no-such-user-gocached")
	if code != exNoUser || errs != "can't find the user no-such-user-gocached to switch to\n" {
		t.Errorf("unknown user: %d %q", code, errs)
	}
}

// fakeServer stands in for server.Server.
type fakeServer struct {
	cfg       server.Config
	listenErr error
	serving   chan struct{} // closed when Serve runs
	stop      chan error    // Serve returns what is sent here
	mu        sync.Mutex
	shutdowns int
}

func (f *fakeServer) Listen() error { return f.listenErr }
func (f *fakeServer) Addrs() []net.Addr {
	return []net.Addr{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 11211}}
}
func (f *fakeServer) Serve() error {
	close(f.serving)
	return <-f.stop
}
func (f *fakeServer) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.shutdowns++
	f.mu.Unlock()
	select {
	case f.stop <- server.ErrServerClosed:
	default:
	}
	return nil
}

func withFake(t *testing.T, f *fakeServer) {
	t.Helper()
	f.serving = make(chan struct{})
	f.stop = make(chan error, 1)
	old := newServer
	newServer = func(cfg server.Config) (daemon, error) {
		f.cfg = cfg
		return f, nil
	}
	t.Cleanup(func() { newServer = old })
}

func TestRunSignalShutdownAndPidFile(t *testing.T) {
	f := &fakeServer{}
	withFake(t, f)
	pid := filepath.Join(t.TempDir(), "gocached.pid")
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run([]string{"gocached", "-u", "root", "-p", "0", "-P", pid, "-m", "8", "-vv"}, &bytes.Buffer{}, &errb)
	}()
	select {
	case <-f.serving:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve not called")
	}
	b, err := os.ReadFile(pid)
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("pid file: %q, %v", b, err)
	}
	if f.cfg.Logger == nil || f.cfg.Store.MemoryLimit != 8<<20 || f.cfg.Verbosity != 2 {
		t.Errorf("config passed to server: %+v", f.cfg)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after SIGTERM; stderr %s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if f.shutdowns != 1 {
		t.Errorf("Shutdown called %d times", f.shutdowns)
	}
	if _, err := os.Stat(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file not removed: %v", err)
	}
	if !strings.Contains(errb.String(), "listening") {
		t.Errorf("-vv log lacks the listen line: %s", errb.String())
	}
}

func TestRunServerClosedExitsZero(t *testing.T) {
	f := &fakeServer{}
	withFake(t, f)
	done := make(chan int, 1)
	go func() { done <- run([]string{"gocached", "-u", "root", "-A"}, &bytes.Buffer{}, &bytes.Buffer{}) }()
	<-f.serving
	f.stop <- server.ErrServerClosed // as after the "shutdown" command
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	if !f.cfg.EnableShutdown {
		t.Error("-A not passed on")
	}
}

func TestRunListenFailure(t *testing.T) {
	f := &fakeServer{listenErr: errors.New("address already in use")}
	withFake(t, f)
	code, _, errs := runArgs("-u", "root", "-v", "-N", "4", "-o", "hashpower=20")
	if code != exOSErr || !strings.Contains(errs, "failed to listen: address already in use") {
		t.Errorf("%d %q", code, errs)
	}
	// -v shows warnings, among them the options not implemented.
	for _, want := range []string{"option accepted, not implemented", `"-N 4"`, `"-o hashpower=20"`} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q: %s", want, errs)
		}
	}
	// Without -v they are not shown.
	_, _, errs = runArgs("-u", "root", "-L")
	if strings.Contains(errs, "not implemented") {
		t.Errorf("warning shown without -v: %s", errs)
	}
}

func TestLoggerLevels(t *testing.T) {
	for v, want := range map[int][3]bool{ // error, warn, debug shown
		0: {true, false, false},
		1: {true, true, false},
		2: {true, true, true},
		3: {true, true, true},
	} {
		var b bytes.Buffer
		l := newLogger(&b, v)
		l.Error("E-msg")
		l.Warn("W-msg")
		l.Debug("D-msg")
		got := [3]bool{strings.Contains(b.String(), "E-msg"), strings.Contains(b.String(), "W-msg"), strings.Contains(b.String(), "D-msg")}
		if got != want {
			t.Errorf("verbosity %d: shown %v, want %v", v, got, want)
		}
	}
}
