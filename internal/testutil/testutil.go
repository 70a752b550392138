// Package testutil holds the helpers that gocached's tests share: finding
// external programs, free loopback ports, and starting a real memcached to
// compare against.
package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireTool returns the path of an external program the test needs. When
// it is missing the test is skipped with a clear message, except under CI
// (the CI environment variable is set, as .ci/run does), where a missing tool
// fails the test: CI must never pass by skipping.
func RequireTool(tb testing.TB, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found in PATH (.ci/run installs what the tests need: memcached, libmemcached-tools, nutcracker)", name)
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip("skipping: " + msg)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartMemcached starts the real memcached from PATH on a free loopback port
// with the extra args given, waits until it accepts connections, stops it when
// the test ends, and returns its "127.0.0.1:port" address.
//
// memcached picks the port itself (-p -1) and reports it in the file named by
// MEMCACHED_PORT_FILENAME, which it writes after binding: choosing a port
// first (FreePort) races with every other listener and client socket that
// parallel tests open meanwhile.
func StartMemcached(tb testing.TB, args ...string) string {
	tb.Helper()
	tcpAddr, _ := startMemcached(tb, false, args)
	return tcpAddr
}

// StartMemcachedUDP is StartMemcached with UDP on too (-U -1): it returns
// both "127.0.0.1:port" addresses.
func StartMemcachedUDP(tb testing.TB, args ...string) (tcpAddr, udpAddr string) {
	tb.Helper()
	return startMemcached(tb, true, args)
}

func startMemcached(tb testing.TB, udp bool, args []string) (tcpAddr, udpAddr string) {
	tb.Helper()
	bin := RequireTool(tb, "memcached")
	portFile := filepath.Join(tb.TempDir(), "port")
	udpPort := "0"
	if udp {
		udpPort = "-1"
	}
	full := append([]string{"-l", "127.0.0.1", "-p", "-1", "-U", udpPort}, args...)
	if os.Geteuid() == 0 {
		full = append(full, "-u", "root")
	}
	cmd := exec.Command(bin, full...)
	cmd.Env = append(os.Environ(), "MEMCACHED_PORT_FILENAME="+portFile)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The file holds lines like "TCP INET: 12345" and "UDP INET: 12346".
		if b, err := os.ReadFile(portFile); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if port, ok := strings.CutPrefix(line, "TCP INET: "); ok {
					tcpAddr = net.JoinHostPort("127.0.0.1", strings.TrimSpace(port))
				}
				if port, ok := strings.CutPrefix(line, "UDP INET: "); ok {
					udpAddr = net.JoinHostPort("127.0.0.1", strings.TrimSpace(port))
				}
			}
			if tcpAddr != "" && (!udp || udpAddr != "") {
				WaitListening(tb, "tcp", tcpAddr)
				return tcpAddr, udpAddr
			}
		}
		select {
		case err := <-exited:
			exited <- err
			tb.Fatalf("memcached %v exited at start: %v", full, err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("memcached %v did not report its ports within 5 s", full)
		}
	}
}

// WaitListening waits up to 5 s for addr to accept a connection.
func WaitListening(tb testing.TB, network, addr string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout(network, addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s %s not listening: %v", network, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SendLines writes text-protocol commands to addr on a fresh connection and
// returns the first n reply lines without their line endings.
func SendLines(tb testing.TB, addr, cmds string, n int) []string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmds); err != nil {
		tb.Fatal(err)
	}
	r := bufio.NewReader(c)
	lines := make([]string, 0, n)
	for range n {
		l, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("%q: read after %q: %v", cmds, lines, err)
		}
		lines = append(lines, strings.TrimRight(l, "\r\n"))
	}
	return lines
}
