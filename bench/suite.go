package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Workload is one hit-ratio workload of a suite: a key distribution and
// value sizes over a key space whose data is KeysPerMem times the servers'
// memory.
type Workload struct {
	Name    string `json:"name"`
	Dist    Dist   `json:"dist"`
	Size    int    `json:"size"`
	SizeMax int    `json:"size_max,omitempty"`
	Keys    uint64 `json:"keys"`
}

// DefaultKeysPerMem is how many times the servers' memory the suite's key
// space holds in data: enough that most keys cannot be cached.
const DefaultKeysPerMem = 4.6

// DefaultWorkloads are the workloads gocached's default eviction policy
// was chosen on (issue 13), for servers of memMB megabytes: Zipf 0.99 and
// 0.8 over 256-byte values, Zipf 0.99 with 30% one-off scan keys, values of
// 100 B to 10 KB, and a working set that shifts every 250K requests.
func DefaultWorkloads(memMB int, keysPerMem float64) []Workload {
	keys := func(avg float64) uint64 {
		return uint64(keysPerMem * float64(memMB) * (1 << 20) / avg)
	}
	return []Workload{
		{Name: "zipf-0.99", Dist: Dist{Kind: "zipf", S: 0.99}, Size: 256, Keys: keys(256)},
		{Name: "zipf-0.8", Dist: Dist{Kind: "zipf", S: 0.8}, Size: 256, Keys: keys(256)},
		{Name: "scan-30%", Dist: Dist{Kind: "scan", S: 0.99, ScanFrac: 0.3}, Size: 256, Keys: keys(256)},
		{Name: "mixed-100B-10KB", Dist: Dist{Kind: "zipf", S: 0.99}, Size: 100, SizeMax: 10000, Keys: keys(5050)},
		{Name: "shifting", Dist: Dist{Kind: "shift", S: 0.99, Period: shiftDefaultPeriod}, Size: 256, Keys: keys(256)},
	}
}

// SuiteReport is the hit-ratio suite's output: one HitRatioReport per
// workload, and each server's geometric mean of its miss ratio over
// memcached's.
type SuiteReport struct {
	Env       Env                `json:"env"`
	Options   map[string]any     `json:"options"`
	Workloads []Workload         `json:"workloads"`
	Reports   []*HitRatioReport  `json:"reports"`
	Geomean   map[string]float64 `json:"geomean_vs_memcached,omitempty"`
	// RSSRatio is each server's largest RSS over memcached's, across the
	// workloads (median of reps), so a lower miss ratio bought with more
	// memory shows.
	RSSRatio map[string]float64 `json:"max_rss_vs_memcached,omitempty"`
}

// HitRatioSuite runs HitRatio on each workload with the options' servers,
// reps and load, and summarises them.
func HitRatioSuite(ctx context.Context, o HitRatioOptions, workloads []Workload) *SuiteReport {
	rep := &SuiteReport{Workloads: workloads, Geomean: map[string]float64{}, RSSRatio: map[string]float64{}}
	logs := map[string][]float64{}
	for _, w := range workloads {
		if ctx.Err() != nil {
			break
		}
		wo := o
		wo.Keys, wo.Size, wo.SizeMax, wo.Dist = w.Keys, w.Size, w.SizeMax, w.Dist
		if o.Log != nil {
			fmt.Fprintf(o.Log, "workload %s: %d keys, %s\n", w.Name, w.Keys, w.Dist)
		}
		r := HitRatio(ctx, wo)
		rep.Reports = append(rep.Reports, r)
		for name, v := range r.VsMemcached {
			if v > 0 {
				logs[name] = append(logs[name], math.Log(v))
			}
		}
		mcRSS := medianRSS(r, "memcached")
		for _, s := range o.Servers {
			if s.Name == "memcached" || mcRSS == 0 {
				continue
			}
			rep.RSSRatio[s.Name] = max(rep.RSSRatio[s.Name], medianRSS(r, s.Name)/mcRSS)
		}
	}
	for name, ls := range logs {
		if len(ls) == len(workloads) {
			var sum float64
			for _, l := range ls {
				sum += l
			}
			rep.Geomean[name] = math.Exp(sum / float64(len(ls)))
		}
	}
	return rep
}

func medianRSS(r *HitRatioReport, server string) float64 {
	var xs []float64
	for _, run := range r.Runs {
		if run.Server == server && run.OK {
			xs = append(xs, float64(run.RSS))
		}
	}
	if len(xs) == 0 {
		return 0
	}
	return Median(xs)
}

// WriteSuiteTable prints one row per workload with each server's median
// miss ratio and, for the others, its ratio to memcached's; then the
// geometric means and the largest RSS ratios.
func WriteSuiteTable(w io.Writer, r *SuiteReport, servers []ServerSpec) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "workload\t")
	for _, s := range servers {
		fmt.Fprintf(tw, "%s\t", s.Name)
	}
	fmt.Fprintln(tw)
	for i, rep := range r.Reports {
		fmt.Fprintf(tw, "%s\t", r.Workloads[i].Name)
		for _, s := range servers {
			v, ok := rep.Median[s.Name]
			switch x, vs := rep.VsMemcached[s.Name]; {
			case !ok:
				fmt.Fprint(tw, "failed\t")
			case vs:
				fmt.Fprintf(tw, "%.4f (%.3f)\t", v, x)
			default:
				fmt.Fprintf(tw, "%.4f\t", v)
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "geomean vs memcached\t")
	for _, s := range servers {
		if g, ok := r.Geomean[s.Name]; ok {
			fmt.Fprintf(tw, "%.3f\t", g)
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprint(tw, "max RSS vs memcached\t")
	for _, s := range servers {
		if g, ok := r.RSSRatio[s.Name]; ok {
			fmt.Fprintf(tw, "%.3f\t", g)
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	tw.Flush()
}
