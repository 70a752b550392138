package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Env describes where and how a benchmark ran.
type Env struct {
	Date      time.Time         `json:"date"`
	Hostname  string            `json:"hostname"`
	CPUModel  string            `json:"cpu_model"`
	NumCPU    int               `json:"num_cpu"`
	Kernel    string            `json:"kernel"`
	GoVersion string            `json:"go_version"`
	Args      []string          `json:"args"`
	Versions  map[string]string `json:"versions,omitempty"` // server name -> "version" reply
	Bins      map[string]string `json:"bins,omitempty"`
	Pinning   string            `json:"pinning"`
}

// CPUModel returns the first "model name" of cpuinfo (a /proc/cpuinfo text).
func CPUModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// CurrentEnv describes this machine now.
func CurrentEnv() Env {
	e := Env{Date: time.Now().UTC(), NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(), Args: os.Args,
		Versions: map[string]string{}, Bins: map[string]string{}}
	e.Hostname, _ = os.Hostname()
	ci, _ := os.ReadFile("/proc/cpuinfo")
	e.CPUModel = CPUModel(ci)
	k, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	e.Kernel = strings.TrimSpace(string(k))
	return e
}

// WriteJSON writes v indented to path, creating its directory.
func WriteJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func fmtRatio(m map[string]float64, k string) string {
	if v, ok := m[k]; ok && !math.IsNaN(v) {
		return fmt.Sprintf("%.2f", v)
	}
	return "-"
}

func kilo(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.0fK", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func mib(x float64) string { return fmt.Sprintf("%.1fMiB", x/(1<<20)) }

// WriteCompareTable prints one line per scenario and server, and the ratios
// of the first server over the second.
func WriteCompareTable(w io.Writer, r *CompareReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tserver\truns\tops/s\tkeys/s\tCPU-us/op\t(user\tsys)\tp50-us\tp99-us\tp99.9-us\tRSS\terrors\t")
	var notes []string
	for _, s := range r.Scenarios {
		for _, m := range s.Servers {
			if !m.OK {
				notes = append(notes, fmt.Sprintf("[%d] %s on %s: %s", len(notes)+1, s.Scenario.Name, m.Server, oneLine(m.Reason, 160)))
				fmt.Fprintf(tw, "%s\t%s\t%d\tFAILED[%d]\t-\t-\t-\t-\t-\t-\t-\t-\t%d\t\n", s.Scenario.Name, m.Server, m.Runs,
					len(notes), m.Errors)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\t%s\t%d\t\n", s.Scenario.Name, m.Server, m.Runs,
				kilo(m.OpsPerSec), kilo(m.KeysPerSec), m.CPUUsOp, m.UserUsOp, m.SysUsOp, m.P50, m.P99, m.P999, mib(m.RSS), m.Errors)
		}
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	if len(r.Scenarios) == 0 || len(r.Scenarios[0].Servers) != 2 {
		return
	}
	a, b := r.Scenarios[0].Servers[0].Server, r.Scenarios[0].Servers[1].Server
	fmt.Fprintf(w, "\nratios %s/%s (medians; ops/s > 1 and the others < 1 favour %s)\n", a, b, a)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tops/s\tkeys/s\tCPU-us/op\tuser\tsys\tuser-us/op %s->%s\tsys-us/op %s->%s\tp99\tRSS\t\n", b, a, b, a)
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Scenario.Name, fmtRatio(s.Ratio, "ops_per_s"),
			fmtRatio(s.Ratio, "keys_per_s"), fmtRatio(s.Ratio, "cpu_us_per_op"), fmtRatio(s.Ratio, "user_us_per_op"),
			fmtRatio(s.Ratio, "sys_us_per_op"), usPair(s, 1, 0, func(m Summary) float64 { return m.UserUsOp }),
			usPair(s, 1, 0, func(m Summary) float64 { return m.SysUsOp }), fmtRatio(s.Ratio, "p99"), fmtRatio(s.Ratio, "rss"))
	}
	tw.Flush()
	if g := GeoMeanRatio(r, "cpu_us_per_op"); !math.IsNaN(g) {
		fmt.Fprintf(w, "geometric mean of CPU-us/op ratios: %.2f\n", g)
	}
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// WriteMemoryTable prints the memory mode's summary.
func WriteMemoryTable(w io.Writer, r *MemoryReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\titems\tRSS-after\tbytes/item\textra stats\t")
	for _, s := range r.Servers {
		if !s.OK {
			fmt.Fprintf(tw, "%s\tFAILED: %s\t\t\t\t\n", s.Server, oneLine(s.Reason, 70))
			continue
		}
		var ex []string
		for k, v := range s.Extra {
			ex = append(ex, k+"="+v)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.1f\t%s\t\n", s.Server, s.Items, mib(s.RSSAfter), s.BytesPerItem, strings.Join(ex, " "))
	}
	tw.Flush()
	if len(r.Servers) == 2 {
		fmt.Fprintf(w, "ratio %s/%s: RSS %s, bytes/item %s\n", r.Servers[0].Server, r.Servers[1].Server,
			fmtRatio(r.Ratio, "rss"), fmtRatio(r.Ratio, "bytes_per_item"))
	}
}

// WriteHitRatioTable prints the hit-ratio mode's summary.
func WriteHitRatioTable(w io.Writer, r *HitRatioReport, servers []ServerSpec) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tmiss ratio (median)\tvs memcached\t")
	for _, s := range servers {
		if v, ok := r.Median[s.Name]; ok {
			vs := "-"
			if x, ok := r.VsMemcached[s.Name]; ok {
				vs = fmt.Sprintf("%.3f", x)
			}
			fmt.Fprintf(tw, "%s\t%.4f\t%s\t\n", s.Name, v, vs)
		} else {
			reason := "failed"
			for _, run := range r.Runs {
				if run.Server == s.Name && !run.OK {
					reason = "FAILED: " + oneLine(run.Error, 70)
					break
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t\t\n", s.Name, reason)
		}
	}
	tw.Flush()
	if r.Ratio > 0 && len(servers) == 2 {
		fmt.Fprintf(w, "ratio %s/%s miss ratio: %.3f\n", servers[0].Name, servers[1].Name, r.Ratio)
	}
}

// WriteCalcifyTable prints each server's median recovery time and how many
// of its runs recovered within maxTime.
func WriteCalcifyTable(w io.Writer, r *CalcifyReport, servers []ServerSpec, maxTime time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\trecovery (median)\trecovered runs\tpages moved (median)\t")
	for _, s := range servers {
		var moved []float64
		recovered, runs, reason := 0, 0, ""
		for _, run := range r.Runs {
			if run.Server != s.Name {
				continue
			}
			runs++
			if !run.OK {
				reason = "FAILED: " + oneLine(run.Error, 60)
				continue
			}
			moved = append(moved, float64(run.SlabsMoved))
			if run.Recovered {
				recovered++
			}
		}
		med := fmt.Sprintf("> %v", maxTime)
		if v, ok := r.Median[s.Name]; ok {
			med = fmt.Sprintf("%.1f s", v)
		}
		if reason != "" && len(moved) == 0 {
			med = reason
		}
		mv := "-"
		if len(moved) > 0 {
			mv = fmt.Sprintf("%.0f", Median(moved))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t\n", s.Name, med, recovered, runs, mv)
	}
	tw.Flush()
}

// PlotCompare draws ops/s and p99 per scenario for each server (grouped
// bars, failed runs as zero) into a PNG or SVG, by path's extension.
func PlotCompare(path string, r *CompareReport) error {
	if len(r.Scenarios) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	names := make([]string, len(r.Scenarios))
	for i, s := range r.Scenarios {
		names[i] = s.Scenario.Name
	}
	nsrv := len(r.Scenarios[0].Servers)
	colors := []color.Color{color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
		color.RGBA{G: 0xa0, B: 0x2c, A: 0xff}}
	mk := func(title, ylabel string, val func(Summary) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.NominalX(names...)
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YTop
		w := vg.Points(float64(min(20, 300/len(names))))
		for j := 0; j < nsrv; j++ {
			vals := make(plotter.Values, len(r.Scenarios))
			for i, s := range r.Scenarios {
				if j < len(s.Servers) && s.Servers[j].OK {
					vals[i] = val(s.Servers[j])
				}
			}
			b, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			b.LineStyle.Width = 0
			b.Color = colors[j%len(colors)]
			b.Offset = w * vg.Length(float64(j)-float64(nsrv-1)/2)
			p.Add(b)
			p.Legend.Add(r.Scenarios[0].Servers[j].Server, b)
		}
		p.Legend.Top = true
		p.Y.Tick.Marker = shortTicks{}
		return p, nil
	}
	p1, err := mk("throughput (median)", "requests/s", func(s Summary) float64 { return s.OpsPerSec })
	if err != nil {
		return err
	}
	p2, err := mk("p99 latency (median)", "µs", func(s Summary) float64 { return s.P99 })
	if err != nil {
		return err
	}
	width := vg.Length(max(16, 1.2*float64(len(names)))) * vg.Centimeter
	height := 22 * vg.Centimeter
	var c vg.CanvasWriterTo
	var dc draw.Canvas
	if strings.HasSuffix(path, ".svg") {
		return plotSVG(path, width, height, p1, p2)
	}
	img := vgimg.New(width, height)
	dc = draw.New(img)
	c = vgimg.PngCanvas{Canvas: img}
	drawTiles(dc, p1, p2)
	return writeCanvas(path, c)
}

func drawTiles(dc draw.Canvas, p1, p2 *plot.Plot) {
	t := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6), PadY: vg.Points(12)}
	plots := [][]*plot.Plot{{p1}, {p2}}
	cs := plot.Align(plots, t, dc)
	p1.Draw(cs[0][0])
	p2.Draw(cs[1][0])
}

func writeCanvas(path string, c vg.CanvasWriterTo) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func plotSVG(path string, width, height vg.Length, p1, p2 *plot.Plot) error {
	c := vgsvg.New(width, height)
	drawTiles(draw.New(c), p1, p2)
	return writeCanvas(path, c)
}

// shortTicks labels an axis as 250K, 1.5M... instead of 250000.00.
type shortTicks struct{}

func (shortTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strings.TrimSuffix(strings.TrimSuffix(kilo(ts[i].Value), ".00M"), ".0")
			if strings.HasSuffix(kilo(ts[i].Value), ".00M") {
				ts[i].Label += "M"
			}
		}
	}
	return ts
}

// usPair formats one measure of the servers from and to of a scenario as
// "from->to" (microseconds per op), "-" when either failed.
func usPair(s ScenarioReport, from, to int, f func(Summary) float64) string {
	if len(s.Servers) <= max(from, to) || !s.Servers[from].OK || !s.Servers[to].OK {
		return "-"
	}
	return fmt.Sprintf("%.2f->%.2f", f(s.Servers[from]), f(s.Servers[to]))
}

// GeoMeanRatio is the geometric mean of one ratio over the scenarios that
// have it (NaN for none).
func GeoMeanRatio(r *CompareReport, key string) float64 {
	sum, n := 0.0, 0
	for _, s := range r.Scenarios {
		if v, ok := s.Ratio[key]; ok && v > 0 {
			sum += math.Log(v)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return math.Exp(sum / float64(n))
}
