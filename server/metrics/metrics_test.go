package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server/metrics"
)

// scrape returns the sample lines of /metrics, "name{labels}" -> value.
func scrape(t *testing.T, url string) (map[string]string, string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	samples := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		samples[line[:i]] = line[i+1:]
	}
	return samples, string(body)
}

func TestScrapeAfterTraffic(t *testing.T) {
	srv := testutil.StartGocachedServer(t, nil)
	addr := srv.Addrs()[0].String()
	m, err := metrics.Listen("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	testutil.SendLines(t, addr, "set a 0 0 1\r\n1\r\nset b 0 0 2\r\n22\r\nset c 0 0 3\r\n333\r\n"+
		"get a\r\nget b\r\nget nope\r\ndelete c\r\ndelete nope\r\n", 12)

	samples, body := scrape(t, "http://"+m.Addr().String()+"/metrics")
	want := map[string]string{
		"memcached_up":                                             "1",
		`memcached_version{version="1.6.18"}`:                      "1",
		`memcached_commands_total{command="get",status="hit"}`:     "2",
		`memcached_commands_total{command="get",status="miss"}`:    "1",
		`memcached_commands_total{command="set",status="hit"}`:     "3",
		`memcached_commands_total{command="delete",status="hit"}`:  "1",
		`memcached_commands_total{command="delete",status="miss"}`: "1",
		`memcached_commands_total{command="cas",status="badval"}`:  "0",
		"memcached_current_items":                                  "2",
		"memcached_items_total":                                    "3",
		"memcached_limit_bytes":                                    "6.7108864e+07",
		"memcached_items_evicted_total":                            "0",
		"memcached_max_connections":                                "1024",
	}
	for name, v := range want {
		if got, ok := samples[name]; !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, v)
		}
	}
	// Present with a value that depends on timing or sizes.
	for _, name := range []string{"memcached_current_connections", "memcached_connections_total",
		"memcached_read_bytes_total", "memcached_written_bytes_total", "memcached_current_bytes",
		"memcached_uptime_seconds", "memcached_time_seconds", "memcached_process_user_cpu_seconds_total",
		"go_goroutines", "process_open_fds"} {
		if _, ok := samples[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if samples["memcached_read_bytes_total"] == "0" || samples["memcached_current_bytes"] == "0" {
		t.Errorf("byte counters not counting: read %s, current %s",
			samples["memcached_read_bytes_total"], samples["memcached_current_bytes"])
	}
	// Types as the exporter declares them.
	for _, decl := range []string{
		"# TYPE memcached_commands_total counter",
		"# TYPE memcached_current_items gauge",
		"# TYPE memcached_read_bytes_total counter",
		"# TYPE memcached_current_connections gauge",
		"# TYPE memcached_items_evicted_total counter",
	} {
		if !strings.Contains(body, decl+"\n") {
			t.Errorf("/metrics lacks %q", decl)
		}
	}
}

type fakeSource map[string]string

func (f fakeSource) StatsMap() map[string]string { return f }

func TestSetExcludesCas(t *testing.T) {
	src := fakeSource{"cmd_set": "10", "cas_hits": "2", "cas_misses": "1", "cas_badval": "3", "version": "x", "bytes": "oops"}
	ts := httptestServer(t, metrics.Handler(src))
	samples, _ := scrape(t, ts+"/metrics")
	if got := samples[`memcached_commands_total{command="set",status="hit"}`]; got != "4" {
		t.Errorf("set hits = %q, want 10-2-1-3 = 4", got)
	}
	if _, ok := samples["memcached_current_bytes"]; ok {
		t.Error("a non-numeric stat was exported")
	}
}

// httptestServer serves h on a loopback port for the test's duration.
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	return fmt.Sprintf("http://%s", ln.Addr())
}

// TestExpositionFormat checks the text format as Prometheus parses it:
// each family's HELP and TYPE come once, before its samples; label values
// are escaped; the Go and process families are there.
func TestExpositionFormat(t *testing.T) {
	src := fakeSource{"version": "1.6\"x\\y\n", "curr_items": "5", "cmd_set": "1"}
	ts := httptestServer(t, metrics.Handler(src))
	samples, body := scrape(t, ts+"/metrics")
	typed := map[string]bool{}
	helped := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" {
			seen := map[string]map[string]bool{"HELP": helped, "TYPE": typed}[f[1]]
			if seen == nil || seen[f[2]] {
				t.Errorf("repeated or unknown comment %q", line)
			} else {
				seen[f[2]] = true
			}
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		family := strings.TrimSuffix(strings.TrimSuffix(name, "_sum"), "_count")
		if !typed[name] && !typed[family] {
			t.Errorf("sample before its TYPE: %q", line)
		}
	}
	if got := samples[`memcached_version{version="1.6\"x\\y\n"}`]; got != "1" {
		t.Errorf("escaped version label missing:\n%s", body)
	}
	for _, name := range []string{"memcached_current_items", "go_goroutines", "go_memstats_heap_alloc_bytes",
		`go_gc_duration_seconds{quantile="0.5"}`, "go_gc_duration_seconds_count", `go_info{version="` + runtime.Version() + `"}`} {
		if _, ok := samples[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if runtime.GOOS == "linux" {
		// process_cpu_seconds_total may still be 0 (10 ms ticks).
		if _, ok := samples["process_cpu_seconds_total"]; !ok {
			t.Error("process_cpu_seconds_total missing")
		}
		for _, name := range []string{"process_resident_memory_bytes", "process_start_time_seconds", "process_max_fds", "process_open_fds"} {
			if v, ok := samples[name]; !ok || v == "0" {
				t.Errorf("%s = %q (present %v)", name, v, ok)
			}
		}
	}
}
