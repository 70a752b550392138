package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// newBenchConn returns a connection whose requests are fed straight into
// its read buffer, so a benchmark measures parsing, the store and reply
// encoding without the network.
func newBenchConn(tb testing.TB) *conn {
	tb.Helper()
	cfg := DefaultConfig()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return newConn(s, nil, 1)
}

// feed runs one batch of requests through the connection and returns the
// replies; the write buffer is reset as a real flush would.
func (c *conn) feed(batch []byte) []byte {
	if len(c.rbuf) < len(batch) {
		c.makeRoom(len(batch))
	}
	c.rpos = 0
	c.rend = copy(c.rbuf, batch)
	c.releaseValues() // replies left in item memory, pinned: as if written
	c.wbuf = c.wbuf[:0]
	c.process()
	return c.wbuf
}

func preload(tb testing.TB, c *conn, n int) {
	for i := 0; i < n; i++ {
		c.feed(fmt.Appendf(nil, "set key:%06d 0 0 32\r\n%032d\r\n", i, i))
	}
}

// pipeline repeats a request for keys 0..depth-1; format's verbs all take
// the key number.
func pipeline(format string, depth int) []byte {
	var b []byte
	for i := 0; i < depth; i++ {
		args := make([]any, strings.Count(format, "%"))
		for j := range args {
			args[j] = i
		}
		b = fmt.Appendf(b, format, args...)
	}
	return b
}

func BenchmarkProcess(b *testing.B) {
	value := bytes.Repeat([]byte("v"), 32)
	cases := []struct {
		name  string
		batch []byte
	}{
		{"get", []byte("get key:000001\r\n")},
		{"get-pipelined-10", pipeline("get key:%06d\r\n", 10)},
		{"multiget-10", []byte("get key:000000 key:000001 key:000002 key:000003 key:000004 key:000005 key:000006 key:000007 key:000008 key:000009\r\n")},
		{"set", fmt.Appendf(nil, "set key:000001 0 0 32\r\n%s\r\n", value)},
		{"set-pipelined-10", pipeline("set key:%06d 0 0 32\r\n%032d\r\n", 10)},
		{"mg", []byte("mg key:000001 v f t\r\n")},
		{"mg-pipelined-10", pipeline("mg key:%06d v f\r\n", 10)},
		{"ms", fmt.Appendf(nil, "ms key:000001 32 T0\r\n%s\r\n", value)},
		{"ms-pipelined-10", pipeline("ms key:%06d 32\r\n%032d\r\n", 10)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			c := newBenchConn(b)
			preload(b, c, 10)
			if out := c.feed(tc.batch); bytes.Contains(out, []byte("ERROR")) || len(out) == 0 {
				b.Fatalf("reply: %q", out)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				c.feed(tc.batch)
			}
		})
	}
}

// TestProcessAllocs holds the hot paths to zero allocations per request.
func TestProcessAllocs(t *testing.T) {
	c := newBenchConn(t)
	preload(t, c, 10)
	for _, batch := range []string{
		"get key:000001\r\n",
		"gets key:000001 key:000002 missing\r\n",
		"set key:000001 0 0 32\r\n01234567890123456789012345678901\r\n",
		"mg key:000001 v f t c k\r\n",
		"ms key:000001 32 T0\r\n01234567890123456789012345678901\r\n",
		"incr missing 1\r\ndelete missing\r\ntouch key:000001 0\r\n",
	} {
		c.feed([]byte(batch))
		if n := testing.AllocsPerRun(200, func() { c.feed([]byte(batch)) }); n != 0 {
			t.Errorf("%q: %v allocs per request, want 0", batch, n)
		}
	}
}

// countingConn is a net.Conn that serves one batch of input, then EOF,
// and counts the writes the server makes.
type countingConn struct {
	net.Conn // nil: only the methods below are used
	in       []byte
	writes   int
	out      []byte
}

func (f *countingConn) Read(p []byte) (int, error) {
	if len(f.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.in)
	f.in = f.in[n:]
	return n, nil
}

func (f *countingConn) Write(p []byte) (int, error) {
	f.writes++
	f.out = append(f.out, p...)
	return len(p), nil
}

func (f *countingConn) Close() error                    { return nil }
func (f *countingConn) SetReadDeadline(time.Time) error { return nil }

// TestOneWritePerBatch: the replies to a batch of pipelined requests that
// arrives in one read leave in one write.
func TestOneWritePerBatch(t *testing.T) {
	for _, batch := range [][]byte{
		pipeline("get key:%06d\r\n", 50),
		pipeline("set key:%06d 0 0 6\r\n%06d\r\n", 50),
		pipeline("mg key:%06d v\r\nmn\r\n", 50),
	} {
		s, err := New(DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		fc := &countingConn{in: batch}
		c := newConn(s, fc, 1)
		c.rbuf = make([]byte, len(batch)) // the whole batch in one read
		c.serve()
		if fc.writes != 1 {
			t.Errorf("%d writes for %d bytes of requests, want 1; replies %q", fc.writes, len(batch), fc.out[:min(len(fc.out), 80)])
		}
	}
}

// BenchmarkReplyCopyOrPin writes pipelined gets of one value (10 a batch)
// to a loopback TCP peer that discards them, the value copied into the
// write buffer or written from pinned item memory with writev: the
// measurement behind copyValueMax.
func BenchmarkReplyCopyOrPin(b *testing.B) {
	for _, size := range []int{512, 1 << 10, 2 << 10, 4 << 10, 8 << 10, 16 << 10, 64 << 10} {
		for _, mode := range []string{"copy", "pin"} {
			b.Run(fmt.Sprintf("%d/%s", size, mode), func(b *testing.B) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				go func() {
					if peer, err := ln.Accept(); err == nil {
						_, _ = io.Copy(io.Discard, peer)
						peer.Close()
					}
				}()
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				s, err := New(DefaultConfig())
				if err != nil {
					b.Fatal(err)
				}
				c := newConn(s, nc, 1)
				c.copyLimit = 0
				if mode == "copy" {
					c.copyLimit = size
				}
				c.feed(fmt.Appendf(nil, "set k 0 0 %d\r\n%s\r\n", size, bytes.Repeat([]byte("v"), size)))
				c.wbuf = c.wbuf[:0]
				batch := bytes.Repeat([]byte("get k\r\n"), 10)
				b.SetBytes(int64(10 * size))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					c.rpos, c.rend = 0, copy(c.rbuf, batch)
					c.process()
					if !c.flush() {
						b.Fatal("write failed")
					}
				}
			})
		}
	}
}
