// Command gocached-bench is gocached's load generator: it measures one
// memcached-compatible server ("run"), or gocached and memcached side by side
// on the same workloads ("compare", "memory", "hitratio") and prints ratios.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gocached/gocached/bench"
)

func main() {
	app := &cli.App{
		Name:  "gocached-bench",
		Usage: "measure gocached and memcached side by side",
		Commands: []*cli.Command{
			runCmd(), compareCmd(), memoryCmd(), hitRatioCmd(), calcifyCmd(), valuesCmd(), idleCmd(),
			{
				Name:  "scenarios",
				Usage: "list the built-in scenario matrix and its named sets",
				Action: func(c *cli.Context) error {
					for _, s := range bench.Scenarios {
						fmt.Printf("%-14s %s\n", s.Name, s.Desc)
					}
					for n, m := range bench.ScenarioSets {
						fmt.Printf("set %-10s %s\n", n, strings.Join(m, ","))
					}
					return nil
				},
			},
		},
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "gocached-bench:", err)
		os.Exit(1)
	}
}

var quietFlag = &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar or per-run lines"}

func loadFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 16, Usage: "connections"},
		&cli.Uint64Flag{Name: "keys", Aliases: []string{"k"}, Value: 10000, Usage: "key space size"},
		&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Value: 5 * time.Second, Usage: "run length"},
		&cli.DurationFlag{Name: "timeout", Value: 2 * time.Second, Usage: "a reply later than this is an error"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed"},
	}
}

func runCmd() *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "generate load against one server and measure it",
		Flags: append(loadFlags(),
			&cli.StringFlag{Name: "server", Aliases: []string{"s"}, Value: "127.0.0.1:11211", Usage: "host:port, or a unix socket path (unix:PATH or an absolute path)"},
			&cli.StringFlag{Name: "dist", Value: "uniform", Usage: "key distribution: uniform, zipf[:s], scan[:s[:fraction]]"},
			&cli.StringFlag{Name: "value", Value: "32", Usage: "value size in bytes: N or MIN..MAX"},
			&cli.StringFlag{Name: "ratio", Value: "1:0", Usage: "get:set ratio (e.g. 9:1), or the get fraction (0.9)"},
			&cli.IntFlag{Name: "pipeline", Aliases: []string{"P"}, Value: 1, Usage: "requests in flight per connection"},
			&cli.IntFlag{Name: "batch", Aliases: []string{"b"}, Value: 1, Usage: "keys per get (multiget when > 1)"},
			&cli.StringFlag{Name: "protocol", Aliases: []string{"p"}, Value: "text", Usage: "text, meta or binary"},
			&cli.Int64Flag{Name: "ops", Usage: "requests to send (instead of --duration)"},
			&cli.BoolFlag{Name: "preload", Usage: "store every key once before measuring"},
			&cli.Float64Flag{Name: "rate", Usage: "open loop at this many requests/s (latency from the intended send time)"},
			&cli.BoolFlag{Name: "lazy", Usage: "cache-aside: after a missed get, set the key"},
			&cli.IntFlag{Name: "pid", Usage: "server process id, to measure its CPU per request and RSS"},
			&cli.StringFlag{Name: "json", Usage: "also write the result as JSON to this file"},
			quietFlag,
		),
		Action: func(c *cli.Context) error {
			cfg, err := runConfig(c)
			if err != nil {
				return err
			}
			if cfg.Preload {
				if err := bench.Preload(c.Context, cfg); err != nil {
					return err
				}
			}
			pid := c.Int("pid")
			var before bench.ProcSample
			if pid > 0 {
				if before, err = bench.ReadProc("/proc", pid); err != nil {
					return err
				}
			}
			res, err := bench.Run(c.Context, cfg)
			if res == nil {
				return err
			}
			out := map[string]any{"env": bench.CurrentEnv(), "config": cfg, "result": res}
			fmt.Printf("%s %s  %d conns, pipeline %d, batch %d, %s keys, value %d..%d B, get ratio %.2f\n",
				cfg.Proto, cfg.Addr, cfg.Conns, cfg.Pipeline, cfg.Batch, cfg.Dist, cfg.ValueMin, cfg.ValueMax, cfg.GetRatio)
			fmt.Printf("requests %d in %.2fs: %.0f req/s, %.0f keys/s, miss ratio %.4f, errors %d\n",
				res.Requests, res.ElapsedSec, res.OpsPerSec, res.KeysPerSec, res.MissRatio, res.Errors)
			l := res.Latency
			fmt.Printf("latency us: p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
			for _, s := range res.ErrorSamples {
				fmt.Println("error:", s)
			}
			if pid > 0 {
				after, err := bench.ReadProc("/proc", pid)
				if err != nil {
					return err
				}
				u := bench.CPUPerOp(before, after, res.Requests)
				fmt.Printf("server CPU %.2f us/req (user %.2f, sys %.2f), RSS %.1f -> %.1f MiB\n", u.TotalUsOp, u.UserUsOp,
					u.SysUsOp, float64(before.RSS)/(1<<20), float64(after.RSS)/(1<<20))
				out["server_cpu"], out["rss_before"], out["rss_after"] = u, before.RSS, after.RSS
			}
			if p := c.String("json"); p != "" {
				if err := bench.WriteJSON(p, out); err != nil {
					return err
				}
			}
			if err != nil {
				return err
			}
			if res.Errors > 0 {
				return cli.Exit(fmt.Sprintf("%d reply error(s)", res.Errors), 2)
			}
			return nil
		},
	}
}

func runConfig(c *cli.Context) (bench.Config, error) {
	cfg := bench.Config{
		Conns: c.Int("conns"), Keys: c.Uint64("keys"), Duration: c.Duration("duration"), Timeout: c.Duration("timeout"),
		Seed: c.Uint64("seed"), Pipeline: c.Int("pipeline"), Batch: c.Int("batch"), Ops: c.Int64("ops"),
		Preload: c.Bool("preload"), Rate: c.Float64("rate"), Lazy: c.Bool("lazy"),
	}
	srv := c.String("server")
	switch {
	case strings.HasPrefix(srv, "unix:"):
		cfg.Network, cfg.Addr = "unix", strings.TrimPrefix(srv, "unix:")
	case strings.HasPrefix(srv, "/"):
		cfg.Network, cfg.Addr = "unix", srv
	default:
		cfg.Network, cfg.Addr = "tcp", srv
	}
	var err error
	if cfg.Dist, err = bench.ParseDist(c.String("dist")); err != nil {
		return cfg, err
	}
	if cfg.Proto, err = bench.ParseProtocol(c.String("protocol")); err != nil {
		return cfg, err
	}
	if cfg.ValueMin, cfg.ValueMax, err = parseRange(c.String("value")); err != nil {
		return cfg, err
	}
	if cfg.GetRatio, err = parseRatio(c.String("ratio")); err != nil {
		return cfg, err
	}
	if !c.Bool("quiet") {
		cfg.Progress = os.Stderr
	}
	return cfg, nil
}

func parseRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "..")
	a, err := strconv.Atoi(lo)
	if err != nil || a <= 0 {
		return 0, 0, fmt.Errorf("bad value size %q", s)
	}
	if !isRange {
		return a, a, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a {
		return 0, 0, fmt.Errorf("bad value size range %q", s)
	}
	return a, b, nil
}

// parseRatio accepts "get:set" counts or a get fraction.
func parseRatio(s string) (float64, error) {
	if g, st, ok := strings.Cut(s, ":"); ok {
		a, err1 := strconv.ParseFloat(g, 64)
		b, err2 := strconv.ParseFloat(st, 64)
		if err1 != nil || err2 != nil || a < 0 || b < 0 || a+b == 0 {
			return 0, fmt.Errorf("bad get:set ratio %q", s)
		}
		return a / (a + b), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return 0, fmt.Errorf("bad get ratio %q", s)
	}
	return f, nil
}

func serverFlags(defMem int) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "gocached", Usage: "gocached binary (default: go build ./cmd/gocached from --src into a temporary directory)"},
		&cli.StringFlag{Name: "memcached", Value: "memcached", Usage: "memcached binary (looked up in PATH)"},
		&cli.StringSliceFlag{Name: "gocached-args", Usage: "extra gocached arguments, e.g. --gocached-args=-o,eviction=s3fifo (comma-separated; repeatable)"},
		&cli.StringSliceFlag{Name: "memcached-args", Usage: "extra memcached arguments (comma-separated; repeatable)"},
		&cli.StringFlag{Name: "src", Value: ".", Usage: "a directory inside gocached's source tree (for the build)"},
		&cli.IntFlag{Name: "memory", Aliases: []string{"m"}, Value: defMem, Usage: "server memory limit in MB (-m), the same for both"},
		&cli.IntFlag{Name: "server-cpu", Value: 0, Usage: "CPU both servers are pinned to (-1: none)"},
		&cli.StringFlag{Name: "server-cpus", Usage: "CPU list both servers are pinned to instead, e.g. 0-7 (taskset -c), each with -t as many threads; pin the generator elsewhere (--gen-cpu)"},
		&cli.IntFlag{Name: "gen-cpu", Value: 1, Usage: "CPU the load generator is pinned to (-1: none)"},
		&cli.IntFlag{Name: "reps", Aliases: []string{"r"}, Value: 5, Usage: "repetitions per server (medians are reported)"},
		&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Value: "bench/results", Usage: "directory for JSON and plots"},
		quietFlag,
	}
}

// servers resolves (and builds) the two servers. A server that cannot be
// had is returned in failed, so its runs are reported as failed.
func servers(c *cli.Context, env *bench.Env) (specs []bench.ServerSpec, failed map[string]string, cleanup func(), err error) {
	failed = map[string]string{}
	cleanup = func() {}
	cpu := c.Int("server-cpu")
	gbin := c.String("gocached")
	if gbin == "" {
		root, err := bench.ModuleRoot(c.String("src"))
		if err != nil {
			return nil, nil, cleanup, err
		}
		dir, err := os.MkdirTemp("", "gocached-bench-")
		if err != nil {
			return nil, nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		logf(c, "building gocached from %s", root)
		bctx, cancel := context.WithTimeout(c.Context, 5*time.Minute)
		gbin, err = bench.BuildGocached(bctx, root, dir)
		cancel()
		if err != nil {
			failed["gocached"] = err.Error()
			logf(c, "gocached: %v", err)
		}
	}
	mbin, lerr := exec.LookPath(c.String("memcached"))
	if lerr != nil {
		failed["memcached"] = lerr.Error()
		mbin = c.String("memcached")
	}
	specs = []bench.ServerSpec{
		{Name: "gocached", Bin: gbin, MemMB: c.Int("memory"), CPU: cpu, CPUs: c.String("server-cpus"), Extra: c.StringSlice("gocached-args")},
		{Name: "memcached", Bin: mbin, MemMB: c.Int("memory"), CPU: cpu, CPUs: c.String("server-cpus"), Extra: c.StringSlice("memcached-args")},
	}
	if list := c.String("server-cpus"); list != "" {
		if _, err := bench.CountCPUs(list); err != nil {
			return nil, nil, cleanup, err
		}
	}
	if ev := c.String("evictions"); ev != "" { // modes with an --evictions flag
		specs = perEviction(specs, failed, strings.Split(ev, ","))
	}
	for _, s := range specs {
		env.Bins[s.Name] = s.Bin
	}
	if g := c.Int("gen-cpu"); g >= 0 {
		if err := bench.PinSelf(g); err != nil {
			logf(c, "warning: %v (generator not pinned)", err)
		} else {
			where := fmt.Sprintf("CPU %d", cpu)
			if list := c.String("server-cpus"); list != "" {
				where = "CPUs " + list
			}
			env.Pinning = fmt.Sprintf("servers on %s (taskset), generator on CPU %d (GOMAXPROCS=1)", where, g)
		}
	}
	return specs, failed, cleanup, nil
}

func calcifyCmd() *cli.Command {
	return &cli.Command{
		Name:  "calcify",
		Usage: "fill with small values, switch to large ones; report how long each server's hit ratio takes to recover (slab rebalancing)",
		Flags: append(serverFlags(16),
			&cli.Uint64Flag{Name: "small-keys", Value: 150000, Usage: "keys of small values filling the server first"},
			&cli.IntFlag{Name: "small-size", Value: 100, Usage: "small value size in bytes"},
			&cli.Uint64Flag{Name: "large-keys", Value: 1200, Usage: "keys of large values after the switch (their data should fit -m)"},
			&cli.IntFlag{Name: "large-size", Value: 10000, Usage: "large value size in bytes"},
			&cli.DurationFlag{Name: "window", Value: time.Second, Usage: "hit ratio sampling window"},
			&cli.DurationFlag{Name: "max-time", Value: 60 * time.Second, Usage: "how long to wait for recovery"},
			&cli.Float64Flag{Name: "target", Value: 0.9, Usage: "hit ratio that counts as recovered"},
			&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 16, Usage: "connections"},
			&cli.IntFlag{Name: "pipeline", Aliases: []string{"P"}, Value: 10, Usage: "requests in flight per connection"},
			&cli.StringFlag{Name: "evictions", Usage: "comma-separated gocached eviction policies to run side by side, each as gocached-POLICY"},
		),
		Action: func(c *cli.Context) error {
			env := bench.CurrentEnv()
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			o := bench.CalcifyOptions{Servers: specs, SmallKeys: c.Uint64("small-keys"), SmallSize: c.Int("small-size"),
				LargeKeys: c.Uint64("large-keys"), LargeSize: c.Int("large-size"), Window: c.Duration("window"),
				MaxTime: c.Duration("max-time"), Target: c.Float64("target"), Conns: c.Int("conns"),
				Pipeline: c.Int("pipeline"), Reps: c.Int("reps"), Log: logw(c), Failed: failed}
			rep := bench.Calcify(c.Context, o)
			fillVersions(&env, rep.Runs)
			rep.Env = env
			rep.Options = map[string]any{"small_keys": o.SmallKeys, "small_size": o.SmallSize, "large_keys": o.LargeKeys,
				"large_size": o.LargeSize, "window": o.Window.String(), "max_time": o.MaxTime.String(), "target": o.Target,
				"memory_mb": c.Int("memory"), "reps": o.Reps}
			fmt.Printf("gocached-bench calcify  %s  %d x %d B, then %d x %d B, -m %d, recovered at hit ratio %.2f\n\n",
				env.Date.Format(time.RFC3339), o.SmallKeys, o.SmallSize, o.LargeKeys, o.LargeSize, c.Int("memory"), o.Target)
			bench.WriteCalcifyTable(os.Stdout, rep, specs, o.MaxTime)
			jp := stamp(c.String("out"), "calcify", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			return c.Context.Err()
		},
	}
}

// perEviction replaces the gocached spec by one per eviction policy, named
// gocached-POLICY, so that one run measures them all beside memcached.
func perEviction(specs []bench.ServerSpec, failed map[string]string, policies []string) []bench.ServerSpec {
	var out []bench.ServerSpec
	for _, s := range specs {
		if s.Name != "gocached" {
			out = append(out, s)
			continue
		}
		for _, p := range policies {
			g := s
			g.Name = "gocached-" + p
			g.Extra = append(append([]string(nil), s.Extra...), "-o", "eviction="+p)
			if reason, bad := failed[s.Name]; bad {
				failed[g.Name] = reason
			}
			out = append(out, g)
		}
	}
	return out
}

func logf(c *cli.Context, format string, args ...any) {
	if !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

func logw(c *cli.Context) io.Writer {
	if c.Bool("quiet") {
		return nil
	}
	return os.Stderr
}

func stamp(out, kind, ext string) string {
	return filepath.Join(out, kind+"-"+time.Now().Format("20060102-150405")+ext)
}

func compareCmd() *cli.Command {
	return &cli.Command{
		Name:  "compare",
		Usage: "run the scenario matrix on fresh gocached and memcached servers, alternately, and print ratios",
		Flags: append(append(loadFlags(), serverFlags(64)...),
			&cli.StringFlag{Name: "scenarios", Value: "short", Usage: "comma-separated scenario or set names (short, paper, all); see 'scenarios'"},
			&cli.StringFlag{Name: "plot", Value: "png", Usage: "plot format: png, svg or none"},
		),
		Action: func(c *cli.Context) error {
			scs, err := bench.SelectScenarios(c.String("scenarios"))
			if err != nil {
				return err
			}
			env := bench.CurrentEnv()
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			o := bench.CompareOptions{
				Scenarios: scs, Servers: specs, Reps: c.Int("reps"), Failed: failed, Log: logw(c),
				Base: bench.Config{Conns: c.Int("conns"), Keys: c.Uint64("keys"), Duration: c.Duration("duration"),
					Timeout: c.Duration("timeout"), Seed: c.Uint64("seed")},
			}
			if !c.Bool("quiet") {
				o.Progress = os.Stderr
			}
			rep := bench.Compare(c.Context, o)
			fillVersions(&env, rep.Runs)
			rep.Env = env
			rep.Options = map[string]any{"scenarios": c.String("scenarios"), "reps": o.Reps, "conns": o.Base.Conns,
				"keys": o.Base.Keys, "duration": o.Base.Duration.String(), "memory_mb": c.Int("memory"),
				"server_flags": "-p PORT -l 127.0.0.1 -m MB -t " + threadsOf(c) + " -U 0", "server_cpus": c.String("server-cpus")}
			fmt.Printf("gocached-bench compare  %s  %s (%d CPUs)  %s\n", env.Date.Format(time.RFC3339), env.CPUModel, env.NumCPU, env.Pinning)
			for _, n := range []string{"gocached", "memcached"} {
				fmt.Printf("  %-9s %s %s\n", n, env.Bins[n], env.Versions[n])
			}
			fmt.Printf("  %d conns, %d keys, %s per run, %d reps, -m %d -t %s\n\n", o.Base.Conns, o.Base.Keys, o.Base.Duration, o.Reps, c.Int("memory"), threadsOf(c))
			bench.WriteCompareTable(os.Stdout, rep)
			out := c.String("out")
			jp := stamp(out, "compare", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			if f := c.String("plot"); f != "none" {
				pp := strings.TrimSuffix(jp, ".json") + "." + f
				if err := bench.PlotCompare(pp, rep); err != nil {
					fmt.Fprintln(os.Stderr, "plot:", err)
				} else {
					fmt.Println("wrote", pp)
				}
			}
			return c.Context.Err()
		},
	}
}

// fillVersions records in env the version each server's runs reported.
func fillVersions[R interface{ ServerVersion() (string, string) }](env *bench.Env, runs []R) {
	for _, r := range runs {
		if server, version := r.ServerVersion(); version != "" {
			env.Versions[server] = version
		}
	}
}

func memoryCmd() *cli.Command {
	return &cli.Command{
		Name:  "memory",
		Usage: "store N items of S bytes in each fresh server; report RSS and bytes per item",
		Flags: append(serverFlags(0),
			&cli.IntFlag{Name: "items", Aliases: []string{"n"}, Value: 1000000, Usage: "items to store"},
			&cli.IntFlag{Name: "size", Value: 100, Usage: "value size in bytes"},
			&cli.IntFlag{Name: "size-max", Usage: "with it, value sizes are uniform between --size and this"},
			&cli.IntFlag{Name: "key-len", Usage: "with it, keys of this many bytes and flags 0 (e.g. 20), instead of the generator's 14-byte keys with flags"},
			&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 16, Usage: "connections"},
		),
		Action: func(c *cli.Context) error {
			env := bench.CurrentEnv()
			n, size, sizeMax := c.Int("items"), c.Int("size"), max(c.Int("size"), c.Int("size-max"))
			if c.Int("memory") == 0 { // room for everything: no eviction
				need := float64(n) * float64(sizeMax+120) * 1.5 / (1 << 20)
				c.Set("memory", strconv.Itoa(max(64, int(need)+16)))
			}
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			rep := bench.Memory(c.Context, bench.MemoryOptions{Servers: specs, Items: n, Size: size, SizeMax: sizeMax,
				KeyLen: c.Int("key-len"), Reps: c.Int("reps"), Conns: c.Int("conns"), Log: logw(c), Failed: failed})
			fillVersions(&env, rep.Runs)
			rep.Env = env
			rep.Options = map[string]any{"items": n, "size": size, "size_max": sizeMax, "key_len": c.Int("key-len"), "memory_mb": c.Int("memory"), "reps": c.Int("reps")}
			sz := strconv.Itoa(size)
			if sizeMax > size {
				sz += "-" + strconv.Itoa(sizeMax)
			}
			fmt.Printf("gocached-bench memory  %s  %d items of %s B, -m %d\n\n", env.Date.Format(time.RFC3339), n, sz, c.Int("memory"))
			bench.WriteMemoryTable(os.Stdout, rep)
			jp := stamp(c.String("out"), "memory", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			return c.Context.Err()
		},
	}
}

func hitRatioCmd() *cli.Command {
	return &cli.Command{
		Name:  "hitratio",
		Usage: "cache-aside (get; on miss set) over a key stream larger than -m; report both miss ratios",
		Flags: append(serverFlags(16),
			&cli.Uint64Flag{Name: "keys", Aliases: []string{"k"}, Value: 200000, Usage: "key space (keys x size should exceed -m)"},
			&cli.StringFlag{Name: "size", Value: "256", Usage: "value size in bytes: N or MIN..MAX"},
			&cli.StringFlag{Name: "dist", Value: "zipf:0.99", Usage: "zipf[:s], scan[:s[:fraction]] (scan-polluted) or shift[:s[:period]] (shifting working set)"},
			&cli.BoolFlag{Name: "suite", Usage: "run the default-policy suite instead of one workload: Zipf 0.99, Zipf 0.8, 30% scans, values of 100 B-10 KB, a shifting working set (--keys, --size and --dist are ignored)"},
			&cli.Float64Flag{Name: "keys-per-mem", Value: bench.DefaultKeysPerMem, Usage: "with --suite: key space data as a multiple of -m"},
			&cli.Int64Flag{Name: "ops", Value: 1000000, Usage: "measured requests (gets and the sets after misses)"},
			&cli.Int64Flag{Name: "warmup", Value: 500000, Usage: "requests before measuring"},
			&cli.IntFlag{Name: "conns", Aliases: []string{"c"}, Value: 16, Usage: "connections"},
			&cli.IntFlag{Name: "pipeline", Aliases: []string{"P"}, Value: 10, Usage: "requests in flight per connection"},
			&cli.StringFlag{Name: "evictions", Usage: "comma-separated gocached eviction policies (lru, s3fifo, clock) to run side by side, each as gocached-POLICY"},
		),
		Action: func(c *cli.Context) error {
			d, err := bench.ParseDist(c.String("dist"))
			if err != nil {
				return err
			}
			size, sizeMax, err := parseRange(c.String("size"))
			if err != nil {
				return err
			}
			env := bench.CurrentEnv()
			specs, failed, cleanup, err := servers(c, &env)
			defer cleanup()
			if err != nil {
				return err
			}
			o := bench.HitRatioOptions{Servers: specs, Keys: c.Uint64("keys"), Size: size, SizeMax: sizeMax, Dist: d,
				Ops: c.Int64("ops"), Warmup: c.Int64("warmup"), Conns: c.Int("conns"), Pipeline: c.Int("pipeline"),
				Reps: c.Int("reps"), Log: logw(c), Failed: failed}
			if c.Bool("suite") {
				return hitRatioSuite(c, o, env, specs)
			}
			rep := bench.HitRatio(c.Context, o)
			fillVersions(&env, rep.Runs)
			rep.Env = env
			rep.Options = map[string]any{"keys": o.Keys, "size": o.Size, "size_max": sizeMax, "dist": d.String(), "ops": o.Ops,
				"warmup": o.Warmup, "memory_mb": c.Int("memory"), "reps": o.Reps}
			fmt.Printf("gocached-bench hitratio  %s  %d keys of %s B (%.0f MiB) on %s, -m %d\n\n", env.Date.Format(time.RFC3339),
				o.Keys, c.String("size"), float64(o.Keys)*float64(o.Size+max(o.Size, o.SizeMax))/2/(1<<20), d, c.Int("memory"))
			bench.WriteHitRatioTable(os.Stdout, rep, specs)
			jp := stamp(c.String("out"), "hitratio", ".json")
			if err := bench.WriteJSON(jp, rep); err != nil {
				return err
			}
			fmt.Println("\nwrote", jp)
			return c.Context.Err()
		},
	}
}

// threadsOf is the -t the servers run with: one, or one per --server-cpus CPU.
func threadsOf(c *cli.Context) string {
	if n, err := bench.CountCPUs(c.String("server-cpus")); err == nil && c.String("server-cpus") != "" {
		return strconv.Itoa(n)
	}
	return "1"
}

// hitRatioSuite runs the default-policy workloads (bench.DefaultWorkloads)
// on every server and prints one table with the geometric mean of each
// server's miss ratio over memcached's.
func hitRatioSuite(c *cli.Context, o bench.HitRatioOptions, env bench.Env, specs []bench.ServerSpec) error {
	ws := bench.DefaultWorkloads(c.Int("memory"), c.Float64("keys-per-mem"))
	rep := bench.HitRatioSuite(c.Context, o, ws)
	for _, r := range rep.Reports {
		fillVersions(&env, r.Runs)
	}
	rep.Env = env
	rep.Options = map[string]any{"ops": o.Ops, "warmup": o.Warmup, "memory_mb": c.Int("memory"), "reps": o.Reps,
		"keys_per_mem": c.Float64("keys-per-mem"), "conns": o.Conns, "pipeline": o.Pipeline}
	fmt.Printf("gocached-bench hitratio --suite  %s  -m %d, key data %.1fx -m, %d+%d requests per run, %d reps\n",
		env.Date.Format(time.RFC3339), c.Int("memory"), c.Float64("keys-per-mem"), o.Warmup, o.Ops, o.Reps)
	fmt.Println("median miss ratio (its ratio to memcached's)")
	fmt.Println()
	bench.WriteSuiteTable(os.Stdout, rep, specs)
	jp := stamp(c.String("out"), "hitratio-suite", ".json")
	if err := bench.WriteJSON(jp, rep); err != nil {
		return err
	}
	fmt.Println("\nwrote", jp)
	return c.Context.Err()
}
