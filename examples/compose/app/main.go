// Command app is the docker-compose and swarm examples' service: a small
// HTTP API whose reads go through a gocached cluster with lazy loading
// (cache-aside) from a deliberately slow "database".
//
//	GET /items/{key}  the key's value, from the cache or loaded and cached,
//	                  with the node that served it and the key's home node
//	GET /healthz      200 "ok" (also: app -healthcheck, for a shell-less image)
//	GET /stats        {"loads": N, "requests": N, "nodes": N, "ejected": [...], "started": UnixNano}
//
// Configuration, from the environment:
//
//	CACHE_SERVERS  comma-separated nodes (default cache1:11211,cache2:11211,cache3:11211):
//	               host:port, or names discovered and followed (cluster.Dial):
//	               dns+host:port, dnssrv+_service._proto.domain, ecdisc+host:port
//	CACHE_NODE_NAMES  "swarm-slot": identify the nodes of dns+tasks.<service>:port
//	               by their swarm replica slot rather than their IP (swarm.go)
//	CACHE_RESOLVE_INTERVAL  how often discovery names are looked up (default 10s)
//	SELECTOR       "ketama" (default: libmemcached/twemproxy-compatible) or "jump"
//	LISTEN         HTTP address (default :8080)
//	CACHE_TTL      TTL of cached values (default 5m)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gocached/gocached/cluster"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "GET /healthz on LISTEN and exit 0 if it answers 200")
	flag.Parse()
	listen := env("LISTEN", ":8080")
	if *healthcheck {
		os.Exit(checkHealth(listen))
	}
	servers := strings.Split(env("CACHE_SERVERS", "cache1:11211,cache2:11211,cache3:11211"), ",")
	ttl, err := time.ParseDuration(env("CACHE_TTL", "5m"))
	if err != nil {
		log.Fatalf("CACHE_TTL: %v", err)
	}
	opts := cluster.Options{
		Timeout:       250 * time.Millisecond, // bounds the cost of a frozen node
		FailureLimit:  2,
		RetryTimeout:  time.Second,
		ProbeInterval: 500 * time.Millisecond, // re-admit a node only once it answers
	}
	c, err := newCache(servers, env("SELECTOR", "ketama"), opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	a := &app{started: time.Now(), cache: c, ttl: ttl}
	srv := &http.Server{Addr: listen, Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("app: listening on %s, cache %s over %v", listen, env("SELECTOR", "ketama"), servers)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// newCache returns a client over fixed nodes, or one that discovers them
// (cluster.Dial) when a name has a discovery prefix.
func newCache(servers []string, selector string, opts cluster.Options) (*cluster.Client, error) {
	if !slices.ContainsFunc(servers, func(s string) bool { return strings.Contains(s, "+") }) {
		sel, err := newSelector(selector, servers)
		if err != nil {
			return nil, err
		}
		return cluster.New(sel, opts), nil
	}
	switch selector {
	case "ketama":
		opts.Distribution = cluster.Ketama
	case "jump":
		opts.Distribution = cluster.Jump
	default:
		return nil, fmt.Errorf("SELECTOR %q: want ketama or jump", selector)
	}
	every, err := time.ParseDuration(env("CACHE_RESOLVE_INTERVAL", "10s"))
	if err != nil {
		return nil, fmt.Errorf("CACHE_RESOLVE_INTERVAL: %w", err)
	}
	opts.ResolveInterval = every
	switch names := env("CACHE_NODE_NAMES", ""); names {
	case "":
	case "swarm-slot":
		opts.Identify = swarmSlot
	default:
		return nil, fmt.Errorf("CACHE_NODE_NAMES %q: want swarm-slot or nothing", names)
	}
	return cluster.Dial(servers, opts)
}

func newSelector(kind string, servers []string) (cluster.Selector, error) {
	switch kind {
	case "ketama":
		return cluster.NewKetamaSelectorAddrs(servers...)
	case "jump":
		return cluster.NewJumpSelector(servers...)
	}
	return nil, fmt.Errorf("SELECTOR %q: want ketama or jump", kind)
}

type app struct {
	started  time.Time // tells a restarted app (its counters start again) from a running one
	cache    *cluster.Client
	ttl      time.Duration
	loads    atomic.Int64 // trips to the "database"
	requests atomic.Int64
}

// load is the source of truth: slow, so a cache hit is worth having.
func (a *app) load(ctx context.Context, key string) ([]byte, error) {
	a.loads.Add(1)
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []byte("value-of-" + key), nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{key}", func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		key := r.PathValue("key")
		v, err := a.cache.GetOrLoad(r.Context(), key, a.ttl, a.load)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		// node serves the key now; home is its place on the ring, which
		// only membership changes move (node differs while home is ejected).
		node, home := "", ""
		if n, err := a.cache.Node(key); err == nil {
			node = n.String()
		}
		sel := a.cache.Selector()
		if i := sel.Primary(key); i >= 0 && i < len(sel.Nodes()) {
			home = sel.Nodes()[i].String()
			if ks, ok := sel.(*cluster.KetamaSelector); ok && ks.Servers()[i].Name != "" {
				home = ks.Servers()[i].Name // the node's identity (CACHE_NODE_NAMES)
			}
		}
		writeJSON(w, map[string]any{"key": key, "value": string(v), "node": node, "home": home, "loads": a.loads.Load()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		var ejected []string
		for _, n := range a.cache.Ejected() {
			ejected = append(ejected, n.String())
		}
		writeJSON(w, map[string]any{"loads": a.loads.Load(), "requests": a.requests.Load(),
			"nodes": a.cache.Stats().Nodes, "ejected": ejected, "started": a.started.UnixNano()})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// checkHealth is the image's HEALTHCHECK: the image has no shell or curl.
func checkHealth(listen string) int {
	addr := listen
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
