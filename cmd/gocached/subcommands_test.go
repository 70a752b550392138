package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

func TestHealthcheck(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	for _, args := range [][]string{{"healthcheck", "--addr", addr}, {"healthcheck", "-addr=" + addr}, {"healthcheck", addr}} {
		code, out, errs := runArgs(args...)
		if code != 0 || out != "VERSION 1.6.18\n" || errs != "" {
			t.Errorf("%q: %d %q %q", args, code, out, errs)
		}
	}
	// Nothing listening.
	dead := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	if code, _, errs := runArgs("healthcheck", "--addr", dead, "--timeout", "500ms"); code != 1 || !strings.Contains(errs, "refused") {
		t.Errorf("dead node: %d %q", code, errs)
	}
	// Something that is not memcached.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.0 400 Bad Request\r\n")
			c.Close()
		}
	}()
	if code, _, errs := runArgs("healthcheck", "--addr", ln.Addr().String()); code != 1 || !strings.Contains(errs, "unexpected reply") {
		t.Errorf("not memcached: %d %q", code, errs)
	}
	// A node that accepts and never answers: bounded by --timeout.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	start := time.Now()
	if code, _, _ := runArgs("healthcheck", "--addr", mute.Addr().String(), "--timeout", "300ms"); code != 1 {
		t.Errorf("mute node: exit %d", code)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("mute node took %v", d)
	}
	if code, _, _ := runArgs("healthcheck", "--bogus"); code != exUsage {
		t.Errorf("bad flag: exit %d", code)
	}
}

// tableRows parses "gocached stats" table output: stat -> cells.
func tableRows(out string) map[string][]string {
	rows := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 {
			rows[f[0]] = f[1:]
		}
	}
	return rows
}

// TestStatsDiscoveryNames checks that stats takes the names cluster.Dial
// takes: an ElastiCache configuration endpoint (a fake one here) and a
// dns+ name (an IP literal, so no DNS server is asked).
func TestStatsDiscoveryNames(t *testing.T) {
	a := testutil.StartGocached(t, nil)
	b := testutil.StartGocached(t, nil)
	e := testutil.StartConfigEndpoint(t, testutil.ConfigEntry("node-0001.example", a), testutil.ConfigEntry("node-0002.example", b))
	testutil.SendLines(t, a, "set k1 0 0 1\r\nx\r\n", 1)
	testutil.SendLines(t, b, "set k2 0 0 1\r\ny\r\n", 1)

	_, port, _ := net.SplitHostPort(b)
	for _, tc := range []struct {
		servers string
		header  []string
		sets    string
	}{
		{"ecdisc+" + e.Addr, []string{a, b, "total"}, "1 1 2"},
		{"dns+127.0.0.1:" + port, []string{b, "total"}, "1 1"},
		{a + ",dns+127.0.0.1:" + port, []string{a, b, "total"}, "1 1 2"},
	} {
		code, out, errs := runArgs("stats", "--servers", tc.servers)
		rows := tableRows(out)
		if code != 0 || errs != "" || strings.Join(rows["STAT"], " ") != strings.Join(tc.header, " ") ||
			strings.Join(rows["cmd_set"], " ") != tc.sets {
			t.Errorf("stats --servers %s: %d %q\n%s", tc.servers, code, errs, out)
		}
	}

	// A name that does not resolve is reported; the others are shown.
	code, out, errs := runArgs("stats", "--servers", "ecdisc+"+a+","+b)
	if code != 1 || !strings.Contains(errs, "ecdisc+"+a) || strings.Join(tableRows(out)["STAT"], " ") != b+" total" {
		t.Errorf("unresolvable name: %d %q\n%s", code, errs, out)
	}
}

func TestStatsAggregation(t *testing.T) {
	a := testutil.StartGocached(t, nil)
	b := testutil.StartGocached(t, nil)
	testutil.SendLines(t, a, "set k1 0 0 1\r\nx\r\nset k2 0 0 1\r\ny\r\nget k1\r\n", 5)
	testutil.SendLines(t, b, "set k3 0 0 1\r\nz\r\nget k3 nope\r\n", 4)

	code, out, errs := runArgs("stats", "--servers", a+","+b)
	if code != 0 || errs != "" {
		t.Fatalf("stats: %d %q", code, errs)
	}
	rows := tableRows(out)
	if h := rows["STAT"]; len(h) != 3 || h[0] != a || h[1] != b || h[2] != "total" {
		t.Errorf("header %q", h)
	}
	for stat, want := range map[string][]string{
		"cmd_set":        {"2", "1", "3"},
		"get_hits":       {"1", "1", "2"},
		"get_misses":     {"0", "1", "1"},
		"curr_items":     {"2", "1", "3"},
		"limit_maxbytes": {"67108864", "67108864", "134217728"},
	} {
		if got := rows[stat]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: %q, want %q", stat, got, want)
		}
	}
	// Identities and clocks have no total.
	for _, stat := range []string{"pid", "uptime", "version", "time", "threads"} {
		if r := rows[stat]; len(r) != 3 || r[2] != "-" {
			t.Errorf("%s: %q, want no total", stat, r)
		}
	}

	// A group, positional, after the flags or before them.
	code, out, _ = runArgs("stats", "settings", "--servers", a+","+b)
	if rows := tableRows(out); code != 0 || len(rows["maxbytes"]) != 3 || rows["maxbytes"][2] != "-" {
		t.Errorf("stats settings: %d %q", code, rows["maxbytes"])
	}
	code, out, _ = runArgs("stats", "--servers", a+","+b, "items")
	if rows := tableRows(out); code != 0 || strings.Join(rows["items:1:number"], " ") != "2 1 3" {
		t.Errorf("stats items: %d %q\n%s", code, rows["items:1:number"], out)
	}

	// memcstat layout.
	code, out, _ = runArgs("stats", "--format", "memcstat", "--servers", a)
	host, port, _ := net.SplitHostPort(a)
	if code != 0 || !strings.HasPrefix(out, "Server: "+host+" ("+port+")\n\t pid: ") ||
		!strings.Contains(out, "Total: 1 servers\n") || !strings.Contains(out, "\t cmd_set: 2\n") {
		t.Errorf("memcstat format: %d\n%s", code, out)
	}

	// A dead node: the others are still shown, the exit status says so.
	dead := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	code, out, errs = runArgs("stats", "--timeout", "500ms", "--servers", a+","+dead)
	rows = tableRows(out)
	if code != 1 || !strings.Contains(errs, dead) || strings.Join(rows["cmd_set"], " ") != "2 - 2" {
		t.Errorf("dead node: %d %q %q", code, errs, rows["cmd_set"])
	}
	// MEMCACHED_SERVERS, as libmemcached's tools read it.
	t.Setenv("MEMCACHED_SERVERS", b)
	if code, out, _ := runArgs("stats"); code != 0 || !strings.Contains(out, b) {
		t.Errorf("MEMCACHED_SERVERS: %d %q", code, out)
	}
	t.Setenv("MEMCACHED_SERVERS", "")
	if code, _, _ := runArgs("stats"); code != exUsage {
		t.Errorf("no servers: exit %d", code)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startCluster runs clusterUp in the background and returns its server
// list, a stop function and the channel its exit status arrives on.
func startCluster(t *testing.T, n, base int, daemonArgs ...string) ([]string, context.CancelFunc, chan int) {
	t.Helper()
	opts, _, err := parseArgs(append([]string{"gocached"}, daemonArgs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- clusterUp(ctx, n, base, "127.0.0.1", opts, &out, &errb) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		select {
		case code := <-done:
			cancel()
			done <- code
			return nil, cancel, done
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("cluster up printed no server list; stderr %s", errb.String())
		}
	}
	return strings.Split(strings.TrimSpace(out.String()), ","), cancel, done
}

func TestClusterUp(t *testing.T) {
	list, stop, done := startCluster(t, 3, 0, "-m", "8", "-o", "metrics_listen=127.0.0.1:0")
	if len(list) != 3 {
		t.Fatalf("server list %q", list)
	}
	for i, addr := range list {
		key := fmt.Sprintf("k%d", i)
		got := testutil.SendLines(t, addr, "set "+key+" 0 0 1\r\nv\r\nget "+key+"\r\nstats settings\r\n", 4)
		if got[0] != "STORED" || got[2] != "v" {
			t.Errorf("node %s: %q", addr, got)
		}
		// Each node has its own store: the key set on another is absent.
		other := list[(i+1)%3]
		if got := testutil.SendLines(t, other, "get "+key+"\r\n", 1); got[0] != "END" {
			t.Errorf("node %s sees %s's key: %q", other, addr, got)
		}
	}
	code, out, _ := runArgs("stats", "--servers", strings.Join(list, ","))
	if rows := tableRows(out); code != 0 || strings.Join(rows["curr_items"], " ") != "1 1 1 3" ||
		strings.Join(rows["limit_maxbytes"], " ") != "8388608 8388608 8388608 25165824" {
		t.Errorf("stats over the cluster: %d %q %q", code, rows["curr_items"], rows["limit_maxbytes"])
	}
	time.Sleep(time.Second) // "for a second"
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cluster up did not stop")
	}
	for _, addr := range list {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("%s still listening after stop", addr)
		}
	}
}

func TestClusterUpConsecutivePorts(t *testing.T) {
	// Three free consecutive ports cannot be reserved; retry on a clash.
	// The base is drawn below Linux's ephemeral range (32768-60999), where
	// the other tests' outgoing connections do not take ports.
	for attempt := 0; ; attempt++ {
		base := 20000 + rand.Intn(12000)
		list, stop, done := startCluster(t, 3, base)
		if list == nil {
			code := <-done
			if code == exOSErr && attempt < 20 {
				continue
			}
			t.Fatalf("cluster up failed to start (attempt %d, exit %d)", attempt, code)
		}
		want := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", base, base+1, base+2)
		if strings.Join(list, ",") != want {
			t.Errorf("server list %q, want %q", list, want)
		}
		stop()
		<-done
		return
	}
}

func TestClusterUpSignal(t *testing.T) {
	// Below the ephemeral range, as in the test above: retry on a clash.
	for attempt := 0; ; attempt++ {
		base := 20000 + rand.Intn(12000)
		var out, errb syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run([]string{"gocached", "cluster", "up", "2", "--base-port", fmt.Sprint(base), "-m", "8"}, &out, &errb)
		}()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(out.String(), "\n") && !strings.Contains(errb.String(), "address already in use") {
			if time.Now().After(deadline) {
				t.Fatalf("no server list; stderr %s", errb.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if strings.Contains(errb.String(), "address already in use") && attempt < 20 {
			<-done
			continue
		}
		if want := fmt.Sprintf("127.0.0.1:%d,127.0.0.1:%d\n", base, base+1); out.String() != want {
			t.Errorf("stdout %q, want %q", out.String(), want)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d after SIGINT; stderr %s", code, errb.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no exit after SIGINT")
		}
		return
	}
}

func TestClusterUpArgs(t *testing.T) {
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cluster"}, exUsage, "usage: gocached cluster up N"},
		{[]string{"cluster", "down"}, exUsage, "usage: gocached cluster up N"},
		{[]string{"cluster", "up"}, exUsage, "usage: gocached cluster up N"},
		{[]string{"cluster", "up", "zero"}, exUsage, "node count"},
		{[]string{"cluster", "up", "0"}, exUsage, "node count"},
		{[]string{"cluster", "up", "2", "--base-port", "65535"}, exUsage, "--base-port"},
		{[]string{"cluster", "up", "2", "--base-port"}, exUsage, "needs a value"},
		{[]string{"cluster", "up", "2", "-o", "bogus"}, 1, `Illegal suboption "bogus"`},
		{[]string{"cluster", "up", "2", "-o", "metrics_listen=nope"}, 1, "metrics_listen must be host:port"},
	} {
		code, _, errs := runArgs(tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: %d %q; want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
	if code, out, _ := runArgs("cluster", "--help"); code != 0 || !strings.HasPrefix(out, "usage: gocached cluster up N") {
		t.Errorf("cluster --help: %d %q", code, out)
	}
}

// TestRunMetricsListen runs the daemon with -o metrics_listen and scrapes it.
func TestRunMetricsListen(t *testing.T) {
	port, mport := testutil.FreePort(t), testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	murl := fmt.Sprintf("http://127.0.0.1:%d/metrics", mport)
	done := make(chan int, 1)
	var errb syncBuffer
	go func() {
		done <- run([]string{"gocached", "-u", "root", "-l", addr, "-U", "0",
			"-o", fmt.Sprintf("metrics_listen=127.0.0.1:%d", mport)}, io.Discard, &errb)
	}()
	testutil.WaitListening(t, "tcp", addr)
	testutil.SendLines(t, addr, "set x 0 0 1\r\n1\r\nget x\r\nget y\r\n", 4)
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(murl)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"\nmemcached_up 1\n",
		"\nmemcached_current_items 1\n",
		"\nmemcached_commands_total{command=\"get\",status=\"hit\"} 1\n",
		"\nmemcached_commands_total{command=\"get\",status=\"miss\"} 1\n",
		"\nmemcached_commands_total{command=\"set\",status=\"hit\"} 1\n",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d; stderr %s", code, errb.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if _, err := client.Get(murl); err == nil {
		t.Error("metrics listener still up after exit")
	}
	// A metrics address in use fails the start, as a port in use does.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, _, errs := runArgs("-u", "root", "-l", "127.0.0.1:0", "-U", "0", "-o", "metrics_listen="+ln.Addr().String())
	if code != exOSErr || !strings.Contains(errs, "failed to listen for metrics") {
		t.Errorf("metrics port in use: %d %q", code, errs)
	}
}

func TestMetricsListenOption(t *testing.T) {
	o := mustParse(t, "-o", "metrics_listen=:9150")
	if o.cfg.Extended["metrics_listen"] != ":9150" || hasNI(o, "-o metrics_listen=:9150") {
		t.Errorf("metrics_listen: %v, not implemented %q", o.cfg.Extended, o.notImplemented)
	}
	for _, bad := range []string{"metrics_listen", "metrics_listen=9150", "metrics_listen=:http", "metrics_listen=:70000"} {
		if _, _, err := parseArgs([]string{"gocached", "-o", bad}); err == nil {
			t.Errorf("-o %s accepted", bad)
		}
	}
}
