//go:build unix

package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// pathScenario is one of gocached-bench compare's short scenarios as round
// trips on one connection: each round trip writes one batch of requests and
// reads all of its replies.
type pathScenario struct {
	name     string
	requests int                     // requests per round trip
	batch    func(i, key int) []byte // round trip i's requests, starting at key
}

func repeatRequests(n int, format string) func(int, int) []byte {
	return func(_, key int) []byte {
		var b []byte
		for j := 0; j < n; j++ {
			k := (key + j) % pathKeys
			if strings.Contains(format, "%032d") {
				b = fmt.Appendf(b, format, k, k)
			} else {
				b = fmt.Appendf(b, format, k)
			}
		}
		return b
	}
}

// pathKeys keys of 32 bytes are stored before each scenario.
const pathKeys = 1000

var pathScenarios = []pathScenario{
	{"get-p1", 1, repeatRequests(1, "get key:%06d\r\n")},
	{"get-p10", 10, repeatRequests(10, "get key:%06d\r\n")},
	{"mget-10", 1, func(_, key int) []byte {
		b := []byte("get")
		for j := 0; j < 10; j++ {
			b = fmt.Appendf(b, " key:%06d", (key+j)%pathKeys)
		}
		return append(b, "\r\n"...)
	}},
	{"mg-p10", 10, repeatRequests(10, "mg key:%06d v f\r\n")},
	{"set-p10", 10, repeatRequests(10, "set key:%06d 0 0 32\r\n%032d\r\n")},
	{"mix-p1", 1, func(i, key int) []byte { // every tenth request a set, one at a time
		if i%10 == 9 {
			return fmt.Appendf(nil, "set key:%06d 0 0 32\r\n%032d\r\n", key, key)
		}
		return fmt.Appendf(nil, "get key:%06d\r\n", key)
	}},
}

// BenchmarkRequestPath runs each scenario's round trips over loopback TCP
// against an in-process server: the client's write, the server's wake-up,
// read, parse, store, reply and write, and the client's read. One op is
// one round trip; allocs/op counts client and server and must stay 0.
// cpu-ns/req is the process's CPU time (both sides, user and system) per
// request, which a shared machine disturbs less than ns/op.
func BenchmarkRequestPath(b *testing.B) {
	addr := testutil.StartGocached(b, func(cfg *server.Config) { cfg.Threads = 1 })
	for _, sc := range pathScenarios {
		b.Run(sc.name, func(b *testing.B) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Minute))
			preloadPath(b, nc)
			// Prebuilt round trips over the key space, and each one's reply
			// length (replies to these requests have a fixed size).
			const variants = 100
			trips := make([][]byte, variants)
			replyLen := make([]int, variants)
			reply := make([]byte, 64<<10)
			for i := range trips {
				trips[i] = sc.batch(i, i*pathKeys/variants)
				replyLen[i] = pathRoundTrip(b, nc, trips[i], reply, 0)
			}
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				pathRoundTrip(b, nc, trips[i], reply, replyLen[i])
				if i++; i == variants {
					i = 0
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N*sc.requests), "cpu-ns/req")
		})
	}
}

// pathRoundTrip writes req and reads its replies into buf: want bytes of them,
// or, when want is 0, until they end as the request's replies end (then
// checking them) and returns their length.
func pathRoundTrip(b *testing.B, nc net.Conn, req, buf []byte, want int) int {
	if _, err := nc.Write(req); err != nil {
		b.Fatal(err)
	}
	if want > 0 {
		if _, err := io.ReadFull(nc, buf[:want]); err != nil {
			b.Fatal(err)
		}
		return want
	}
	var expect []byte // the last reply line of the batch
	switch {
	case bytes.HasPrefix(req, []byte("set ")):
		expect = []byte("STORED\r\n")
	case bytes.HasPrefix(req, []byte("mg ")):
		expect = []byte("\r\n")
	default:
		expect = []byte("END\r\n")
	}
	lines := bytes.Count(req, []byte("\r\n"))
	if bytes.HasPrefix(req, []byte("set ")) {
		lines /= 2
	}
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		if err != nil {
			b.Fatal(err)
		}
		n += m
		if bytes.HasSuffix(buf[:n], expect) && countReplies(req, buf[:n]) >= lines {
			break
		}
	}
	if bytes.Contains(buf[:n], []byte("ERROR")) || bytes.Contains(buf[:n], []byte("EN\r\n")) {
		b.Fatalf("replies to %q: %q", req, buf[:n])
	}
	return n
}

// countReplies counts the complete replies in out to requests like req.
func countReplies(req, out []byte) int {
	switch {
	case bytes.HasPrefix(req, []byte("set ")):
		return bytes.Count(out, []byte("STORED\r\n"))
	case bytes.HasPrefix(req, []byte("mg ")):
		return bytes.Count(out, []byte("VA ")) + bytes.Count(out, []byte("EN\r\n")) // values are digits
	default:
		return bytes.Count(out, []byte("END\r\n"))
	}
}

func preloadPath(b *testing.B, nc net.Conn) {
	buf := make([]byte, 64<<10)
	for k := 0; k < pathKeys; k += 10 {
		pathRoundTrip(b, nc, repeatRequests(10, "set key:%06d 0 0 32\r\n%032d\r\n")(0, k), buf, 0)
	}
}

// processCPU is this process's user and system CPU time so far, in ns.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRequestPathParallel runs the 90/10 get/set mix one request at a
// time on as many connections as the benchmark's parallelism (GOMAXPROCS,
// -cpu; the server's -t follows it), so that -mutexprofile shows where the
// store's locks and the scheduler meet contention first.
func BenchmarkRequestPathParallel(b *testing.B) {
	addr := testutil.StartGocached(b, func(cfg *server.Config) { cfg.Threads = runtime.GOMAXPROCS(0) })
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	preloadPath(b, nc)
	nc.Close()
	mix := pathScenarios[len(pathScenarios)-1]
	const variants = 100
	trips := make([][]byte, variants)
	for i := range trips {
		trips[i] = mix.batch(i, i*pathKeys/variants)
	}
	b.ReportAllocs()
	b.SetParallelism(8)
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer nc.Close()
		reply := make([]byte, 4<<10)
		replyLen := make([]int, variants)
		for i := range trips {
			replyLen[i] = pathRoundTrip(b, nc, trips[i], reply, 0)
		}
		i := 0
		for pb.Next() {
			pathRoundTrip(b, nc, trips[i], reply, replyLen[i])
			if i++; i == variants {
				i = 0
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/req")
}
