// Package metrics exposes a gocached server's "stats" counters to
// Prometheus under the names prometheus/memcached_exporter gives them
// (memcached_commands_total{command,status}, memcached_current_items, ...),
// so dashboards and alerts written for memcached + memcached_exporter work
// against gocached's own /metrics unchanged.
//
// The collector reads the server's stats on every scrape (nothing is kept
// between scrapes) from a Source, which *server.Server implements with
// StatsMap.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the collector reads: the general "stats" reply as a map
// from stat name to value.
type Source interface {
	StatsMap() map[string]string
}

const namespace = "memcached"

// scalar maps one stat to one unlabelled metric.
type scalar struct {
	stat string
	desc *prometheus.Desc
	typ  prometheus.ValueType
}

func newScalar(stat, name, help string, typ prometheus.ValueType) scalar {
	return scalar{stat: stat, typ: typ,
		desc: prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, nil, nil)}
}

// scalars are the exporter's single-valued metrics that gocached's stats
// carry, in the exporter's names and types.
var scalars = []scalar{
	newScalar("uptime", "uptime_seconds", "Number of seconds since the server started.", prometheus.CounterValue),
	newScalar("time", "time_seconds", "current UNIX time according to the server.", prometheus.GaugeValue),
	newScalar("rusage_user", "process_user_cpu_seconds_total", "Accumulated user time for this process.", prometheus.CounterValue),
	newScalar("rusage_system", "process_system_cpu_seconds_total", "Accumulated system time for this process.", prometheus.CounterValue),
	newScalar("bytes_read", "read_bytes_total", "Total number of bytes read by this server from network.", prometheus.CounterValue),
	newScalar("bytes_written", "written_bytes_total", "Total number of bytes sent by this server to network.", prometheus.CounterValue),
	newScalar("curr_connections", "current_connections", "Current number of open connections.", prometheus.GaugeValue),
	newScalar("max_connections", "max_connections", "Maximum number of clients allowed.", prometheus.GaugeValue),
	newScalar("total_connections", "connections_total", "Total number of connections opened since the server started running.", prometheus.CounterValue),
	newScalar("rejected_connections", "connections_rejected_total", "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.", prometheus.CounterValue),
	newScalar("conn_yields", "connections_yielded_total", "Total number of connections yielded running due to hitting the memcached's -R limit.", prometheus.CounterValue),
	newScalar("listen_disabled_num", "connections_listener_disabled_total", "Number of times that memcached has hit its connections limit and disabled its listener.", prometheus.CounterValue),
	newScalar("accepting_conns", "accepting_connections", "The Memcached server is currently accepting new connections.", prometheus.GaugeValue),
	newScalar("bytes", "current_bytes", "Current number of bytes used to store items.", prometheus.GaugeValue),
	newScalar("limit_maxbytes", "limit_bytes", "Number of bytes this server is allowed to use for storage.", prometheus.GaugeValue),
	newScalar("curr_items", "current_items", "Current number of items stored by this instance.", prometheus.GaugeValue),
	newScalar("total_items", "items_total", "Total number of items stored during the life of this instance.", prometheus.CounterValue),
	newScalar("evictions", "items_evicted_total", "Total number of valid items removed from cache to free memory for new items.", prometheus.CounterValue),
	newScalar("reclaimed", "items_reclaimed_total", "Total number of times an entry was stored using memory from an expired entry.", prometheus.CounterValue),
	newScalar("store_too_large", "item_too_large_total", "The number of times an item exceeded the max-item-size when being stored.", prometheus.CounterValue),
	newScalar("store_no_memory", "item_no_memory_total", "The number of times an item could not be stored due to no more memory.", prometheus.CounterValue),
	newScalar("direct_reclaims", "direct_reclaims_total", "Times worker threads had to directly reclaim or evict items.", prometheus.CounterValue),
	newScalar("lru_crawler_starts", "lru_crawler_starts_total", "Times an LRU crawler was started.", prometheus.CounterValue),
	newScalar("crawler_reclaimed", "lru_crawler_reclaimed_total", "Total items freed by LRU Crawler.", prometheus.CounterValue),
	newScalar("crawler_items_checked", "lru_crawler_items_checked_total", "Total items examined by LRU Crawler.", prometheus.CounterValue),
	newScalar("moves_to_cold", "lru_crawler_moves_to_cold_total", "Total number of items moved from HOT/WARM to COLD LRU's.", prometheus.CounterValue),
	newScalar("moves_to_warm", "lru_crawler_moves_to_warm_total", "Total number of items moved from COLD to WARM LRU.", prometheus.CounterValue),
	newScalar("moves_within_lru", "lru_crawler_moves_within_lru_total", "Total number of items reshuffled within HOT or WARM LRU's.", prometheus.CounterValue),
	newScalar("total_malloced", "malloced_bytes", "Number of bytes of memory allocated to slab pages.", prometheus.GaugeValue),
}

var (
	upDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "up"),
		"Could the memcached server be reached.", nil, nil)
	versionDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "version"),
		"The version of this memcached server.", []string{"version"}, nil)
	commandsDesc = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", "commands_total"),
		"Total number of all requests broken down by command (get, set, etc.) and status.",
		[]string{"command", "status"}, nil)
)

// hitMissCommands have "<cmd>_hits" and "<cmd>_misses" stats.
var hitMissCommands = []string{"get", "delete", "incr", "decr", "cas", "touch"}

// Collector is a prometheus.Collector over a Source.
type Collector struct {
	src Source
}

// NewCollector returns a collector reading src on every scrape.
func NewCollector(src Source) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upDesc
	ch <- versionDesc
	ch <- commandsDesc
	for _, s := range scalars {
		ch <- s.desc
	}
}

// Collect implements prometheus.Collector. Stats that are absent or not
// numbers are skipped, as the exporter reports only what memcached sends.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.StatsMap()
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	if v, ok := st["version"]; ok {
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, 1, v)
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
			ch <- prometheus.MustNewConstMetric(s.desc, s.typ, v)
		}
	}
	cmd := func(stat, command, status string) {
		if v, ok := num(stat); ok {
			ch <- prometheus.MustNewConstMetric(commandsDesc, prometheus.CounterValue, v, command, status)
		}
	}
	for _, op := range hitMissCommands {
		cmd(op+"_hits", op, "hit")
		cmd(op+"_misses", op, "miss")
	}
	cmd("cas_badval", "cas", "badval")
	cmd("cmd_flush", "flush", "hit")
	// As the exporter does: memcached counts cas commands in cmd_set too,
	// so set{status="hit"} is cmd_set less every cas outcome.
	if set, ok := num("cmd_set"); ok {
		for _, k := range []string{"cas_hits", "cas_misses", "cas_badval"} {
			if v, ok := num(k); ok {
				set -= v
			}
		}
		ch <- prometheus.MustNewConstMetric(commandsDesc, prometheus.CounterValue, max(set, 0), "set", "hit")
	}
}

// Handler returns an http.Handler serving /metrics for src, with the Go
// runtime and process collectors alongside the memcached ones (as
// memcached_exporter serves its own).
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
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
