package main

import (
	"bufio"
	"context"
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/cluster"
	"github.com/gocached/gocached/server"
)

// Subcommands. memcached takes no subcommands and ignores non-option
// arguments, so a first argument naming one of these selects it and
// anything else is the daemon's command line, as before:
//
//	gocached cluster up N [--base-port P] [daemon flags...]
//	gocached healthcheck [--addr 127.0.0.1:11211] [--timeout 2s]
//	gocached stats --servers a,dns+b:11211,... [--format table|memcstat] [group]
var subcommands = map[string]func(args []string, stdout, stderr io.Writer) int{
	"cluster":     runCluster,
	"healthcheck": runHealthcheck,
	"stats":       runStats,
}

// runSubcommand runs the subcommand args[1] names, if it names one.
func runSubcommand(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	if len(args) < 2 {
		return 0, false
	}
	f, ok := subcommands[args[1]]
	if !ok {
		return 0, false
	}
	return f(args[2:], stdout, stderr), true
}

// newFlagSet is a stdlib flag set writing its usage to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *goflag.FlagSet {
	fs := goflag.NewFlagSet(name, goflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come before or after the
// positional arguments, which the flag package alone stops at.
func parseInterspersed(fs *goflag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// flagStatus is the exit status of a flag parse error: 0 for -h.
func flagStatus(err error) int {
	if errors.Is(err, goflag.ErrHelp) {
		return 0
	}
	return exUsage
}

// dialNode connects to a memcached address: "host:port", or a unix socket
// path (anything with a slash).
func dialNode(addr string, timeout time.Duration) (net.Conn, error) {
	network := "tcp"
	if strings.Contains(addr, "/") {
		network = "unix"
	}
	return net.DialTimeout(network, addr, timeout)
}

// ---- healthcheck ----

const healthcheckUsage = "gocached healthcheck [--addr 127.0.0.1:11211] [--timeout 2s]"

// runHealthcheck sends "version" and exits 0 on a "VERSION ..." reply and 1
// otherwise: a HEALTHCHECK for a FROM-scratch image, which has no shell.
func runHealthcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gocached healthcheck", healthcheckUsage, stderr)
	addr := fs.String("addr", "127.0.0.1:11211", "server address, host:port or unix socket path")
	timeout := fs.Duration("timeout", 2*time.Second, "time allowed for connecting and the reply")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	switch len(pos) {
	case 0:
	case 1:
		*addr = pos[0]
	default:
		fs.Usage()
		return exUsage
	}
	line, err := healthcheck(*addr, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "gocached healthcheck %s: %v\n", *addr, err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}

// healthcheck returns the server's "VERSION x" line.
func healthcheck(addr string, timeout time.Duration) (string, error) {
	c, err := dialNode(addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, "version\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "VERSION ") {
		return "", fmt.Errorf("unexpected reply %q", line)
	}
	return line, nil
}

// ---- stats ----

const statsUsage = "gocached stats --servers NAME[,NAME...] [--format table|memcstat] [--timeout 2s] [group]\n" +
	"  NAME: host:port, a socket path, dns+host:port (A/AAAA), dnssrv+_service._proto.domain (SRV)\n" +
	"  or ecdisc+host:port (ElastiCache `config get cluster`), as the cluster package's Dial takes them"

// runStats prints the stats of every node of a cluster, as memcstat does,
// with a total for the counters that add up across nodes.
func runStats(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gocached stats", statsUsage, stderr)
	servers := fs.String("servers", os.Getenv("MEMCACHED_SERVERS"), "comma-separated node names (default $MEMCACHED_SERVERS)")
	format := fs.String("format", "table", `"table": a column per node and a total column; "memcstat": memcstat's blocks, then a Total block`)
	timeout := fs.Duration("timeout", 2*time.Second, "per-node timeout")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	group := strings.Join(pos, " ")
	var names []string
	for _, s := range strings.Split(*servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			names = append(names, s)
		}
	}
	if len(names) == 0 || (*format != "table" && *format != "memcstat") {
		fs.Usage()
		return exUsage
	}
	// Each name is resolved on its own so the nodes keep the order the
	// names were given in; a name that does not resolve is reported and
	// the others are still shown.
	code := 0
	var addrs []string
	for _, name := range names {
		found, err := cluster.Resolve(context.Background(), []string{name}, cluster.Options{ResolveTimeout: *timeout})
		if err != nil {
			fmt.Fprintf(stderr, "gocached stats: %v\n", err)
			code = 1
			continue
		}
		addrs = append(addrs, found...)
	}
	if len(addrs) == 0 {
		return 1
	}

	results := make([]nodeStats, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := fetchStats(a, group, *timeout)
			results[i] = nodeStats{addr: a, stats: st, err: err}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(stderr, "gocached stats: %s: %v\n", r.addr, r.err)
			code = 1
		}
	}
	t := aggregateStats(group, results)
	if *format == "memcstat" {
		t.writeMemcstat(stdout)
	} else {
		t.writeTable(stdout)
	}
	return code
}

// nodeStats is one node's "stats [group]" reply, in its order.
type nodeStats struct {
	addr  string
	stats []statPair
	err   error
}

type statPair struct{ name, value string }

// fetchStats sends "stats group" and reads the STAT lines up to END.
func fetchStats(addr, group string, timeout time.Duration) ([]statPair, error) {
	c, err := dialNode(addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	cmd := "stats"
	if group != "" {
		cmd += " " + group
	}
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		return nil, err
	}
	var out []statPair
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "END":
			return out, nil
		case strings.HasPrefix(line, "STAT "):
			name, value, _ := strings.Cut(line[len("STAT "):], " ")
			out = append(out, statPair{name, value})
		default: // ERROR, CLIENT_ERROR ..., SERVER_ERROR ...
			return nil, fmt.Errorf("stats %s: %s", group, line)
		}
	}
}

// statsTable is the stats of every node, aligned by name.
type statsTable struct {
	nodes  []string
	names  []string            // in the first answering node's order, then any others
	values []map[string]string // per node; nil for a node that failed
	totals map[string]string   // for the names that add up
}

// nonAdditive are general stats that are not summed across nodes: identities,
// clocks and settings, whose sum means nothing.
var nonAdditive = map[string]bool{
	"pid": true, "uptime": true, "time": true, "version": true, "libevent": true,
	"pointer_size": true, "threads": true, "hash_power_level": true,
	"hash_is_expanding": true, "accepting_conns": true, "reserved_fds": true,
	"slab_reassign_running": true, "lru_crawler_running": true,
}

// additive reports whether a stat of group sums meaningfully across nodes.
func additive(group, name string) bool {
	switch group {
	case "":
		return !nonAdditive[name]
	case "items", "slabs":
		// "items:1:number", "1:used_chunks", "active_slabs", ...
		last := name[strings.LastIndexByte(name, ':')+1:]
		switch last {
		case "age", "age_hot", "age_warm", "evicted_time", "chunk_size", "chunks_per_page":
			return false
		}
		return true
	}
	return false // settings, conns, sizes: per-node facts
}

func aggregateStats(group string, nodes []nodeStats) *statsTable {
	t := &statsTable{totals: map[string]string{}}
	seen := map[string]bool{}
	for _, n := range nodes {
		t.nodes = append(t.nodes, n.addr)
		if n.err != nil {
			t.values = append(t.values, nil)
			continue
		}
		m := make(map[string]string, len(n.stats))
		for _, p := range n.stats {
			m[p.name] = p.value
			if !seen[p.name] {
				seen[p.name] = true
				t.names = append(t.names, p.name)
			}
		}
		t.values = append(t.values, m)
	}
	for _, name := range t.names {
		if !additive(group, name) {
			continue
		}
		if s, ok := sumValues(t.values, name); ok {
			t.totals[name] = s
		}
	}
	return t
}

// sumValues adds name over the nodes that answered: integers exactly,
// decimals (rusage) to microseconds. Not a number anywhere: no total.
func sumValues(values []map[string]string, name string) (string, bool) {
	var (
		isum  uint64
		fsum  float64
		float bool
		any   bool
	)
	for _, m := range values {
		v, ok := m[name]
		if m == nil || !ok {
			continue
		}
		any = true
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			isum += n
			fsum += float64(n)
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return "", false
		}
		float = true
		fsum += f
	}
	switch {
	case !any:
		return "", false
	case float:
		return strconv.FormatFloat(fsum, 'f', 6, 64), true
	}
	return strconv.FormatUint(isum, 10), true
}

func (t *statsTable) writeTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "STAT")
	for _, n := range t.nodes {
		fmt.Fprintf(tw, "\t%s", n)
	}
	fmt.Fprint(tw, "\ttotal\n")
	for _, name := range t.names {
		fmt.Fprint(tw, name)
		for _, m := range t.values {
			v, ok := m[name]
			if !ok {
				v = "-"
			}
			fmt.Fprintf(tw, "\t%s", v)
		}
		total, ok := t.totals[name]
		if !ok {
			total = "-"
		}
		fmt.Fprintf(tw, "\t%s\n", total)
	}
	tw.Flush()
}

// writeMemcstat prints memcstat's layout: "Server: host (port)" and one
// "\t name: value" line per stat, for each node, then the totals the same
// way under "Total:".
func (t *statsTable) writeMemcstat(w io.Writer) {
	for i, n := range t.nodes {
		host, port, err := net.SplitHostPort(n)
		if err != nil {
			host, port = n, "0"
		}
		fmt.Fprintf(w, "Server: %s (%s)\n", host, port)
		if t.values[i] == nil {
			fmt.Fprintln(w, "\t (unreachable)")
			continue
		}
		for _, name := range t.names {
			if v, ok := t.values[i][name]; ok {
				fmt.Fprintf(w, "\t %s: %s\n", name, v)
			}
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Total: %d servers\n", len(t.nodes))
	for _, name := range t.names {
		if v, ok := t.totals[name]; ok {
			fmt.Fprintf(w, "\t %s: %s\n", name, v)
		}
	}
}

// ---- cluster ----

const clusterUsage = `gocached cluster up N [--base-port P] [--host 127.0.0.1] [daemon flags...]

Starts N gocached nodes in this process on host:P, host:P+1, ... (default
127.0.0.1:11211 up), each with the daemon flags given (e.g. -m 64 -c 1024),
prints the server list ("127.0.0.1:11211,127.0.0.1:11212,...") on stdout
and runs until SIGINT or SIGTERM. --base-port 0 lets each node pick a free
port (then not consecutive). With -o metrics_listen=host:M, node i serves
/metrics on port M+i. -d, -P, -u, -s and -U are not used by cluster up.`

// runCluster is "gocached cluster up N ...".
func runCluster(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "up" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(stdout, "usage: "+clusterUsage)
			return 0
		}
		fmt.Fprintln(stderr, "usage: "+clusterUsage)
		return exUsage
	}
	args = args[1:]
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: "+clusterUsage)
		return exUsage
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 1024 {
		fmt.Fprintf(stderr, "gocached cluster up: node count %q: want a number from 1 to 1024\n", args[0])
		return exUsage
	}
	base, host := 11211, "127.0.0.1"
	var daemonArgs []string
	for rest := args[1:]; len(rest) > 0; rest = rest[1:] {
		a := rest[0]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "--") || (name != "base-port" && name != "host") {
			daemonArgs = append(daemonArgs, a)
			continue
		}
		if !hasVal {
			if len(rest) < 2 {
				fmt.Fprintf(stderr, "gocached cluster up: %s needs a value\n", a)
				return exUsage
			}
			rest = rest[1:]
			val = rest[0]
		}
		if name == "host" {
			host = val
			continue
		}
		base, err = strconv.Atoi(val)
		if err != nil || base < 0 || base+n-1 > 65535 {
			fmt.Fprintf(stderr, "gocached cluster up: --base-port %q: want 0, or a port with room for %d nodes\n", val, n)
			return exUsage
		}
	}
	opts, act, err := parseArgs(append([]string{"gocached"}, daemonArgs...))
	if err != nil {
		return reportArgError(stderr, err)
	}
	if act != actRun {
		fmt.Fprintln(stdout, "usage: "+clusterUsage)
		return 0
	}
	if opts.cfg.Store.MemoryFile != "" {
		// One file would serve every node: each needs its own.
		fmt.Fprintln(stderr, "gocached cluster up: -e (memory file) is per node; run the nodes separately to use it")
		return exUsage
	}
	for _, s := range opts.notices {
		fmt.Fprintln(stderr, s)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return clusterUp(ctx, n, base, host, opts, stdout, stderr)
}

// clusterUp runs n nodes until ctx ends, then shuts them down.
func clusterUp(ctx context.Context, n, base int, host string, opts *options, stdout, stderr io.Writer) int {
	logger := newLogger(stderr, opts.cfg.Verbosity)
	defer logger.Sync() //nolint:errcheck // stderr
	for _, s := range opts.notImplemented {
		logger.Warn("option accepted, not implemented", zap.String("option", s))
	}
	metricsHost, metricsPort := "", 0
	if ml := opts.cfg.Extended["metrics_listen"]; ml != "" {
		h, p, _ := net.SplitHostPort(ml) // checked when parsed
		metricsHost = h
		metricsPort, _ = strconv.Atoi(p)
	}

	type node struct {
		srv         *server.Server
		served      chan error
		stopMetrics func()
	}
	var nodes []*node
	shutdown := func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		for _, nd := range nodes {
			if nd.stopMetrics != nil {
				nd.stopMetrics()
			}
			if err := nd.srv.Shutdown(sctx); err != nil {
				logger.Warn("shutdown", zap.Error(err))
			}
		}
		for _, nd := range nodes {
			if nd.served == nil {
				continue
			}
			select {
			case <-nd.served:
			case <-sctx.Done():
			}
		}
	}
	var list []string
	for i := range n {
		cfg := opts.cfg
		cfg.Extended = maps.Clone(opts.cfg.Extended)
		cfg.Port = 0
		if base > 0 {
			cfg.Port = base + i
		}
		cfg.Listen = []string{net.JoinHostPort(host, strconv.Itoa(cfg.Port))}
		cfg.UDPPort = 0
		cfg.UnixSocket = ""
		cfg.Logger = logger.With(zap.Int("node", i))
		srv, err := server.New(cfg)
		if err != nil {
			shutdown()
			fmt.Fprintf(stderr, "gocached cluster up: node %d: %v\n", i, err)
			return exUsage
		}
		if err := srv.Listen(); err != nil {
			shutdown()
			fmt.Fprintf(stderr, "gocached cluster up: node %d: failed to listen: %v\n", i, err)
			return exOSErr
		}
		nd := &node{srv: srv}
		nodes = append(nodes, nd)
		if metricsHost != "" || metricsPort != 0 {
			mp := metricsPort
			if mp != 0 {
				mp += i
			}
			addr := net.JoinHostPort(metricsHost, strconv.Itoa(mp))
			stopM, err := startMetrics(addr, srv, cfg.Logger)
			if err != nil {
				shutdown()
				fmt.Fprintf(stderr, "gocached cluster up: node %d: failed to listen for metrics on %s: %v\n", i, addr, err)
				return exOSErr
			}
			nd.stopMetrics = stopM
		}
		for _, a := range srv.Addrs() {
			list = append(list, a.String())
		}
	}
	anyDone := make(chan struct{}, n)
	for _, nd := range nodes {
		nd.served = make(chan error, 1)
		go func() {
			err := nd.srv.Serve()
			if err != nil && !errors.Is(err, server.ErrServerClosed) {
				logger.Error("serve", zap.Error(err))
			}
			nd.served <- err
			anyDone <- struct{}{}
		}()
	}
	fmt.Fprintln(stdout, strings.Join(list, ","))
	logger.Info("cluster up", zap.Int("nodes", n), zap.Strings("servers", list))

	// Run until a signal, or until every node has stopped by itself (the
	// "shutdown" command with -A).
	for stopped := 0; stopped < n; {
		select {
		case <-ctx.Done():
			shutdown()
			return 0
		case <-anyDone:
			stopped++
		}
	}
	return 0
}
