package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Scenario is one workload of the compare matrix.
type Scenario struct {
	Name     string   `json:"name"`
	Desc     string   `json:"desc"`
	Proto    Protocol `json:"protocol"`
	GetRatio float64  `json:"get_ratio"`
	Pipeline int      `json:"pipeline"`
	Batch    int      `json:"batch"`
	Value    int      `json:"value"`
	Dist     Dist     `json:"dist"`
}

func sc(name, desc string, p Protocol, get float64, pipe, batch, value int, d Dist) Scenario {
	return Scenario{Name: name, Desc: desc, Proto: p, GetRatio: get, Pipeline: pipe, Batch: batch, Value: value, Dist: d}
}

var (
	uniform = Dist{Kind: "uniform"}
	zipf099 = Dist{Kind: "zipf", S: 0.99}
)

// Scenarios is the built-in matrix, in display order.
var Scenarios = []Scenario{
	sc("get-p1", "text get, 32 B", ProtoText, 1, 1, 1, 32, uniform),
	sc("get-p10", "text get pipelined by 10, 32 B", ProtoText, 1, 10, 1, 32, uniform),
	sc("get-p50", "text get pipelined by 50, 32 B", ProtoText, 1, 50, 1, 32, uniform),
	sc("set-p1", "text set, 32 B", ProtoText, 0, 1, 1, 32, uniform),
	sc("set-p10", "text set pipelined by 10, 32 B", ProtoText, 0, 10, 1, 32, uniform),
	sc("set-p50", "text set pipelined by 50, 32 B", ProtoText, 0, 50, 1, 32, uniform),
	sc("mget-10", "text multiget of 10 keys, 32 B", ProtoText, 1, 1, 10, 32, uniform),
	sc("mget-50", "text multiget of 50 keys, 32 B", ProtoText, 1, 1, 50, 32, uniform),
	sc("mg-p10", "meta mg pipelined by 10, 32 B", ProtoMeta, 1, 10, 1, 32, uniform),
	sc("mg-p50", "meta mg pipelined by 50, 32 B", ProtoMeta, 1, 50, 1, 32, uniform),
	sc("ms-p10", "meta ms pipelined by 10, 32 B", ProtoMeta, 0, 10, 1, 32, uniform),
	sc("ms-p50", "meta ms pipelined by 50, 32 B", ProtoMeta, 0, 50, 1, 32, uniform),
	sc("get-4k-p1", "text get, 4 KB", ProtoText, 1, 1, 1, 4096, uniform),
	sc("get-4k-p10", "text get pipelined by 10, 4 KB", ProtoText, 1, 10, 1, 4096, uniform),
	sc("set-4k-p10", "text set pipelined by 10, 4 KB", ProtoText, 0, 10, 1, 4096, uniform),
	sc("mix-zipf", "90/10 get/set, zipf 0.99, 32 B", ProtoText, 0.9, 1, 1, 32, zipf099),
	sc("mix-zipf-p10", "90/10 get/set pipelined by 10, zipf 0.99, 32 B", ProtoText, 0.9, 10, 1, 32, zipf099),
	sc("bin-get-p10", "binary get pipelined by 10, 32 B", ProtoBinary, 1, 10, 1, 32, uniform),
	sc("bin-set-p10", "binary set pipelined by 10, 32 B", ProtoBinary, 0, 10, 1, 32, uniform),
	sc("bin-mget-10", "binary GETKQ x10 + NOOP, 32 B", ProtoBinary, 1, 1, 10, 32, uniform),
}

// ScenarioSets are named selections of the matrix.
var ScenarioSets = map[string][]string{
	"short": {"get-p1", "get-p10", "mget-10", "mg-p10", "set-p10", "mix-zipf"},
	"paper": {"get-p1", "get-p10", "get-p50", "set-p1", "set-p10", "set-p50", "mget-10", "mget-50",
		"mg-p10", "mg-p50", "ms-p10", "ms-p50", "get-4k-p10", "set-4k-p10", "mix-zipf"},
}

// SelectScenarios resolves a comma-separated list of scenario or set names
// ("all" for the whole matrix).
func SelectScenarios(list string) ([]Scenario, error) {
	var out []Scenario
	seen := map[string]bool{}
	add := func(name string) error {
		for _, s := range Scenarios {
			if s.Name == name {
				if !seen[name] {
					seen[name] = true
					out = append(out, s)
				}
				return nil
			}
		}
		return fmt.Errorf("unknown scenario %q (see gocached-bench scenarios)", name)
	}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case n == "all":
			for _, s := range Scenarios {
				if err := add(s.Name); err != nil {
					return nil, err
				}
			}
		case ScenarioSets[n] != nil:
			for _, m := range ScenarioSets[n] {
				if err := add(m); err != nil {
					return nil, err
				}
			}
		default:
			if err := add(n); err != nil {
				return nil, err
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario selected")
	}
	return out, nil
}

// Config returns the load configuration of s over base (address, conns,
// keys, duration...).
func (s Scenario) Config(base Config) Config {
	c := base
	c.Proto, c.GetRatio, c.Pipeline, c.Batch = s.Proto, s.GetRatio, s.Pipeline, s.Batch
	c.ValueMin, c.ValueMax, c.Dist = s.Value, s.Value, s.Dist
	c.Preload = s.GetRatio > 0
	c.Label = s.Name
	return c
}

// Run is one measured run of one scenario on one server.
type RunRecord struct {
	Scenario  string    `json:"scenario"`
	Server    string    `json:"server"`
	Rep       int       `json:"rep"`
	Version   string    `json:"version,omitempty"`
	Args      []string  `json:"args,omitempty"`
	Started   time.Time `json:"started"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Result    *Result   `json:"result,omitempty"`
	CPU       CPUUsage  `json:"cpu"`
	RSSBefore uint64    `json:"rss_before"`
	RSSAfter  uint64    `json:"rss_after"`
}

// Summary is the median over the repetitions of one server in one scenario.
type Summary struct {
	Server     string  `json:"server"`
	Runs       int     `json:"runs"`
	OK         bool    `json:"ok"`
	Reason     string  `json:"reason,omitempty"`
	OpsPerSec  float64 `json:"ops_per_s"`
	KeysPerSec float64 `json:"keys_per_s"`
	CPUUsOp    float64 `json:"cpu_us_per_op"`
	UserUsOp   float64 `json:"user_us_per_op"`
	SysUsOp    float64 `json:"sys_us_per_op"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	P999       float64 `json:"p999_us"`
	RSS        float64 `json:"rss_bytes"`
	Errors     int64   `json:"errors"`
}

// ScenarioReport holds both servers' summaries and their ratios
// (first server / second server; absent when either failed).
type ScenarioReport struct {
	Scenario Scenario           `json:"scenario"`
	Servers  []Summary          `json:"servers"`
	Ratio    map[string]float64 `json:"ratio,omitempty"`
}

// Median of xs (NaN for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Ratio is a/b, NaN when either is not a positive finite number.
func Ratio(a, b float64) float64 {
	if !(a > 0) || !(b > 0) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return math.NaN()
	}
	return a / b
}

// Summarize takes the medians of the successful runs of one server.
func Summarize(server string, runs []RunRecord) Summary {
	s := Summary{Server: server, OK: true}
	var ops, keys, cpu, usr, sys, p50, p99, p999, rss []float64
	for _, r := range runs {
		if r.Server != server {
			continue
		}
		s.Runs++
		if r.Result != nil {
			s.Errors += r.Result.Errors
		}
		if !r.OK {
			s.OK = false
			if s.Reason == "" {
				s.Reason = r.Error
			}
			continue
		}
		ops = append(ops, r.Result.OpsPerSec)
		keys = append(keys, r.Result.KeysPerSec)
		cpu = append(cpu, r.CPU.TotalUsOp)
		usr = append(usr, r.CPU.UserUsOp)
		sys = append(sys, r.CPU.SysUsOp)
		p50 = append(p50, r.Result.Latency.P50)
		p99 = append(p99, r.Result.Latency.P99)
		p999 = append(p999, r.Result.Latency.P999)
		rss = append(rss, float64(r.RSSAfter))
	}
	if s.Runs == 0 {
		s.OK = false
		s.Reason = "not run"
	}
	if !s.OK {
		return s
	}
	s.OpsPerSec, s.KeysPerSec = Median(ops), Median(keys)
	s.CPUUsOp, s.UserUsOp, s.SysUsOp = Median(cpu), Median(usr), Median(sys)
	s.P50, s.P99, s.P999, s.RSS = Median(p50), Median(p99), Median(p999), Median(rss)
	return s
}

// Ratios of a over b for the compared measures; failed or zero ones are left out.
func Ratios(a, b Summary) map[string]float64 {
	if !a.OK || !b.OK {
		return nil
	}
	m := map[string]float64{}
	put := func(k string, x, y float64) {
		if r := Ratio(x, y); !math.IsNaN(r) {
			m[k] = r
		}
	}
	put("ops_per_s", a.OpsPerSec, b.OpsPerSec)
	put("keys_per_s", a.KeysPerSec, b.KeysPerSec)
	put("cpu_us_per_op", a.CPUUsOp, b.CPUUsOp)
	put("user_us_per_op", a.UserUsOp, b.UserUsOp)
	put("sys_us_per_op", a.SysUsOp, b.SysUsOp)
	put("p99", a.P99, b.P99)
	put("rss", a.RSS, b.RSS)
	return m
}

// CompareOptions configures Compare.
type CompareOptions struct {
	Scenarios []Scenario
	Servers   []ServerSpec // compared first / second (gocached, memcached)
	Reps      int
	Base      Config            // conns, keys, duration, timeout, seed
	Progress  io.Writer         // per-run progress bars; nil = none
	Log       io.Writer         // one line per run; nil = none
	Failed    map[string]string // server name -> reason it cannot run at all (e.g. build failed)
}

// CompareReport is everything a compare run measured.
type CompareReport struct {
	Env       Env              `json:"env"`
	Options   map[string]any   `json:"options"`
	Scenarios []ScenarioReport `json:"scenarios"`
	Runs      []RunRecord      `json:"runs"`
}

// Compare runs every scenario on every server, alternating the servers'
// order each repetition, each run on a fresh server.
func Compare(ctx context.Context, o CompareOptions) *CompareReport {
	rep := &CompareReport{}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	for _, s := range o.Scenarios {
		var runs []RunRecord
		failed := map[string]bool{}
		for r := 0; r < o.Reps; r++ {
			order := repOrder(o.Servers, r)
			for _, spec := range order {
				if ctx.Err() != nil {
					break
				}
				if reason, bad := o.Failed[spec.Name]; bad {
					if r == 0 {
						runs = append(runs, RunRecord{Scenario: s.Name, Server: spec.Name, Error: reason})
					}
					continue
				}
				if failed[spec.Name] {
					continue // one failure marks the scenario failed for this server
				}
				rr := RunScenario(ctx, spec, s, o.Base, r, o.Progress)
				runs = append(runs, rr)
				if !rr.OK {
					failed[spec.Name] = true
					logf("%-12s %-10s rep %d FAILED: %s", s.Name, spec.Name, r+1, rr.Error)
				} else {
					logf("%-12s %-10s rep %d %10.0f ops/s %7.2f CPU-us/op p99 %8.1f us", s.Name, spec.Name, r+1,
						rr.Result.OpsPerSec, rr.CPU.TotalUsOp, rr.Result.Latency.P99)
				}
			}
		}
		sr := ScenarioReport{Scenario: s}
		for _, spec := range o.Servers {
			sr.Servers = append(sr.Servers, Summarize(spec.Name, runs))
		}
		if len(sr.Servers) == 2 {
			sr.Ratio = Ratios(sr.Servers[0], sr.Servers[1])
		}
		rep.Scenarios = append(rep.Scenarios, sr)
		rep.Runs = append(rep.Runs, runs...)
	}
	return rep
}

// RunScenario starts spec fresh, preloads when the scenario reads, runs the
// load and measures the server. Every step is bounded in time.
func RunScenario(ctx context.Context, spec ServerSpec, s Scenario, base Config, rep int, progress io.Writer) RunRecord {
	rr := RunRecord{Scenario: s.Name, Server: spec.Name, Rep: rep + 1, Started: time.Now()}
	cfg := s.Config(base)
	cfg.Defaults()
	cfg.Progress = progress
	cfg.Label = s.Name + " " + spec.Name
	bound := cfg.Duration + 30*time.Second
	if cfg.Ops > 0 {
		bound = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()

	srv, err := StartServer(ctx, spec)
	if err != nil {
		rr.Error = err.Error()
		return rr
	}
	defer srv.Stop()
	rr.Version, rr.Args = srv.Version, srv.Args
	cfg.Network, cfg.Addr = "tcp", srv.Addr
	if s0, err := srv.Sample(); err == nil {
		rr.RSSBefore = s0.RSS
	}
	if cfg.Preload {
		if err := Preload(ctx, cfg); err != nil {
			rr.Error = "preload: " + err.Error()
			return rr
		}
	}
	before, err := srv.Sample()
	if err != nil {
		rr.Error = "read /proc: " + err.Error()
		return rr
	}
	res, err := Run(ctx, cfg)
	if res == nil {
		rr.Error = err.Error()
		return rr
	}
	after, err2 := srv.Sample()
	rr.Result = res
	switch {
	case err != nil:
		rr.Error = err.Error()
	case !srv.Alive():
		rr.Error = "server exited during the run: " + srv.Stderr()
	case err2 != nil:
		rr.Error = "read /proc: " + err2.Error()
	case res.Errors > 0:
		rr.Error = fmt.Sprintf("%d reply error(s): %s", res.Errors, strings.Join(res.ErrorSamples, "; "))
	case res.Requests == 0:
		rr.Error = "no request completed"
	default:
		rr.OK = true
	}
	if err2 == nil {
		rr.CPU = CPUPerOp(before, after, res.Requests)
		rr.RSSAfter = after.RSS
	}
	return rr
}
