package testutil

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// ConfigEndpoint is a fake ElastiCache configuration endpoint: it answers
// `config get cluster` with the node list it holds, in the format AWS
// documents for auto discovery, and ERROR to anything else.
type ConfigEndpoint struct {
	// Addr is the endpoint's "127.0.0.1:port".
	Addr string

	mu      sync.Mutex
	version int
	nodes   []string // host|ip|port
	legacy  bool
}

// SetLegacy makes the endpoint answer as an ElastiCache engine before
// 1.4.14: ERROR to `config get cluster`, the configuration as the value of
// the key AmazonElastiCache:cluster instead.
func (e *ConfigEndpoint) SetLegacy(legacy bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.legacy = legacy
}

// StartConfigEndpoint starts a ConfigEndpoint listing nodes ("host|ip|port"
// entries) and stops it when the test ends.
func StartConfigEndpoint(tb testing.TB, nodes ...string) *ConfigEndpoint {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	e := &ConfigEndpoint{Addr: ln.Addr().String()}
	e.Set(nodes...)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go e.serve(conn)
		}
	}()
	return e
}

// ConfigEntry is the "host|ip|port" entry of the node at addr ("ip:port").
func ConfigEntry(host, addr string) string {
	ip, port, _ := net.SplitHostPort(addr)
	return host + "|" + ip + "|" + port
}

// Set replaces the node list and bumps the configuration version.
func (e *ConfigEndpoint) Set(nodes ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version++
	e.nodes = nodes
}

func (e *ConfigEndpoint) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		e.mu.Lock()
		data := fmt.Sprintf("%d\n%s\n", e.version, strings.Join(e.nodes, " "))
		legacy := e.legacy
		e.mu.Unlock()
		switch cmd := strings.TrimSpace(line); {
		case cmd == "config get cluster" && !legacy:
			_, _ = fmt.Fprintf(conn, "CONFIG cluster 0 %d\r\n%s\r\nEND\r\n", len(data), data)
		case cmd == "get AmazonElastiCache:cluster" && legacy:
			_, _ = fmt.Fprintf(conn, "VALUE AmazonElastiCache:cluster 0 %d\r\n%s\r\nEND\r\n", len(data), data)
		case strings.HasPrefix(cmd, "get "):
			_, _ = io.WriteString(conn, "END\r\n")
		default:
			_, _ = io.WriteString(conn, "ERROR\r\n")
		}
	}
}
