package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunWarmRestart runs the real server with -e, stores items, stops it
// with SIGUSR1 and starts it again: the items are back.
func TestRunWarmRestart(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memory files need Linux")
	}
	mem := filepath.Join(t.TempDir(), "memory_file")
	start := func() (addr string, done chan int, errb *bytes.Buffer) {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		done = make(chan int, 1)
		errb = &bytes.Buffer{}
		go func() {
			done <- run([]string{"gocached", "-u", "root", "-l", "127.0.0.1", "-p", strconv.Itoa(port),
				"-U", "0", "-m", "8", "-e", mem, "-vv"}, &bytes.Buffer{}, errb)
		}()
		for i := 0; ; i++ {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				return addr, done, errb
			}
			if i == 100 {
				t.Fatalf("server not listening: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	roundTrip := func(addr, req string, lines int) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprint(c, req)
		r := bufio.NewReader(c)
		var out strings.Builder
		for i := 0; lines < 0 || i < lines; i++ {
			s, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%q: %v after %q", req, err, out.String())
			}
			out.WriteString(s)
			if lines < 0 && s == "END\r\n" {
				break
			}
		}
		return out.String()
	}
	stop := func(done chan int, errb *bytes.Buffer) {
		t.Helper()
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("exit %d after SIGUSR1: %s", code, errb)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no exit after SIGUSR1")
		}
	}

	addr, done, errb := start()
	if got := roundTrip(addr, "set a 5 0 5\r\nhello\r\nset b 0 0 1\r\nx\r\ndelete b\r\n", 3); got != "STORED\r\nSTORED\r\nDELETED\r\n" {
		t.Fatalf("set: %q", got)
	}
	if got := roundTrip(addr, "stats settings\r\n", -1); !strings.Contains(got, "STAT memory_file "+mem+"\r\n") {
		t.Errorf("stats settings lacks memory_file: %q", got)
	}
	gets := roundTrip(addr, "gets a\r\n", 3)
	stop(done, errb)
	if _, err := os.Stat(mem + ".meta"); err != nil {
		t.Fatalf("no metadata after SIGUSR1: %v; log %s", err, errb)
	}

	addr, done, errb = start()
	if got := roundTrip(addr, "gets a b\r\n", 3); got != gets {
		t.Errorf("after restart: %q, want %q", got, gets)
	}
	stop(done, errb)
	if !strings.Contains(errb.String(), "restored items from memory file") {
		t.Errorf("restart log: %s", errb)
	}
}

// TestRunClusterConfigHangup runs the real server with -o cluster_config:
// SIGHUP re-reads the file.
func TestRunClusterConfigHangup(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cluster.cfg")
	if err := os.WriteFile(file, []byte("1\nnode-0|10.0.0.1|11211\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	done := make(chan int, 1)
	errb := &syncBuffer{}
	go func() {
		done <- run([]string{"gocached", "-u", "root", "-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0",
			"-m", "8", "-o", "cluster_config=" + file}, &bytes.Buffer{}, errb)
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	configGet := func() string {
		t.Helper()
		for i := 0; ; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				if i == 100 {
					t.Fatalf("server not listening: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprint(c, "config get cluster\r\n")
			r := bufio.NewReader(c)
			var out strings.Builder
			for {
				s, err := r.ReadString('\n')
				if err != nil {
					t.Fatalf("config get cluster: %v after %q", err, out.String())
				}
				out.WriteString(s)
				if s == "END\r\n" {
					return out.String()
				}
			}
		}
	}
	if got := configGet(); got != "CONFIG cluster 0 24\r\n1\nnode-0|10.0.0.1|11211\n\r\nEND\r\n" {
		t.Fatalf("at start: %q", got)
	}
	if err := os.WriteFile(file, []byte("2\nnode-0|10.0.0.1|11211\nnode-1|10.0.0.2|11211\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	want := "CONFIG cluster 0 46\r\n2\nnode-0|10.0.0.1|11211 node-1|10.0.0.2|11211\n\r\nEND\r\n"
	deadline := time.Now().Add(5 * time.Second)
	for got := configGet(); got != want; got = configGet() {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: %q, want %q", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}
