package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MemoryOptions configures the memory mode.
type MemoryOptions struct {
	Servers []ServerSpec
	Items   int // items to store
	Size    int // value size
	SizeMax int // values between Size and SizeMax bytes (uniform); 0 = Size
	// KeyLen, when set, stores keys of that many bytes with flags 0
	// (PreloadKeys) instead of the load generator's 14-byte keys with
	// flags; SizeMax is then ignored.
	KeyLen int
	Reps   int
	Conns  int
	Log    io.Writer
	Failed map[string]string
}

// MemoryRun is one load of Items items into a fresh server.
type MemoryRun struct {
	Server       string            `json:"server"`
	Rep          int               `json:"rep"`
	Version      string            `json:"version,omitempty"`
	OK           bool              `json:"ok"`
	Error        string            `json:"error,omitempty"`
	RSSBefore    uint64            `json:"rss_before"`
	RSSAfter     uint64            `json:"rss_after"`
	Items        int64             `json:"curr_items"`
	Evictions    int64             `json:"evictions"`
	BytesPerItem float64           `json:"bytes_per_item"` // RSS growth / stored items
	Extra        map[string]string `json:"extra_stats,omitempty"`
}

// MemorySummary is the median of one server's runs.
type MemorySummary struct {
	Server       string            `json:"server"`
	OK           bool              `json:"ok"`
	Reason       string            `json:"reason,omitempty"`
	RSSAfter     float64           `json:"rss_after"`
	Items        int64             `json:"curr_items"`
	BytesPerItem float64           `json:"bytes_per_item"`
	Extra        map[string]string `json:"extra_stats,omitempty"`
}

// MemoryReport is the memory mode's output.
type MemoryReport struct {
	Env     Env                `json:"env"`
	Options map[string]any     `json:"options"`
	Servers []MemorySummary    `json:"servers"`
	Ratio   map[string]float64 `json:"ratio,omitempty"`
	Runs    []MemoryRun        `json:"runs"`
}

// repOrder returns the order the servers run in repetition rep (from 0):
// the first and the last swap places every other repetition, so that
// none always runs first on a machine that warms up or slows down.
func repOrder(servers []ServerSpec, rep int) []ServerSpec {
	order := slices.Clone(servers)
	if rep%2 == 1 && len(order) > 1 {
		order[0], order[len(order)-1] = order[len(order)-1], order[0]
	}
	return order
}

// extraStats keeps the stats a Go server may add (heap objects, GC pauses).
func extraStats(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "heap") || strings.Contains(lk, "gc") || strings.HasPrefix(lk, "go_") {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func statInt(m map[string]string, k string) int64 {
	v, _ := strconv.ParseInt(m[k], 10, 64)
	return v
}

// Memory loads Items items of Size bytes into each fresh server and reports
// RSS growth per stored item.
func Memory(ctx context.Context, o MemoryOptions) *MemoryReport {
	rep := &MemoryReport{}
	for r := 0; r < o.Reps; r++ {
		order := repOrder(o.Servers, r)
		for _, spec := range order {
			mr := MemoryRun{Server: spec.Name, Rep: r + 1}
			if reason, bad := o.Failed[spec.Name]; bad {
				mr.Error = reason
			} else {
				memoryRun(ctx, spec, o, &mr)
			}
			if o.Log != nil {
				if mr.OK {
					fmt.Fprintf(o.Log, "memory %-10s rep %d: %d items, RSS %s -> %s, %.1f B/item\n", spec.Name, r+1,
						mr.Items, mib(float64(mr.RSSBefore)), mib(float64(mr.RSSAfter)), mr.BytesPerItem)
				} else {
					fmt.Fprintf(o.Log, "memory %-10s rep %d FAILED: %s\n", spec.Name, r+1, mr.Error)
				}
			}
			rep.Runs = append(rep.Runs, mr)
		}
	}
	for _, spec := range o.Servers {
		s := MemorySummary{Server: spec.Name, OK: true}
		var rss, bpi []float64
		for _, r := range rep.Runs {
			if r.Server != spec.Name {
				continue
			}
			if !r.OK {
				s.OK = false
				if s.Reason == "" {
					s.Reason = r.Error
				}
				continue
			}
			rss = append(rss, float64(r.RSSAfter))
			bpi = append(bpi, r.BytesPerItem)
			s.Items, s.Extra = r.Items, r.Extra
		}
		if s.OK {
			s.RSSAfter, s.BytesPerItem = Median(rss), Median(bpi)
		}
		rep.Servers = append(rep.Servers, s)
	}
	if len(rep.Servers) == 2 && rep.Servers[0].OK && rep.Servers[1].OK {
		rep.Ratio = map[string]float64{
			"rss":            Ratio(rep.Servers[0].RSSAfter, rep.Servers[1].RSSAfter),
			"bytes_per_item": Ratio(rep.Servers[0].BytesPerItem, rep.Servers[1].BytesPerItem),
		}
	}
	return rep
}

func memoryRun(ctx context.Context, spec ServerSpec, o MemoryOptions, mr *MemoryRun) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, spec)
	if err != nil {
		mr.Error = err.Error()
		return
	}
	defer srv.Stop()
	mr.Version = srv.Version
	s0, err := srv.Sample()
	if err != nil {
		mr.Error = err.Error()
		return
	}
	cfg := Config{Network: "tcp", Addr: srv.Addr, Conns: o.Conns, Keys: uint64(o.Items), ValueMin: o.Size, ValueMax: max(o.Size, o.SizeMax), OOMOK: true,
		Timeout: 30 * time.Second}
	if o.KeyLen > 0 {
		err = PreloadKeys(ctx, srv.Addr, o.Conns, o.Items, o.KeyLen, o.Size)
	} else {
		err = Preload(ctx, cfg)
	}
	if err != nil {
		mr.Error = "load: " + err.Error()
		return
	}
	time.Sleep(200 * time.Millisecond) // let a GC'd server settle
	s1, err := srv.Sample()
	if err != nil {
		mr.Error = err.Error()
		return
	}
	st, err := Stats(srv.Addr, 2*time.Second)
	if err != nil {
		mr.Error = "stats: " + err.Error()
		return
	}
	mr.RSSBefore, mr.RSSAfter = s0.RSS, s1.RSS
	mr.Items, mr.Evictions = statInt(st, "curr_items"), statInt(st, "evictions")
	// gocached's "stats go" group (heap objects, GC pauses); memcached
	// answers ERROR and has nothing to add.
	if goStats, err := StatsGroup(srv.Addr, "go", 2*time.Second); err == nil {
		for k, v := range goStats {
			st[k] = v
		}
	}
	mr.Extra = extraStats(st)
	if mr.Items <= 0 {
		mr.Error = fmt.Sprintf("curr_items is %q after storing %d items", st["curr_items"], o.Items)
		return
	}
	mr.BytesPerItem = float64(int64(s1.RSS)-int64(s0.RSS)) / float64(mr.Items)
	mr.OK = true
}

// HitRatioOptions configures the hit-ratio mode.
type HitRatioOptions struct {
	Servers  []ServerSpec
	Keys     uint64 // key space (its data should exceed MemMB)
	Size     int
	SizeMax  int // values between Size and SizeMax bytes (uniform); 0 = Size
	Dist     Dist
	Ops      int64 // measured get requests (after as many for warm-up)
	Warmup   int64
	Conns    int
	Pipeline int
	Reps     int
	Log      io.Writer
	Failed   map[string]string
}

// HitRatioRun is one cache-aside run on a fresh server.
type HitRatioRun struct {
	Server    string  `json:"server"`
	Rep       int     `json:"rep"`
	Version   string  `json:"version,omitempty"`
	OK        bool    `json:"ok"`
	Error     string  `json:"error,omitempty"`
	MissRatio float64 `json:"miss_ratio"`
	Gets      int64   `json:"gets"`
	Misses    int64   `json:"misses"`
	Evictions int64   `json:"evictions"`
	Items     int64   `json:"curr_items"`
	RSS       uint64  `json:"rss"`
}

// HitRatioReport is the hit-ratio mode's output.
type HitRatioReport struct {
	Env     Env                `json:"env"`
	Options map[string]any     `json:"options"`
	Median  map[string]float64 `json:"median_miss_ratio"`
	Ratio   float64            `json:"ratio,omitempty"` // first server's median over the second's, with two
	// VsMemcached is each other server's median over memcached's.
	VsMemcached map[string]float64 `json:"vs_memcached,omitempty"`
	Runs        []HitRatioRun      `json:"runs"`
}

// HitRatio runs the lazy-loading pattern (get; on a miss, set) on each
// server and reports its miss ratio after a warm-up.
func HitRatio(ctx context.Context, o HitRatioOptions) *HitRatioReport {
	rep := &HitRatioReport{Median: map[string]float64{}}
	for r := 0; r < o.Reps; r++ {
		order := repOrder(o.Servers, r)
		for _, spec := range order {
			hr := HitRatioRun{Server: spec.Name, Rep: r + 1}
			if reason, bad := o.Failed[spec.Name]; bad {
				hr.Error = reason
			} else {
				hitRatioRun(ctx, spec, o, &hr)
			}
			if o.Log != nil {
				if hr.OK {
					fmt.Fprintf(o.Log, "hitratio %-10s rep %d: miss ratio %.4f (%d gets, %d evictions)\n",
						spec.Name, r+1, hr.MissRatio, hr.Gets, hr.Evictions)
				} else {
					fmt.Fprintf(o.Log, "hitratio %-10s rep %d FAILED: %s\n", spec.Name, r+1, hr.Error)
				}
			}
			rep.Runs = append(rep.Runs, hr)
		}
	}
	for _, spec := range o.Servers {
		var xs []float64
		ok := true
		for _, r := range rep.Runs {
			if r.Server == spec.Name {
				ok = ok && r.OK
				xs = append(xs, r.MissRatio)
			}
		}
		if ok && len(xs) > 0 {
			rep.Median[spec.Name] = Median(xs)
		}
	}
	if len(o.Servers) == 2 {
		a, oka := rep.Median[o.Servers[0].Name]
		b, okb := rep.Median[o.Servers[1].Name]
		if oka && okb && b > 0 {
			rep.Ratio = a / b
		}
	}
	rep.VsMemcached = vsMemcached(rep.Median)
	return rep
}

// vsMemcached divides each median by memcached's (nil without it).
func vsMemcached(median map[string]float64) map[string]float64 {
	mc := median["memcached"]
	if mc <= 0 {
		return nil
	}
	out := map[string]float64{}
	for name, v := range median {
		if name != "memcached" {
			out[name] = v / mc
		}
	}
	return out
}

func hitRatioRun(ctx context.Context, spec ServerSpec, o HitRatioOptions, hr *HitRatioRun) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Minute) // a loaded machine runs the 2M requests slowly
	defer cancel()
	srv, err := StartServer(ctx, spec)
	if err != nil {
		hr.Error = err.Error()
		return
	}
	defer srv.Stop()
	hr.Version = srv.Version
	cfg := Config{Network: "tcp", Addr: srv.Addr, Conns: o.Conns, Keys: o.Keys, Dist: o.Dist,
		ValueMin: o.Size, ValueMax: max(o.Size, o.SizeMax), GetRatio: 1, Pipeline: o.Pipeline, Lazy: true, Seed: uint64(hr.Rep),
		Timeout: 30 * time.Second} // the miss ratio is measured, not latency: a loaded machine must not fail the run
	if o.Warmup > 0 {
		cfg.Ops = o.Warmup
		res, err := Run(ctx, cfg)
		if err != nil || res.Errors > 0 {
			hr.Error = fmt.Sprintf("warm-up: %v %v", err, errSummary(res))
			return
		}
	}
	cfg.Ops = o.Ops
	cfg.Seed += 1000
	cfg.Dist.Start = o.Warmup      // a shifting working set goes on shifting
	cfg.KeyScan = uint64(o.Warmup) // one-off scan keys stay one-off: not the warm-up's again
	res, err := Run(ctx, cfg)
	if err != nil || res.Errors > 0 {
		hr.Error = fmt.Sprintf("run: %v %v", err, errSummary(res))
		return
	}
	hr.MissRatio, hr.Gets, hr.Misses = res.MissRatio, res.Gets, res.Misses
	if st, err := Stats(srv.Addr, 2*time.Second); err == nil {
		hr.Evictions, hr.Items = statInt(st, "evictions"), statInt(st, "curr_items")
	}
	if s, err := srv.Sample(); err == nil {
		hr.RSS = s.RSS
	}
	hr.OK = true
}

func errSummary(r *Result) string {
	if r == nil || r.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("%d reply error(s): %s", r.Errors, strings.Join(r.ErrorSamples, "; "))
}

// CalcifyOptions configures the calcification mode: each server is filled
// with small values, then read and written cache-aside with large values
// of other keys; the memory the small values hold must move to the large
// values' class (slab rebalancing) for the hit ratio to recover.
type CalcifyOptions struct {
	Servers   []ServerSpec
	SmallKeys uint64        // keys of small values the fill stores
	SmallSize int           // bytes
	LargeKeys uint64        // keys of large values after the switch (their data should fit -m)
	LargeSize int           // bytes
	Window    time.Duration // the hit ratio is sampled per window
	MaxTime   time.Duration // how long to wait for recovery
	Target    float64       // a window's hit ratio that counts as recovered
	Conns     int
	Pipeline  int
	Reps      int
	Log       io.Writer
	Failed    map[string]string
}

// CalcifyRun is one calcification run on a fresh server.
type CalcifyRun struct {
	Server     string    `json:"server"`
	Rep        int       `json:"rep"`
	Version    string    `json:"version,omitempty"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty"`
	Recovered  bool      `json:"recovered"`
	Seconds    float64   `json:"seconds"`     // from the switch to the end of the first window at Target
	HitRatios  []float64 `json:"hit_ratios"`  // per window
	SlabsMoved int64     `json:"slabs_moved"` // pages moved, from the server's stats
}

// CalcifyReport is the calcification mode's output.
type CalcifyReport struct {
	Env     Env                `json:"env"`
	Options map[string]any     `json:"options"`
	Median  map[string]float64 `json:"median_seconds"` // over recovered runs only
	Runs    []CalcifyRun       `json:"runs"`
}

// Calcify runs the calcification mode on each server, alternating.
func Calcify(ctx context.Context, o CalcifyOptions) *CalcifyReport {
	rep := &CalcifyReport{Median: map[string]float64{}}
	for r := 0; r < o.Reps; r++ {
		order := repOrder(o.Servers, r)
		for _, spec := range order {
			cr := CalcifyRun{Server: spec.Name, Rep: r + 1}
			if reason, bad := o.Failed[spec.Name]; bad {
				cr.Error = reason
			} else {
				calcifyRun(ctx, spec, o, &cr)
			}
			if o.Log != nil {
				switch {
				case !cr.OK:
					fmt.Fprintf(o.Log, "calcify %-10s rep %d FAILED: %s\n", spec.Name, r+1, cr.Error)
				case cr.Recovered:
					fmt.Fprintf(o.Log, "calcify %-10s rep %d: hit ratio >= %.2f after %.1f s (%d pages moved)\n",
						spec.Name, r+1, o.Target, cr.Seconds, cr.SlabsMoved)
				default:
					fmt.Fprintf(o.Log, "calcify %-10s rep %d: not recovered in %v (%d pages moved)\n",
						spec.Name, r+1, o.MaxTime, cr.SlabsMoved)
				}
			}
			rep.Runs = append(rep.Runs, cr)
		}
	}
	for _, spec := range o.Servers {
		var xs []float64
		for _, r := range rep.Runs {
			if r.Server == spec.Name && r.OK && r.Recovered {
				xs = append(xs, r.Seconds)
			}
		}
		if len(xs) > 0 {
			rep.Median[spec.Name] = Median(xs)
		}
	}
	return rep
}

func calcifyRun(ctx context.Context, spec ServerSpec, o CalcifyOptions, cr *CalcifyRun) {
	ctx, cancel := context.WithTimeout(ctx, o.MaxTime+5*time.Minute)
	defer cancel()
	srv, err := StartServer(ctx, spec)
	if err != nil {
		cr.Error = err.Error()
		return
	}
	defer srv.Stop()
	cr.Version = srv.Version
	fill := Config{Network: "tcp", Addr: srv.Addr, Conns: o.Conns, Keys: o.SmallKeys, ValueMin: o.SmallSize,
		ValueMax: o.SmallSize, GetRatio: 1, Pipeline: o.Pipeline, Lazy: true, Ops: int64(2 * o.SmallKeys),
		Seed: uint64(cr.Rep), OOMOK: true}
	if res, err := Run(ctx, fill); err != nil || res.Errors > 0 {
		cr.Error = fmt.Sprintf("fill: %v %v", err, errSummary(res))
		return
	}
	// The large values' keys lie beyond the small ones.
	base := o.SmallKeys + 1<<20
	for elapsed := time.Duration(0); elapsed < o.MaxTime; elapsed += o.Window {
		win := Config{Network: "tcp", Addr: srv.Addr, Conns: o.Conns, Keys: o.LargeKeys, KeyBase: base,
			ValueMin: o.LargeSize, ValueMax: o.LargeSize, GetRatio: 1, Pipeline: o.Pipeline, Lazy: true,
			Duration: o.Window, Seed: uint64(cr.Rep)*1000 + uint64(len(cr.HitRatios)), OOMOK: true}
		res, err := Run(ctx, win)
		if err != nil || res.Errors > 0 {
			cr.Error = fmt.Sprintf("window %d: %v %v", len(cr.HitRatios)+1, err, errSummary(res))
			return
		}
		hit := 1 - res.MissRatio
		cr.HitRatios = append(cr.HitRatios, hit)
		if hit >= o.Target {
			cr.Recovered, cr.Seconds = true, (elapsed + o.Window).Seconds()
			break
		}
	}
	if st, err := Stats(srv.Addr, 2*time.Second); err == nil {
		cr.SlabsMoved = statInt(st, "slabs_moved")
	}
	cr.OK = true
}

// ServerVersion returns the server a run measured and the version it
// reported (for the report's environment).
func (r RunRecord) ServerVersion() (string, string) { return r.Server, r.Version }

// ServerVersion is RunRecord's.
func (r MemoryRun) ServerVersion() (string, string) { return r.Server, r.Version }

// ServerVersion is RunRecord's.
func (r HitRatioRun) ServerVersion() (string, string) { return r.Server, r.Version }

// ServerVersion is RunRecord's.
func (r CalcifyRun) ServerVersion() (string, string) { return r.Server, r.Version }
