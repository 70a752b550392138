package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ServerSpec says how to start one server under test.
type ServerSpec struct {
	Name  string   `json:"name"`   // "gocached" or "memcached"
	Bin   string   `json:"bin"`    // executable
	MemMB int      `json:"mem_mb"` // -m
	Extra []string `json:"extra,omitempty"`
	CPU   int      `json:"cpu"` // pin to this CPU (taskset -c); < 0 = no pinning
	// CPUs, when set, pins the server to this CPU list instead (taskset -c
	// syntax, e.g. "0-3") and gives it as many worker threads (-t).
	CPUs string `json:"cpus,omitempty"`
}

// CountCPUs returns how many CPUs a taskset-style list ("0-3,6") names.
func CountCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return 0, fmt.Errorf("bad CPU list %q", list)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("bad CPU list %q", list)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// Server is a running server process.
type Server struct {
	Spec    ServerSpec
	PID     int
	Addr    string
	Version string
	Args    []string

	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 64<<10 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSpace(s.b.String())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartServer starts spec fresh on a free loopback port with memcached's
// flags (-p PORT -l 127.0.0.1 -m MB -t 1 -U 0; -t N with spec.CPUs), pinned to spec.CPU or spec.CPUs, waits up
// to 5 s until it answers "version", and returns it.
func StartServer(ctx context.Context, spec ServerSpec) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	threads := 1
	if spec.CPUs != "" {
		if threads, err = CountCPUs(spec.CPUs); err != nil {
			return nil, err
		}
	}
	args := []string{"-p", strconv.Itoa(port), "-l", "127.0.0.1", "-m", strconv.Itoa(spec.MemMB), "-t", strconv.Itoa(threads), "-U", "0"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached (and gocached) refuse to run as root otherwise
	}
	args = append(args, spec.Extra...)
	bin, full := spec.Bin, args
	pin := ""
	switch {
	case spec.CPUs != "":
		pin = spec.CPUs
	case spec.CPU >= 0 && runtime.NumCPU() > 1:
		pin = strconv.Itoa(spec.CPU)
	}
	if pin != "" {
		if ts, err := exec.LookPath("taskset"); err == nil {
			bin, full = ts, append([]string{"-c", pin, spec.Bin}, args...)
		}
	}
	s := &Server{Spec: spec, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Args: args,
		stderr: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, full...)
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Bin, err)
	}
	s.PID = s.cmd.Process.Pid
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s exited at start: %s", spec.Name, s.stderr.String())
		default:
		}
		v, err := serverVersion(s.Addr, 500*time.Millisecond)
		if err == nil {
			s.Version = v
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("%s not answering on %s after 5 s: %v %s", spec.Name, s.Addr, err, s.stderr.String())
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Stop kills the server and waits for it (nothing in it is worth a graceful
// exit, and memcached takes a second to notice SIGTERM).
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stderr returns what the server printed.
func (s *Server) Stderr() string { return s.stderr.String() }

// Sample reads the server's CPU time and RSS.
func (s *Server) Sample() (ProcSample, error) { return ReadProc("/proc", s.PID) }

func serverVersion(addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		return "", err
	}
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	l = strings.TrimRight(l, "\r\n")
	if !strings.HasPrefix(l, "VERSION ") {
		return "", fmt.Errorf("version: unexpected reply %q", l)
	}
	return strings.TrimPrefix(l, "VERSION "), nil
}

// Stats returns the "stats" of the server at addr.
func Stats(addr string, timeout time.Duration) (map[string]string, error) {
	return StatsGroup(addr, "", timeout)
}

// StatsGroup returns "stats <group>" of the server at addr; a server that
// does not know the group answers with an error.
func StatsGroup(addr, group string, timeout time.Duration) (map[string]string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(strings.TrimSpace("stats "+group) + "\r\n")); err != nil {
		return nil, err
	}
	m := map[string]string{}
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return m, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "END" {
			return m, nil
		}
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 || f[0] != "STAT" {
			return m, fmt.Errorf("stats: unexpected line %q", l)
		}
		m[f[1]] = f[2]
	}
}

// PinSelf pins every thread of this process to cpu (new threads inherit the
// mask) and sets GOMAXPROCS to 1. It does nothing on a single-CPU machine.
func PinSelf(cpu int) error {
	if runtime.NumCPU() < 2 || cpu < 0 {
		return nil
	}
	var set unix.CPUSet
	set.Set(cpu)
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			return fmt.Errorf("pin thread %d to CPU %d: %w", tid, cpu, err)
		}
	}
	runtime.GOMAXPROCS(1)
	return nil
}

// BuildGocached builds ./cmd/gocached of the module at srcDir into dir.
func BuildGocached(ctx context.Context, srcDir, dir string) (string, error) {
	out := filepath.Join(dir, "gocached")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/gocached")
	cmd.Dir = srcDir
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/gocached: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return out, nil
}

// ModuleRoot finds the directory of gocached's go.mod from dir upwards.
func ModuleRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/gocached/gocached")) {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no gocached go.mod above %s", dir)
		}
		d = p
	}
}
