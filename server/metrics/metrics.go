// Package metrics exposes a gocached server's "stats" counters to
// Prometheus under the names prometheus/memcached_exporter gives them
// (memcached_commands_total{command,status}, memcached_current_items, ...),
// so dashboards and alerts written for memcached + memcached_exporter work
// against gocached's own /metrics unchanged.
//
// Every scrape reads the server's stats (nothing is kept between scrapes)
// from a Source, which *server.Server implements with StatsMap, and writes
// Prometheus's text format itself: the client library and the protobuf
// runtime it brings cost the daemon 3.7 MB of binary and 2.2 MB of RSS
// (measured at start-up) for one page of text.
package metrics

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Source is what the collector reads: the general "stats" reply as a map
// from stat name to value.
type Source interface {
	StatsMap() map[string]string
}

// Metric types, as the text format's TYPE lines name them.
const (
	counter = "counter"
	gauge   = "gauge"
)

// scalar maps one stat to one unlabelled metric.
type scalar struct {
	stat, name, help, typ string
}

// scalars are the exporter's single-valued metrics that gocached's stats
// carry, in the exporter's names, help texts and types.
var scalars = []scalar{
	{"uptime", "memcached_uptime_seconds", "Number of seconds since the server started.", counter},
	{"time", "memcached_time_seconds", "current UNIX time according to the server.", gauge},
	{"rusage_user", "memcached_process_user_cpu_seconds_total", "Accumulated user time for this process.", counter},
	{"rusage_system", "memcached_process_system_cpu_seconds_total", "Accumulated system time for this process.", counter},
	{"bytes_read", "memcached_read_bytes_total", "Total number of bytes read by this server from network.", counter},
	{"bytes_written", "memcached_written_bytes_total", "Total number of bytes sent by this server to network.", counter},
	{"curr_connections", "memcached_current_connections", "Current number of open connections.", gauge},
	{"max_connections", "memcached_max_connections", "Maximum number of clients allowed.", gauge},
	{"total_connections", "memcached_connections_total", "Total number of connections opened since the server started running.", counter},
	{"rejected_connections", "memcached_connections_rejected_total", "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.", counter},
	{"conn_yields", "memcached_connections_yielded_total", "Total number of connections yielded running due to hitting the memcached's -R limit.", counter},
	{"listen_disabled_num", "memcached_connections_listener_disabled_total", "Number of times that memcached has hit its connections limit and disabled its listener.", counter},
	{"accepting_conns", "memcached_accepting_connections", "The Memcached server is currently accepting new connections.", gauge},
	{"bytes", "memcached_current_bytes", "Current number of bytes used to store items.", gauge},
	{"limit_maxbytes", "memcached_limit_bytes", "Number of bytes this server is allowed to use for storage.", gauge},
	{"curr_items", "memcached_current_items", "Current number of items stored by this instance.", gauge},
	{"total_items", "memcached_items_total", "Total number of items stored during the life of this instance.", counter},
	{"evictions", "memcached_items_evicted_total", "Total number of valid items removed from cache to free memory for new items.", counter},
	{"reclaimed", "memcached_items_reclaimed_total", "Total number of times an entry was stored using memory from an expired entry.", counter},
	{"store_too_large", "memcached_item_too_large_total", "The number of times an item exceeded the max-item-size when being stored.", counter},
	{"store_no_memory", "memcached_item_no_memory_total", "The number of times an item could not be stored due to no more memory.", counter},
	{"direct_reclaims", "memcached_direct_reclaims_total", "Times worker threads had to directly reclaim or evict items.", counter},
	{"lru_crawler_starts", "memcached_lru_crawler_starts_total", "Times an LRU crawler was started.", counter},
	{"crawler_reclaimed", "memcached_lru_crawler_reclaimed_total", "Total items freed by LRU Crawler.", counter},
	{"crawler_items_checked", "memcached_lru_crawler_items_checked_total", "Total items examined by LRU Crawler.", counter},
	{"moves_to_cold", "memcached_lru_crawler_moves_to_cold_total", "Total number of items moved from HOT/WARM to COLD LRU's.", counter},
	{"moves_to_warm", "memcached_lru_crawler_moves_to_warm_total", "Total number of items moved from COLD to WARM LRU.", counter},
	{"moves_within_lru", "memcached_lru_crawler_moves_within_lru_total", "Total number of items reshuffled within HOT or WARM LRU's.", counter},
	{"total_malloced", "memcached_malloced_bytes", "Number of bytes of memory allocated to slab pages.", gauge},
}

// hitMissCommands have "<cmd>_hits" and "<cmd>_misses" stats.
var hitMissCommands = []string{"get", "delete", "incr", "decr", "cas", "touch"}

// writer writes metric families in Prometheus's text exposition format
// (version 0.0.4), each family's HELP and TYPE once, before its samples.
type writer struct {
	w    *bufio.Writer
	last string // the family whose header was written last
}

// sample writes one sample of family name; labels are name/value pairs.
func (w *writer) sample(name, help, typ string, v float64, labels ...string) {
	if name != w.last {
		w.last = name
		w.w.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n# TYPE " + name + " " + typ + "\n")
	}
	w.w.WriteString(name)
	for i := 0; i+1 < len(labels); i += 2 {
		sep := ","
		if i == 0 {
			sep = "{"
		}
		w.w.WriteString(sep + labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
	}
	if len(labels) > 0 {
		w.w.WriteString("}")
	}
	w.w.WriteString(" " + formatValue(v) + "\n")
}

// formatValue formats v as the Prometheus client libraries do.
func formatValue(v float64) string {
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// writeStats writes the memcached families for one reading of the stats.
// Stats that are absent or not numbers are skipped, as the exporter
// reports only what memcached sends.
func writeStats(w *writer, st map[string]string) {
	w.sample("memcached_up", "Could the memcached server be reached.", gauge, 1)
	if v, ok := st["version"]; ok {
		w.sample("memcached_version", "The version of this memcached server.", gauge, 1, "version", v)
	}
	num := func(name string) (float64, bool) {
		v, ok := st[name]
		if !ok {
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	for _, s := range scalars {
		if v, ok := num(s.stat); ok {
			w.sample(s.name, s.help, s.typ, v)
		}
	}
	const commandsHelp = "Total number of all requests broken down by command (get, set, etc.) and status."
	cmd := func(v float64, command, status string) {
		w.sample("memcached_commands_total", commandsHelp, counter, v, "command", command, "status", status)
	}
	stat := func(stat, command, status string) {
		if v, ok := num(stat); ok {
			cmd(v, command, status)
		}
	}
	for _, op := range hitMissCommands {
		stat(op+"_hits", op, "hit")
		stat(op+"_misses", op, "miss")
	}
	stat("cas_badval", "cas", "badval")
	stat("cmd_flush", "flush", "hit")
	// As the exporter does: memcached counts cas commands in cmd_set too,
	// so set{status="hit"} is cmd_set less every cas outcome.
	if set, ok := num("cmd_set"); ok {
		for _, k := range []string{"cas_hits", "cas_misses", "cas_badval"} {
			if v, ok := num(k); ok {
				set -= v
			}
		}
		cmd(max(set, 0), "set", "hit")
	}
}

// Handler returns an http.Handler serving /metrics for src, with the Go
// runtime's and the process's metrics (runtime.go) alongside the memcached
// ones, as memcached_exporter serves its own.
func Handler(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w := &writer{w: bufio.NewWriter(rw)}
		writeStats(w, src.StatsMap())
		writeRuntime(w)
		_ = w.w.Flush()
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<html><head><title>gocached</title></head><body><a href=\"/metrics\">Metrics</a></body></html>\n"))
	})
	return mux
}

// Server is a running metrics listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
	err chan error
}

// Listen opens addr ("host:port"; ":9150" for every interface) and serves
// /metrics for src on it until Close.
func Listen(addr string, src Source) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln:  ln,
		srv: &http.Server{Handler: Handler(src), ReadHeaderTimeout: 10 * time.Second},
		err: make(chan error, 1),
	}
	go func() { s.err <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address listened on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the listener, waiting up to ctx for scrapes in flight.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if serr := <-s.err; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}
