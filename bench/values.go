package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// The values mode measures large values side by side (issue 15): set and
// get throughput by value size, a mixed-size set churn (MB/s, peak RSS, GC
// cycles), clients that pipeline gets of a large value and never read,
// and clients that upload large values slowly.

// ValueSizes are the sizes the values mode's throughput runs use; 1m is
// 1,000,000 bytes, the largest value memcached's default -I of 1 MB holds.
var ValueSizes = []int{1 << 10, 16 << 10, 128 << 10, 512 << 10, 1000000}

// ValuesOptions configures the values mode.
type ValuesOptions struct {
	Servers  []ServerSpec
	Sizes    []int         // throughput sizes; nil = ValueSizes
	Duration time.Duration // each throughput and churn run
	Conns    int           // throughput and churn connections
	Reps     int
	Parts    []string // "throughput", "churn", "nonreading", "slowupload"; nil = all

	Stalled     int // non-reading clients
	StalledGets int // gets each pipelines
	BigSize     int // the value they get
	Uploaders   int // slow uploaders
	UploadSize  int
	UploadTime  time.Duration // how long each takes to send its value

	Log      io.Writer
	Progress io.Writer
	Failed   map[string]string
}

func (o *ValuesOptions) defaults() {
	if o.Sizes == nil {
		o.Sizes = ValueSizes
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Conns <= 0 {
		o.Conns = 16
	}
	if o.Reps <= 0 {
		o.Reps = 1
	}
	if o.Stalled <= 0 {
		o.Stalled = 200
	}
	if o.StalledGets <= 0 {
		o.StalledGets = 100
	}
	if o.BigSize <= 0 {
		o.BigSize = 1000000
	}
	if o.Uploaders <= 0 {
		o.Uploaders = 2000
	}
	if o.UploadSize <= 0 {
		o.UploadSize = 1000000
	}
	if o.UploadTime <= 0 {
		o.UploadTime = 10 * time.Second
	}
}

// partSpec is spec started for part: with a connection limit (-c) above
// the part's clients. memcached refuses connections past its default
// 1024, which would count as refused uploads rather than what the part
// measures (whether a server serves them).
func (o *ValuesOptions) partSpec(part string, spec ServerSpec) ServerSpec {
	conns := 0
	switch part {
	case "slowupload":
		conns = o.Uploaders
	case "nonreading":
		conns = o.Stalled
	}
	if conns+64 > 1024 {
		spec.Extra = append(slices.Clone(spec.Extra), "-c", strconv.Itoa(conns+64))
	}
	return spec
}

func (o *ValuesOptions) part(p string) bool { return o.Parts == nil || slices.Contains(o.Parts, p) }

// ValuesRun is one run of the churn, non-reading or slow-upload part.
type ValuesRun struct {
	Part      string  `json:"part"`
	Server    string  `json:"server"`
	Rep       int     `json:"rep"`
	OK        bool    `json:"ok"`
	Error     string  `json:"error,omitempty"`
	PeakRSS   uint64  `json:"peak_rss"`
	MBPerSec  float64 `json:"mb_per_s,omitempty"`    // churn: value bytes stored per second
	CPUUsOp   float64 `json:"cpu_us_op,omitempty"`   // churn: server CPU per set
	GCPerSec  float64 `json:"gc_per_s,omitempty"`    // churn: Go GC cycles per second (gocached)
	Refused   int     `json:"refused,omitempty"`     // non-reading, slow upload: clients closed or refused
	Served    int     `json:"served,omitempty"`      // slow upload: clients answered (Stored + NotStored)
	Stored    int     `json:"stored,omitempty"`      // slow upload: STORED
	NotStored int     `json:"not_stored,omitempty"`  // slow upload: answered with an error (SERVER_ERROR ...)
	P99Us     float64 `json:"p99_us,omitempty"`      // non-reading: a normal client's p99
	MaxUs     float64 `json:"max_wait_us,omitempty"` // non-reading: its longest wait
}

// ValuesReport is the values mode's output.
type ValuesReport struct {
	Env        Env            `json:"env"`
	Options    map[string]any `json:"options"`
	Throughput *CompareReport `json:"throughput,omitempty"`
	Runs       []ValuesRun    `json:"runs"`
}

func sizeName(n int) string {
	switch {
	case n == 1000000:
		return "1m"
	case n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}

// ValueScenarios returns the throughput scenarios: a get and a set of each
// size one at a time, and gets of 16 KB pipelined by 10.
func ValueScenarios(sizes []int) []Scenario {
	var out []Scenario
	for _, n := range sizes {
		out = append(out,
			sc("get-"+sizeName(n)+"-p1", "text get, "+sizeName(n), ProtoText, 1, 1, 1, n, uniform),
			sc("set-"+sizeName(n)+"-p1", "text set, "+sizeName(n), ProtoText, 0, 1, 1, n, uniform))
	}
	return append(out, sc("get-16k-p10", "text get pipelined by 10, 16k", ProtoText, 1, 10, 1, 16<<10, uniform))
}

// keysFor keeps a scenario's data near 32 MB, inside a 64 MB server.
func keysFor(size int) uint64 { return uint64(max(16, min(10000, (32<<20)/size))) }

// Values runs the values mode.
func Values(ctx context.Context, o ValuesOptions) *ValuesReport {
	o.defaults()
	rep := &ValuesReport{}
	if o.part("throughput") {
		rep.Throughput = &CompareReport{}
		for _, s := range ValueScenarios(o.Sizes) {
			base := Config{Conns: o.Conns, Keys: keysFor(s.Value), Duration: o.Duration, Timeout: 5 * time.Second}
			r := Compare(ctx, CompareOptions{Servers: o.Servers, Scenarios: []Scenario{s}, Base: base, Reps: o.Reps,
				Log: o.Log, Progress: o.Progress, Failed: o.Failed})
			rep.Throughput.Scenarios = append(rep.Throughput.Scenarios, r.Scenarios...)
			rep.Throughput.Runs = append(rep.Throughput.Runs, r.Runs...)
		}
	}
	parts := []struct {
		name string
		run  func(context.Context, *Server, *ValuesOptions, *ValuesRun)
	}{{"churn", churnRun}, {"nonreading", nonReadingRun}, {"slowupload", slowUploadRun}}
	for _, p := range parts {
		if !o.part(p.name) {
			continue
		}
		for r := 0; r < o.Reps; r++ {
			order := repOrder(o.Servers, r)
			for _, spec := range order {
				vr := ValuesRun{Part: p.name, Server: spec.Name, Rep: r + 1}
				if reason, bad := o.Failed[spec.Name]; bad {
					vr.Error = reason
				} else {
					valuesRun(ctx, o.partSpec(p.name, spec), &o, &vr, p.run)
				}
				if o.Log != nil {
					fmt.Fprintf(o.Log, "%-10s %-10s rep %d: %s\n", p.name, spec.Name, r+1, vr.line())
				}
				rep.Runs = append(rep.Runs, vr)
			}
		}
	}
	return rep
}

func (v *ValuesRun) line() string {
	if !v.OK {
		return "FAILED: " + v.Error
	}
	switch v.Part {
	case "churn":
		return fmt.Sprintf("%.0f MB/s, %.1f CPU-us/set, peak RSS %s, %.1f GC/s", v.MBPerSec, v.CPUUsOp, mib(float64(v.PeakRSS)), v.GCPerSec)
	case "nonreading":
		return fmt.Sprintf("peak RSS %s, %d refused, probe p99 %.0f us, longest wait %.0f us", mib(float64(v.PeakRSS)), v.Refused, v.P99Us, v.MaxUs)
	}
	return fmt.Sprintf("%d stored, %d answered not stored, %d refused (no reply), peak RSS %s", v.Stored, v.NotStored, v.Refused, mib(float64(v.PeakRSS)))
}

// valuesRun starts spec fresh, samples its RSS while run runs, and
// records the peak.
func valuesRun(ctx context.Context, spec ServerSpec, o *ValuesOptions, vr *ValuesRun, run func(context.Context, *Server, *ValuesOptions, *ValuesRun)) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, spec)
	if err != nil {
		vr.Error = err.Error()
		return
	}
	defer srv.Stop()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if s, err := srv.Sample(); err == nil && s.RSS > peak.Load() {
				peak.Store(s.RSS)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	vr.OK = true
	run(ctx, srv, o, vr)
	close(stop)
	<-done
	vr.PeakRSS = peak.Load()
	if vr.OK && !srv.Alive() {
		vr.OK, vr.Error = false, "server exited: "+srv.Stderr()
	}
}

func (v *ValuesRun) fail(err error) {
	if v.OK {
		v.OK, v.Error = false, err.Error()
	}
}

// dialServer opens a connection to srv with a generous deadline.
func dialServer(srv *Server) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	return c, bufio.NewReaderSize(c, 64<<10), nil
}

// pattern is value bytes shared by the parts' clients.
var pattern = strings.Repeat("abcdefghijklmnopqrstuvwxyz", (1<<20)/26+1)

// churnRun stores values of log-uniform sizes between 64 B and 512 KB on
// o.Conns connections for o.Duration, over 100,000 keys.
func churnRun(ctx context.Context, srv *Server, o *ValuesOptions, vr *ValuesRun) {
	gcBefore := goGCCount(srv.Addr)
	before, err := srv.Sample()
	if err != nil {
		vr.fail(err)
		return
	}
	var bytes, sets atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(o.Duration)
	var errMu sync.Mutex
	for i := 0; i < o.Conns; i++ {
		c, r, err := dialServer(srv)
		if err != nil {
			vr.fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			buf := make([]byte, 0, 600<<10)
			for time.Now().Before(deadline) && ctx.Err() == nil {
				n := int(math.Exp(math.Log(64) + rng.Float64()*(math.Log(512<<10)-math.Log(64))))
				buf = fmt.Appendf(buf[:0], "set churn%d 0 0 %d\r\n", rng.IntN(100000), n)
				buf = append(append(buf, pattern[:n]...), "\r\n"...)
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(buf); err != nil {
					errMu.Lock()
					vr.fail(err)
					errMu.Unlock()
					return
				}
				line, err := r.ReadString('\n')
				if err != nil || (line != "STORED\r\n" && !strings.HasPrefix(line, "SERVER_ERROR out of memory")) {
					errMu.Lock()
					vr.fail(fmt.Errorf("set: %q %v", line, err))
					errMu.Unlock()
					return
				}
				if line == "STORED\r\n" {
					bytes.Add(int64(n))
				}
				sets.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	after, err := srv.Sample()
	if err != nil {
		vr.fail(err)
		return
	}
	vr.MBPerSec = float64(bytes.Load()) / secs / 1e6
	vr.CPUUsOp = CPUPerOp(before, after, sets.Load()).TotalUsOp
	if gcBefore >= 0 {
		vr.GCPerSec = float64(goGCCount(srv.Addr)-gcBefore) / secs
	}
}

// goGCCount returns gocached's GC cycles so far ("stats go"), -1 for a
// server without them.
func goGCCount(addr string) int64 {
	st, err := StatsGroup(addr, "go", 2*time.Second)
	if err != nil || st["go_gc_count"] == "" {
		return -1
	}
	return statInt(st, "go_gc_count")
}

// nonReadingRun stores one large value; o.Stalled clients then each
// pipeline o.StalledGets gets of it and never read, while a normal client
// sets and gets a small value for o.Duration, timing every request.
func nonReadingRun(ctx context.Context, srv *Server, o *ValuesOptions, vr *ValuesRun) {
	c, r, err := dialServer(srv)
	if err != nil {
		vr.fail(err)
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := fmt.Fprintf(c, "set big 0 0 %d\r\n%s\r\nset small 0 0 1\r\nx\r\n", o.BigSize, pattern[:o.BigSize]); err != nil {
		vr.fail(err)
		return
	}
	for i := 0; i < 2; i++ {
		if line, err := r.ReadString('\n'); line != "STORED\r\n" {
			vr.fail(fmt.Errorf("set: %q %v", line, err))
			return
		}
	}
	stalled := make([]net.Conn, 0, o.Stalled)
	defer func() {
		for _, sc := range stalled {
			sc.Close()
		}
	}()
	gets := strings.Repeat("get big\r\n", o.StalledGets)
	for i := 0; i < o.Stalled; i++ {
		sc, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
		if err != nil {
			vr.fail(err)
			return
		}
		stalled = append(stalled, sc)
		go func() { _, _ = io.WriteString(sc, gets) }()
	}
	h := NewHistogram()
	var longest time.Duration
	for end := time.Now().Add(o.Duration); time.Now().Before(end) && ctx.Err() == nil; {
		t0 := time.Now()
		_ = c.SetDeadline(t0.Add(10 * time.Second))
		if _, err := io.WriteString(c, "get small\r\n"); err != nil {
			vr.fail(err)
			return
		}
		var got string
		for !strings.HasSuffix(got, "END\r\n") {
			line, err := r.ReadString('\n')
			if err != nil {
				vr.fail(fmt.Errorf("probe: %v after %q", err, got))
				return
			}
			got += line
		}
		d := time.Since(t0)
		longest = max(longest, d)
		_ = h.RecordValue(max(d.Microseconds(), 1))
		time.Sleep(2 * time.Millisecond)
	}
	vr.P99Us, vr.MaxUs = float64(h.ValueAtQuantile(99)), float64(longest.Microseconds())
	// A client still served has its first reply waiting: the value's line.
	want := fmt.Sprintf("VALUE big 0 %d\r\n", o.BigSize)
	for _, sc := range stalled {
		_ = sc.SetReadDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, len(want))
		if _, err := io.ReadFull(sc, b); err != nil || string(b) != want {
			vr.Refused++
		}
	}
}

// slowUploadRun has o.Uploaders clients each send a set of o.UploadSize
// bytes in ten pieces over o.UploadTime, and counts their answers: STORED
// (stored), any other reply such as memcached's "SERVER_ERROR Out of
// memory during read" or gocached's "SERVER_ERROR out of memory storing
// object" (answered, not stored), and no reply or a closed connection
// (refused).
func slowUploadRun(ctx context.Context, srv *Server, o *ValuesOptions, vr *ValuesRun) {
	var notStored, stored, refused atomic.Int64
	var wg sync.WaitGroup
	piece := o.UploadSize / 10
	for i := 0; i < o.Uploaders; i++ {
		c, err := net.DialTimeout("tcp", srv.Addr, 5*time.Second)
		if err != nil {
			refused.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(o.UploadTime + time.Minute))
			// Start at staggered times, as clients do.
			time.Sleep(time.Duration(i) * o.UploadTime / 10 / time.Duration(o.Uploaders))
			if _, err := fmt.Fprintf(c, "set up%d 0 0 %d\r\n", i, o.UploadSize); err != nil {
				refused.Add(1)
				return
			}
			for sent := 0; sent < o.UploadSize; sent += piece {
				time.Sleep(o.UploadTime / 10)
				if _, err := io.WriteString(c, pattern[:min(piece, o.UploadSize-sent)]); err != nil {
					refused.Add(1)
					return
				}
			}
			if _, err := io.WriteString(c, "\r\n"); err != nil {
				refused.Add(1)
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			switch {
			case err != nil:
				refused.Add(1)
			case line == "STORED\r\n":
				stored.Add(1)
			default:
				notStored.Add(1)
			}
		}()
	}
	wg.Wait()
	vr.Stored, vr.NotStored, vr.Refused = int(stored.Load()), int(notStored.Load()), int(refused.Load())
	vr.Served = vr.Stored + vr.NotStored
}

// WriteValuesTable prints the values mode's results: the throughput
// table and ratios, then the medians of the other parts beside each other.
func WriteValuesTable(w io.Writer, r *ValuesReport, o *ValuesOptions) {
	if r.Throughput != nil {
		WriteCompareTable(w, r.Throughput)
		fmt.Fprintln(w, "\nMB/s (medians)")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, s := range r.Throughput.Scenarios {
			fmt.Fprintf(tw, "%s\t", s.Scenario.Name)
			for _, m := range s.Servers {
				fmt.Fprintf(tw, "%s %.0f\t", m.Server, m.OpsPerSec*float64(s.Scenario.Value)*float64(s.Scenario.Batch)/1e6)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	for _, part := range []string{"churn", "nonreading", "slowupload"} {
		var servers []string
		med := map[string]*ValuesRun{}
		for _, spec := range o.Servers {
			var runs []ValuesRun
			ok := true
			for _, v := range r.Runs {
				if v.Part == part && v.Server == spec.Name {
					runs = append(runs, v)
					ok = ok && v.OK
				}
			}
			if len(runs) == 0 {
				continue
			}
			servers = append(servers, spec.Name)
			m := medianRun(runs)
			m.OK = ok
			med[spec.Name] = &m
		}
		if len(servers) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (medians of %d)\n", part, o.Reps)
		for _, s := range servers {
			fmt.Fprintf(w, "  %-10s %s\n", s, med[s].line())
		}
		if len(servers) == 2 && med[servers[0]].OK && med[servers[1]].OK {
			a, b := med[servers[0]], med[servers[1]]
			fmt.Fprintf(w, "  ratio %s/%s: peak RSS %.2f", servers[0], servers[1], Ratio(float64(a.PeakRSS), float64(b.PeakRSS)))
			switch part {
			case "churn":
				fmt.Fprintf(w, ", MB/s %.2f, CPU/set %.2f", Ratio(a.MBPerSec, b.MBPerSec), Ratio(a.CPUUsOp, b.CPUUsOp))
			case "nonreading":
				fmt.Fprintf(w, ", probe p99 %.2f", Ratio(a.P99Us, b.P99Us))
			}
			fmt.Fprintln(w)
		}
	}
}

// medianRun returns the per-field medians of runs.
func medianRun(runs []ValuesRun) ValuesRun {
	f := func(get func(ValuesRun) float64) float64 {
		var xs []float64
		for _, r := range runs {
			if r.OK {
				xs = append(xs, get(r))
			}
		}
		return Median(xs)
	}
	m := runs[0]
	m.PeakRSS = uint64(f(func(r ValuesRun) float64 { return float64(r.PeakRSS) }))
	m.MBPerSec = f(func(r ValuesRun) float64 { return r.MBPerSec })
	m.CPUUsOp = f(func(r ValuesRun) float64 { return r.CPUUsOp })
	m.GCPerSec = f(func(r ValuesRun) float64 { return r.GCPerSec })
	m.P99Us = f(func(r ValuesRun) float64 { return r.P99Us })
	m.MaxUs = f(func(r ValuesRun) float64 { return r.MaxUs })
	m.Refused = int(f(func(r ValuesRun) float64 { return float64(r.Refused) }))
	m.Served = int(f(func(r ValuesRun) float64 { return float64(r.Served) }))
	m.Stored = int(f(func(r ValuesRun) float64 { return float64(r.Stored) }))
	m.NotStored = int(f(func(r ValuesRun) float64 { return float64(r.NotStored) }))
	return m
}
