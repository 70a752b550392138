package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// val is what the server should return for id with n bytes.
func val(id uint64, n int) string { return string(newValues(4096).value(id, n)) }

func textValue(id uint64, n int) string {
	return "VALUE " + string(appendKey(nil, id)) + " " + string(appendUint(nil, uint64(keyFlags(id)))) + " " +
		string(appendUint(nil, uint64(n))) + "\r\n" + val(id, n) + "\r\n"
}

func metaValue(id uint64, n int, withKey bool) string {
	s := "VA " + string(appendUint(nil, uint64(n))) + " f" + string(appendUint(nil, uint64(keyFlags(id))))
	if withKey {
		s += " k" + string(appendKey(nil, id))
	}
	return s + "\r\n" + val(id, n) + "\r\n"
}

func binPacket(op byte, status uint16, opaque uint32, key string, extras, value []byte) string {
	var h [24]byte
	h[0] = binResMagic
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(len(key)))
	h[4] = byte(len(extras))
	binary.BigEndian.PutUint16(h[6:], status)
	binary.BigEndian.PutUint32(h[8:], uint32(len(extras)+len(key)+len(value)))
	binary.BigEndian.PutUint32(h[12:], opaque)
	return string(h[:]) + string(extras) + key + string(value)
}

func binValue(op byte, opaque uint32, id uint64, n int, withKey bool) string {
	var e [4]byte
	binary.BigEndian.PutUint32(e[:], keyFlags(id))
	key := ""
	if withKey {
		key = string(appendKey(nil, id))
	}
	return binPacket(op, 0, opaque, key, e[:], []byte(val(id, n)))
}

type kind int

const (
	ok kind = iota
	replyErr
	protoFail
)

func TestReplyParsers(t *testing.T) {
	wrongFlags := strings.Replace(textValue(7, 32), " "+string(appendUint(nil, uint64(keyFlags(7))))+" ", " 1 ", 1)
	corrupt := strings.Replace(textValue(7, 32), val(7, 32), strings.Repeat("x", 32), 1)
	tests := []struct {
		name   string
		proto  Protocol
		set    bool
		ids    []uint64
		input  string
		want   kind
		hits   int
		misses int
	}{
		{"text hit", ProtoText, false, []uint64{7}, textValue(7, 32) + "END\r\n", ok, 1, 0},
		{"text miss", ProtoText, false, []uint64{7}, "END\r\n", ok, 0, 1},
		{"text multi partial", ProtoText, false, []uint64{1, 2, 3, 2}, textValue(2, 40) + textValue(2, 32) + "END\r\n", ok, 2, 2},
		{"text 4k value", ProtoText, false, []uint64{9}, textValue(9, 4096) + "END\r\n", ok, 1, 0},
		{"text wrong key", ProtoText, false, []uint64{1}, textValue(2, 32) + "END\r\n", replyErr, 0, 1},
		{"text wrong flags", ProtoText, false, []uint64{7}, wrongFlags + "END\r\n", replyErr, 0, 0},
		{"text corrupt value", ProtoText, false, []uint64{7}, corrupt + "END\r\n", replyErr, 0, 0},
		{"text short value", ProtoText, false, []uint64{7}, textValue(7, 8) + "END\r\n", replyErr, 0, 0},
		{"text server error", ProtoText, false, []uint64{7}, "SERVER_ERROR out of memory\r\n", replyErr, 0, 1},
		{"text garbage", ProtoText, false, []uint64{7}, "HELLO\r\n", protoFail, 0, 0},
		{"text no terminator", ProtoText, false, []uint64{7}, "VALUE gcb:0000000007 0 3\r\nabcXY", protoFail, 0, 0},
		{"text truncated", ProtoText, false, []uint64{7}, textValue(7, 32)[:20], protoFail, 0, 0},
		{"text bare newline", ProtoText, false, []uint64{7}, "END\n", protoFail, 0, 0},
		{"text stored", ProtoText, true, nil, "STORED\r\n", ok, 0, 0},
		{"text not stored", ProtoText, true, nil, "NOT_STORED\r\n", replyErr, 0, 0},
		{"text set oom", ProtoText, true, nil, "SERVER_ERROR out of memory storing object\r\n", replyErr, 0, 0},
		{"text set garbage", ProtoText, true, nil, "END\r\n", protoFail, 0, 0},

		{"meta hit", ProtoMeta, false, []uint64{5}, metaValue(5, 32, false), ok, 1, 0},
		{"meta miss", ProtoMeta, false, []uint64{5}, "EN\r\n", ok, 0, 1},
		{"meta wrong flags", ProtoMeta, false, []uint64{5}, metaValue(6, 32, false), replyErr, 0, 0},
		{"meta no flags", ProtoMeta, false, []uint64{5}, "VA 2\r\nab\r\n", replyErr, 0, 0},
		{"meta multi", ProtoMeta, false, []uint64{1, 2, 3}, metaValue(1, 32, true) + metaValue(3, 32, true) + "MN\r\n", ok, 2, 1},
		{"meta multi wrong key", ProtoMeta, false, []uint64{1, 2}, metaValue(4, 32, true) + "MN\r\n", replyErr, 0, 2},
		{"meta multi no key", ProtoMeta, false, []uint64{1, 2}, metaValue(1, 32, false) + "MN\r\n", replyErr, 0, 2},
		{"meta multi unterminated", ProtoMeta, false, []uint64{1, 2}, metaValue(1, 32, true), protoFail, 0, 0},
		{"meta stored", ProtoMeta, true, nil, "HD\r\n", ok, 0, 0},
		{"meta not stored", ProtoMeta, true, nil, "NS\r\n", replyErr, 0, 0},
		{"meta set garbage", ProtoMeta, true, nil, "STORED\r\n", protoFail, 0, 0},
		{"meta error", ProtoMeta, false, []uint64{5}, "CLIENT_ERROR bad command line format\r\n", replyErr, 0, 1},

		{"binary hit", ProtoBinary, false, []uint64{3}, binValue(binGet, 0, 3, 32, false), ok, 1, 0},
		{"binary miss", ProtoBinary, false, []uint64{3}, binPacket(binGet, 1, 0, "", nil, []byte("Not found")), ok, 0, 1},
		{"binary wrong value", ProtoBinary, false, []uint64{3}, binValue(binGet, 0, 4, 32, false), replyErr, 0, 0},
		{"binary other status", ProtoBinary, false, []uint64{3}, binPacket(binGet, 0x82, 0, "", nil, []byte("oom")), replyErr, 0, 1},
		{"binary bad magic", ProtoBinary, false, []uint64{3}, "\x80" + binValue(binGet, 0, 3, 32, false)[1:], protoFail, 0, 0},
		{"binary multi", ProtoBinary, false, []uint64{1, 2, 3}, binValue(binGetKQ, 0, 1, 32, true) + binValue(binGetKQ, 2, 3, 32, true) +
			binPacket(binNoop, 0, 3, "", nil, nil), ok, 2, 1},
		{"binary multi wrong opaque", ProtoBinary, false, []uint64{1, 2}, binValue(binGetKQ, 1, 1, 32, true) +
			binPacket(binNoop, 0, 2, "", nil, nil), replyErr, 0, 1},
		{"binary multi no noop", ProtoBinary, false, []uint64{1, 2}, binValue(binGetKQ, 0, 1, 32, true), protoFail, 0, 0},
		{"binary set ok", ProtoBinary, true, nil, binPacket(binSet, 0, 0, "", nil, nil), ok, 0, 0},
		{"binary set too large", ProtoBinary, true, nil, binPacket(binSet, 0x03, 0, "", nil, []byte("Too large.")), replyErr, 0, 0},
		{"binary set wrong opcode", ProtoBinary, true, nil, binPacket(binGet, 0, 0, "", nil, nil), protoFail, 0, 0},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			name := tt.name
			if split {
				name += "/split"
			}
			t.Run(name, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.input)
				if split {
					r = iotest.OneByteReader(r)
				}
				c := codec{proto: tt.proto, vals: newValues(4096), vmin: 32, vmax: 4096, rd: newReader(r, 16)}
				var res getResult
				var err error
				if tt.set {
					err = c.readSet()
				} else {
					err = c.readGet(tt.ids, &res)
				}
				got := ok
				switch {
				case isProtoErr(err):
					got = protoFail
				case errors.Is(err, errReply):
					got = replyErr
				case err != nil:
					t.Fatalf("error of neither kind: %v", err)
				}
				if got != tt.want {
					t.Fatalf("got kind %d (%v), want %d", got, err, tt.want)
				}
				if got == protoFail {
					return
				}
				if res.hits != tt.hits || len(res.missed) != tt.misses {
					t.Errorf("hits %d misses %d, want %d %d", res.hits, len(res.missed), tt.hits, tt.misses)
				}
				if c.rd.buffered() != 0 {
					t.Errorf("%d bytes left unread", c.rd.buffered())
				}
			})
		}
	}
}

func TestEncoders(t *testing.T) {
	tests := []struct {
		proto Protocol
		ids   []uint64
		get   string
		set   string
	}{
		{ProtoText, []uint64{1}, "get gcb:0000000001\r\n", "set gcb:0000000001 " + string(appendUint(nil, uint64(keyFlags(1)))) + " 0 3\r\nbcd\r\n"},
		{ProtoText, []uint64{1, 22}, "get gcb:0000000001 gcb:0000000022\r\n", ""},
		{ProtoMeta, []uint64{1}, "mg gcb:0000000001 v f\r\n", "ms gcb:0000000001 3 F" + string(appendUint(nil, uint64(keyFlags(1)))) + "\r\nbcd\r\n"},
		{ProtoMeta, []uint64{1, 2}, "mg gcb:0000000001 v f k q\r\nmg gcb:0000000002 v f k q\r\nmn\r\n", ""},
	}
	for _, tt := range tests {
		c := codec{proto: tt.proto, vals: newValues(100)}
		if got := string(c.appendGet(nil, tt.ids)); got != tt.get {
			t.Errorf("%v get %v = %q, want %q", tt.proto, tt.ids, got, tt.get)
		}
		if tt.set != "" {
			if got := string(c.appendSet(nil, tt.ids[0], 3)); got != tt.set {
				t.Errorf("%v set = %q, want %q", tt.proto, got, tt.set)
			}
		}
	}
	c := codec{proto: ProtoBinary, vals: newValues(100)}
	b := c.appendGet(nil, []uint64{1, 2})
	if len(b) != 3*24+2*keyLen || b[1] != binGetKQ || b[24+keyLen+1] != binGetKQ || b[2*(24+keyLen)+1] != binNoop {
		t.Errorf("binary multiget encoding: % x", b)
	}
	s := c.appendSet(nil, 5, 10)
	if len(s) != 24+8+keyLen+10 || s[1] != binSet || binary.BigEndian.Uint32(s[24:]) != keyFlags(5) {
		t.Errorf("binary set encoding: % x", s)
	}
	if id, ok := parseKey(appendKey(nil, 9876543210)); !ok || id != 9876543210 {
		t.Errorf("parseKey round trip: %d %v", id, ok)
	}
}

// The generator's hot path must not allocate: build a batch and parse its
// replies.
func TestHotLoopAllocs(t *testing.T) {
	cfg := Config{Conns: 1, Keys: 100, GetRatio: 0.5, Pipeline: 10, Batch: 5, ValueMin: 32, ValueMax: 64}
	cfg.Defaults()
	w := newWorker(&cfg, 0, newValues(cfg.ValueMax))
	var reply strings.Builder
	for i := 0; i < 10; i++ {
		reply.WriteString(textValue(uint64(i), 32) + "END\r\n")
	}
	r := strings.NewReader(reply.String())
	w.rd.reset(r)
	allocs := testing.AllocsPerRun(200, func() {
		w.build(10)
		r.Reset(reply.String())
		w.rd.reset(r)
		for i := 0; i < 10; i++ {
			w.res.missed = w.res.missed[:0]
			_ = w.codec.readGet([]uint64{uint64(i)}[:1:1], &w.res)
		}
	})
	// []uint64{...} above is on the stack; anything else would show here.
	if allocs > 0 {
		t.Errorf("%.1f allocations per batch", allocs)
	}
}

func TestZipf(t *testing.T) {
	for _, s := range []float64{0.5, 0.99, 1.2} {
		const n, draws = 1000, 400000
		z := newZipf(s, n)
		rng := rand.New(rand.NewPCG(1, 2))
		counts := make([]int, n+1)
		for i := 0; i < draws; i++ {
			k := z.sample(rng)
			if k < 1 || k > n {
				t.Fatalf("s=%g: rank %d out of [1,%d]", s, k, n)
			}
			counts[k]++
		}
		var hn float64
		for k := 1; k <= n; k++ {
			hn += math.Pow(float64(k), -s)
		}
		p1 := float64(counts[1]) / draws
		if want := 1 / hn; math.Abs(p1-want)/want > 0.05 {
			t.Errorf("s=%g: P(rank 1) = %.4f, want %.4f", s, p1, want)
		}
		if r, want := float64(counts[1])/float64(counts[2]), math.Pow(2, s); math.Abs(r-want)/want > 0.08 {
			t.Errorf("s=%g: count(1)/count(2) = %.3f, want %.3f", s, r, want)
		}
		if counts[1] <= counts[10] || counts[10] <= counts[500] {
			t.Errorf("s=%g: not decreasing: %d %d %d", s, counts[1], counts[10], counts[500])
		}
	}
}

func TestKeyDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	d, _ := ParseDist("uniform")
	g := newKeyGen(d, 100, rng, 0)
	counts := make([]int, 100)
	for i := 0; i < 100000; i++ {
		counts[g.next()]++
	}
	for k, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("uniform: key %d drawn %d times of 100000 (want about 1000)", k, c)
		}
	}
	d, _ = ParseDist("scan:0.99:0.25")
	g = newKeyGen(d, 100, rng, 0)
	scans := 0
	last := uint64(0)
	for i := 0; i < 10000; i++ {
		if k := g.next(); k >= 100 {
			scans++
			if last != 0 && k != last+1 {
				t.Fatalf("scan keys not sequential: %d after %d", k, last)
			}
			last = k
		}
	}
	if scans < 2200 || scans > 2800 {
		t.Errorf("scan fraction %d/10000, want about 2500", scans)
	}
	for _, bad := range []string{"zipf:x", "normal", "scan:1:1", "uniform:2"} {
		if _, err := ParseDist(bad); err == nil {
			t.Errorf("ParseDist(%q) accepted", bad)
		}
	}
}

func TestProcStat(t *testing.T) {
	tests := []struct {
		line       string
		user, sys  uint64
		shouldFail bool
	}{
		{"1234 (memcached) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 10 0 100 1000000 500", 250, 75, false},
		{"99 (a b) (c)) R 1 2 3 4 5 6 7 8 9 10 7 3 0 0 20 0", 7, 3, false},
		{"99 (x) R 1 2", 0, 0, true},
		{"garbage", 0, 0, true},
	}
	for _, tt := range tests {
		u, s, err := ParseProcStat([]byte(tt.line))
		if (err != nil) != tt.shouldFail || u != tt.user || s != tt.sys {
			t.Errorf("ParseProcStat(%q) = %d, %d, %v", tt.line, u, s, err)
		}
	}
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "stat"), []byte(tests[0].line+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "statm"), []byte("5000 300 100 10 0 200 0\n"), 0o644)
	before, err := ReadProc(root, 42)
	if err != nil {
		t.Fatal(err)
	}
	if before.UserTicks != 250 || before.SysTicks != 75 || before.RSS != 300*uint64(os.Getpagesize()) {
		t.Errorf("ReadProc = %+v", before)
	}
	after := ProcSample{UserTicks: 250 + 100, SysTicks: 75 + 300}
	u := CPUPerOp(before, after, 1000000) // 1 s user + 3 s sys over 1M requests
	if u.UserUsOp != 1 || u.SysUsOp != 3 || u.TotalUsOp != 4 || u.SysSec != 3 {
		t.Errorf("CPUPerOp = %+v", u)
	}
	if _, err := ReadProc(root, 43); err == nil {
		t.Error("ReadProc of a missing pid succeeded")
	}
	if m := CPUModel([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")); m != "AMD EPYC 7B13" {
		t.Errorf("CPUModel = %q", m)
	}
}

func TestMediansAndRatios(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := Median(tt.xs); got != tt.want {
			t.Errorf("Median(%v) = %g, want %g", tt.xs, got, tt.want)
		}
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Ratio(1, 0)) || Ratio(3, 2) != 1.5 {
		t.Error("Median(nil) / Ratio edge cases")
	}
	mk := func(server string, ops float64, ok bool) RunRecord {
		return RunRecord{Server: server, OK: ok, Error: map[bool]string{false: "boom"}[ok],
			Result: &Result{OpsPerSec: ops, Latency: Latency{P99: ops / 1000}}, CPU: CPUUsage{TotalUsOp: 1e6 / ops}, RSSAfter: 100}
	}
	runs := []RunRecord{mk("a", 100, true), mk("b", 50, true), mk("a", 300, true), mk("b", 60, true), mk("a", 200, true), mk("b", 40, true)}
	a, b := Summarize("a", runs), Summarize("b", runs)
	if a.Runs != 3 || a.OpsPerSec != 200 || b.OpsPerSec != 50 || !a.OK {
		t.Fatalf("Summarize: %+v %+v", a, b)
	}
	r := Ratios(a, b)
	if r["ops_per_s"] != 4 || r["rss"] != 1 || math.Abs(r["cpu_us_per_op"]-0.25) > 1e-9 {
		t.Errorf("Ratios = %v", r)
	}
	runs = append(runs, mk("b", 1, false))
	if b = Summarize("b", runs); b.OK || b.Reason != "boom" || Ratios(a, b) != nil {
		t.Errorf("a failed run must fail the summary: %+v", b)
	}
	// Histograms of several connections merge into one.
	h1, h2 := NewHistogram(), NewHistogram()
	for i := 1; i <= 99; i++ {
		h1.RecordValue(1000)
	}
	h2.RecordValue(5e6)
	h1.Merge(h2)
	l := LatencyOf(h1)
	if l.P50 != 1 || l.Max < 4990 || l.Max > 5010 || h1.TotalCount() != 100 {
		t.Errorf("merged latency %+v", l)
	}
}

func TestHitRatioTable(t *testing.T) {
	med := map[string]float64{"gocached-lru": 0.18, "gocached-clock": 0.16, "memcached": 0.2}
	r := &HitRatioReport{Median: med, VsMemcached: vsMemcached(med),
		Runs: []HitRatioRun{{Server: "gocached-s3fifo", Error: "no such binary"}}}
	var b strings.Builder
	WriteHitRatioTable(&b, r, []ServerSpec{{Name: "gocached-lru"}, {Name: "gocached-s3fifo"}, {Name: "gocached-clock"}, {Name: "memcached"}})
	for _, want := range []string{"gocached-lru  0.1800  0.900", "gocached-clock  0.1600  0.800",
		"gocached-s3fifo  FAILED: no such binary", "memcached  0.2000  -"} {
		if !strings.Contains(strings.Join(strings.Fields(b.String()), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if vsMemcached(map[string]float64{"gocached": 1}) != nil {
		t.Error("a ratio without memcached")
	}
}

// End to end against a real memcached: every protocol, gets and sets, with
// preload, zero errors.
func TestRunAgainstMemcached(t *testing.T) {
	addr := testutil.StartMemcached(t, "-m", "64", "-t", "1")
	ctx := context.Background()
	for _, tt := range []struct {
		proto         Protocol
		pipe, batch   int
		rate          float64
		vmin, vmax    int
		dist          string
		lazy, preload bool
	}{
		{ProtoText, 10, 1, 0, 32, 32, "uniform", false, true},
		{ProtoText, 1, 10, 0, 10, 5000, "zipf:0.99", false, true},
		{ProtoMeta, 10, 1, 0, 32, 32, "uniform", false, true},
		{ProtoMeta, 1, 10, 0, 32, 32, "uniform", false, true},
		{ProtoBinary, 10, 1, 0, 32, 32, "uniform", false, true},
		{ProtoBinary, 1, 10, 2000, 32, 32, "uniform", false, true},
		{ProtoText, 4, 1, 0, 64, 64, "scan:0.99:0.2", true, false},
	} {
		d, err := ParseDist(tt.dist)
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Addr: addr, Conns: 4, Keys: 2000, Dist: d, ValueMin: tt.vmin, ValueMax: tt.vmax, GetRatio: 0.9,
			Pipeline: tt.pipe, Batch: tt.batch, Proto: tt.proto, Duration: 200 * time.Millisecond, Rate: tt.rate, Lazy: tt.lazy}
		if tt.lazy {
			cfg.GetRatio = 1
			flushAll(t, addr)
		}
		if tt.preload {
			if err := Preload(ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Run(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%v pipe %d batch %d: %.0f req/s, %d errors, miss %.3f", tt.proto, tt.pipe, tt.batch, res.OpsPerSec, res.Errors, res.MissRatio)
		if res.Errors != 0 || res.Gets == 0 || res.Requests == 0 {
			t.Errorf("%v: %+v", tt.proto, res)
		}
		if tt.preload && res.Misses != 0 {
			t.Errorf("%v: %d misses after preload", tt.proto, res.Misses)
		}
		if tt.lazy && (res.Misses == 0 || res.Sets == 0) {
			t.Errorf("lazy: %d misses, %d sets", res.Misses, res.Sets)
		}
	}
	// Values of the wrong size are counted as errors, not as speed.
	flushAll(t, addr)
	if err := Preload(ctx, Config{Addr: addr, Conns: 2, Keys: 100, ValueMin: 32}); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Config{Addr: addr, Conns: 1, Keys: 100, GetRatio: 1, Duration: 50 * time.Millisecond, ValueMin: 5})
	if err != nil || res.Errors == 0 || res.Errors != res.Gets || res.Hits != 0 {
		t.Fatalf("wrong values not detected: %v %+v", err, res)
	}
}

func flushAll(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("flush_all\r\n"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "OK\r\n" {
		t.Fatalf("flush_all: %q %v", b, err)
	}
}

// A short compare of gocached, built from this tree, against memcached:
// both rows come out with zero reply errors (never a speed assertion).
func TestCompareAgainstMemcached(t *testing.T) {
	bin := testutil.RequireTool(t, "memcached")
	gocached, err := BuildGocached(context.Background(), "..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	specs := []ServerSpec{{Name: "gocached", Bin: gocached, MemMB: 64, CPU: -1}, {Name: "memcached", Bin: bin, MemMB: 64, CPU: -1}}
	scs, err := SelectScenarios("mg-p10,get-p10,bin-get-p10")
	if err != nil {
		t.Fatal(err)
	}
	rep := Compare(context.Background(), CompareOptions{Scenarios: scs, Servers: specs, Reps: 2,
		Base: Config{Conns: 4, Keys: 1000, Duration: 300 * time.Millisecond}})
	if len(rep.Scenarios) != 3 || len(rep.Runs) != 12 {
		t.Fatalf("%d scenarios, %d runs", len(rep.Scenarios), len(rep.Runs))
	}
	for _, s := range rep.Scenarios {
		if len(s.Servers) != 2 || s.Ratio["ops_per_s"] == 0 {
			t.Errorf("%s: %+v", s.Scenario.Name, s)
		}
		for _, m := range s.Servers {
			if !m.OK || m.Errors != 0 || m.Runs != 2 || m.OpsPerSec == 0 {
				t.Errorf("%s %s: %+v", s.Scenario.Name, m.Server, m)
			}
		}
	}
	var buf bytes.Buffer
	WriteCompareTable(&buf, rep)
	if !strings.Contains(buf.String(), "mg-p10") || !strings.Contains(buf.String(), "ratios gocached/memcached") {
		t.Errorf("table:\n%s", buf.String())
	}
	dir := t.TempDir()
	if err := PlotCompare(filepath.Join(dir, "p.png"), rep); err != nil {
		t.Error(err)
	}
	if err := WriteJSON(filepath.Join(dir, "r.json"), rep); err != nil {
		t.Error(err)
	}
	// A server that does not start is a failed scenario, not a hang.
	bad := []ServerSpec{{Name: "gocached", Bin: "/bin/false", MemMB: 64, CPU: -1}, specs[1]}
	rep = Compare(context.Background(), CompareOptions{Scenarios: scs[:1], Servers: bad, Reps: 1,
		Base: Config{Conns: 2, Keys: 100, Duration: 100 * time.Millisecond}})
	if s := rep.Scenarios[0]; s.Servers[0].OK || !s.Servers[1].OK || s.Ratio != nil {
		t.Errorf("failed server: %+v", s)
	}
}

// The calcification mode runs end to end against gocached built from this
// tree: windows are sampled and reported without reply errors (whether and
// when it recovers is a measurement, not asserted).
func TestCalcifyRuns(t *testing.T) {
	gocached, err := BuildGocached(context.Background(), "..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	specs := []ServerSpec{{Name: "gocached", Bin: gocached, MemMB: 4, CPU: -1}}
	rep := Calcify(context.Background(), CalcifyOptions{Servers: specs, SmallKeys: 20000, SmallSize: 100,
		LargeKeys: 200, LargeSize: 10000, Window: 200 * time.Millisecond, MaxTime: time.Second, Target: 0.5,
		Conns: 2, Pipeline: 4, Reps: 1})
	if len(rep.Runs) != 1 || !rep.Runs[0].OK || len(rep.Runs[0].HitRatios) == 0 {
		t.Fatalf("runs: %+v", rep.Runs)
	}
	var buf bytes.Buffer
	WriteCalcifyTable(&buf, rep, specs, time.Second)
	if !strings.Contains(buf.String(), "gocached") || !strings.Contains(buf.String(), "/1") {
		t.Errorf("table:\n%s", buf.String())
	}
}

func TestValueScenarios(t *testing.T) {
	got := ValueScenarios([]int{1 << 10, 1000000})
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
		if s.Pipeline != 1 && s.Name != "get-16k-p10" {
			t.Errorf("%s pipelined by %d", s.Name, s.Pipeline)
		}
	}
	if want := "get-1k-p1 set-1k-p1 get-1m-p1 set-1m-p1 get-16k-p10"; strings.Join(names, " ") != want {
		t.Errorf("scenarios %v, want %s", names, want)
	}
	for _, size := range []int{1 << 10, 16 << 10, 1000000} {
		if k := keysFor(size); k < 16 || uint64(size)*k > 40<<20 {
			t.Errorf("keysFor(%d) = %d", size, k)
		}
	}
	m := medianRun([]ValuesRun{{OK: true, PeakRSS: 3, Refused: 1}, {OK: true, PeakRSS: 1}, {OK: true, PeakRSS: 2}})
	if m.PeakRSS != 2 || m.Refused != 0 {
		t.Errorf("medianRun = %+v", m)
	}
}

func TestCountCPUs(t *testing.T) {
	for _, tc := range []struct {
		list string
		want int
		ok   bool
	}{
		{"0", 1, true}, {"0-3", 4, true}, {"0-3,6", 5, true}, {"1,3,5", 3, true},
		{"", 0, false}, {"3-1", 0, false}, {"a", 0, false}, {"-1", 0, false},
	} {
		got, err := CountCPUs(tc.list)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("CountCPUs(%q) = %d, %v; want %d, ok %v", tc.list, got, err, tc.want, tc.ok)
		}
	}
}
