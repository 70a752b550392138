// Package compose_test checks the gocached image and the docker-compose
// example end to end: it builds the static binaries, the FROM-scratch
// images (nothing is pulled), runs containers on loopback ports and a
// compose project on its own network, and always removes what it made.
// It skips where Docker is absent, and fails there under CI.
package compose_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// The images' tags are this test process's own: tests of other work trees
// may build, and remove, theirs on the same Docker daemon at the same time.
var (
	gocachedImage = fmt.Sprintf("gocached:test-%d", os.Getpid())
	appImage      = fmt.Sprintf("gocached-example-app:test-%d", os.Getpid())
)

// repoRoot is the module root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func requireDocker(t *testing.T) { t.Helper(); testutil.RequireDocker(t) }

// run runs a command with a timeout and returns its combined output.
func run(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	return testutil.Run(t, timeout, env, name, args...)
}

func mustRun(t *testing.T, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, timeout, env, name, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

var (
	imagesOnce  sync.Once
	imagesTried bool
	imagesErr   error
	imagesLog   string
)

// buildImages builds both static binaries and both images, once per test
// binary; TestMain removes the images.
func buildImages(t *testing.T) {
	t.Helper()
	imagesOnce.Do(func() {
		imagesTried = true
		imagesLog, imagesErr = doBuildImages(t)
	})
	if imagesErr != nil {
		t.Fatalf("building images: %v\n%s", imagesErr, imagesLog)
	}
}

func doBuildImages(t *testing.T) (string, error) {
	root := repoRoot(t)
	var log strings.Builder
	for _, img := range []testutil.Image{
		{Tag: gocachedImage, Package: "./cmd/gocached", Binary: "bin/gocached", DockerDir: root},
		{Tag: appImage, Package: "./examples/compose/app", Binary: "bin/app", DockerDir: filepath.Join(root, "examples", "compose", "app")},
	} {
		out, err := testutil.BuildImage(t, root, img)
		log.WriteString(out)
		if err != nil {
			return log.String(), err
		}
	}
	return log.String(), nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	if imagesTried {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_ = exec.CommandContext(ctx, "docker", "rmi", "-f", gocachedImage, appImage).Run()
		cancel()
	}
	os.Exit(code)
}

// memcached is a minimal text-protocol client for the checks.
type memcached struct {
	c net.Conn
	r *bufio.Reader
}

// dialReady connects to addr until the node answers "version": a published
// port accepts connections (docker-proxy) before the container listens.
func dialReady(t *testing.T, addr string, within time.Duration) *memcached {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			m := &memcached{c: c, r: bufio.NewReader(c)}
			if line, err := m.cmd("version"); err == nil && strings.HasPrefix(line, "VERSION ") {
				t.Cleanup(func() { c.Close() })
				return m
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no memcached answering within %v (last error %v)", addr, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cmd sends one command line and returns the first reply line.
func (m *memcached) cmd(line string) (string, error) {
	_ = m.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(m.c, line+"\r\n"); err != nil {
		return "", err
	}
	l, err := m.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// readUntilEnd reads reply lines up to END.
func (m *memcached) readUntilEnd() ([]string, error) {
	var lines []string
	for {
		l, err := m.r.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "END" {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// setGet stores and reads back a value.
func (m *memcached) setGet(t *testing.T, key, value string) {
	t.Helper()
	if r, err := m.cmd(fmt.Sprintf("set %s 0 0 %d\r\n%s", key, len(value), value)); err != nil || r != "STORED" {
		t.Fatalf("set %s: %q %v", key, r, err)
	}
	r, err := m.cmd("get " + key)
	if err != nil || !strings.HasPrefix(r, "VALUE "+key+" ") {
		t.Fatalf("get %s: %q %v", key, r, err)
	}
	rest, err := m.readUntilEnd()
	if err != nil || len(rest) != 1 || rest[0] != value {
		t.Fatalf("get %s: %q %v", key, rest, err)
	}
}

// settings returns "stats settings".
func (m *memcached) settings(t *testing.T) map[string]string {
	t.Helper()
	_ = m.c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(m.c, "stats settings\r\n"); err != nil {
		t.Fatal(err)
	}
	lines, err := m.readUntilEnd()
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "STAT" {
			st[f[1]] = f[2]
		}
	}
	return st
}

// waitHealthy polls a container's HEALTHCHECK status until "healthy".
func waitHealthy(t *testing.T, id string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := run(t, 20*time.Second, nil, "docker", "inspect", "-f", "{{.State.Health.Status}}", id)
		status := strings.TrimSpace(out)
		if err == nil && status == "healthy" {
			return
		}
		if time.Now().After(deadline) {
			logs, _ := run(t, 20*time.Second, nil, "docker", "logs", "--tail", "20", id)
			t.Fatalf("container %s not healthy within %v: %q %v\nlogs:\n%s", id, within, status, err, logs)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startContainer runs the gocached image with args on a free loopback port
// and removes it when the test ends.
func startContainer(t *testing.T, name string, args ...string) (id, addr string) {
	t.Helper()
	port := testutil.FreePort(t)
	full := append([]string{"run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:11211", port), gocachedImage}, args...)
	t.Cleanup(func() { _, _ = run(t, 30*time.Second, nil, "docker", "rm", "-f", "-v", name) })
	id = strings.TrimSpace(mustRun(t, time.Minute, nil, "docker", full...))
	return id, fmt.Sprintf("127.0.0.1:%d", port)
}

func TestImage(t *testing.T) {
	requireDocker(t)
	buildImages(t)
	prefix := fmt.Sprintf("gocached-test-%d-", os.Getpid())

	// The image as the official one is configured.
	cfg := mustRun(t, 20*time.Second, nil, "docker", "image", "inspect", "-f",
		"{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.ExposedPorts}}|{{json .Config.Healthcheck.Test}}|{{.Config.StopSignal}}", gocachedImage)
	want := `11211:11211|["/gocached"]|["memcached"]|{"11211/tcp":{}}|["CMD","/gocached","healthcheck"]|SIGUSR1`
	if strings.TrimSpace(cfg) != want {
		t.Errorf("image config:\n got %s\nwant %s", strings.TrimSpace(cfg), want)
	}

	for _, tc := range []struct {
		name     string
		args     []string
		maxbytes string
		maxconns string
	}{
		{"shell-form", []string{"memcached", "-m", "64", "-c", "1024"}, "67108864", "1024"}, // command: memcached -m 64 -c 1024
		{"exec-form", []string{"-m", "32", "-c", "100"}, "33554432", "100"},                 // command: ["-m", "32", "-c", "100"]
		{"default", nil, "67108864", "1024"},                                                // CMD ["memcached"]
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, addr := startContainer(t, prefix+tc.name, tc.args...)
			m := dialReady(t, addr, 20*time.Second)
			m.setGet(t, "greeting", "hello from "+tc.name)
			st := m.settings(t)
			if st["maxbytes"] != tc.maxbytes || st["maxconns"] != tc.maxconns {
				t.Errorf("args %q: maxbytes %s maxconns %s, want %s %s", tc.args, st["maxbytes"], st["maxconns"], tc.maxbytes, tc.maxconns)
			}
			// The healthcheck command runs without a shell.
			if out, err := run(t, 20*time.Second, nil, "docker", "exec", id, "/gocached", "healthcheck"); err != nil ||
				!strings.HasPrefix(out, "VERSION ") {
				t.Errorf("docker exec healthcheck: %v %q", err, out)
			}
			// memcstat-style stats from inside, too.
			if out, err := run(t, 20*time.Second, nil, "docker", "exec", id, "/gocached", "stats", "--servers", "127.0.0.1:11211"); err != nil ||
				!strings.Contains(out, "curr_items") {
				t.Errorf("docker exec stats: %v %q", err, out)
			}
			if tc.name == "shell-form" {
				waitHealthy(t, id, 40*time.Second)
			}
		})
	}
}

// composeCmd finds "docker compose" (v2) or "docker-compose" (v1).
func composeCmd(t *testing.T) []string {
	t.Helper()
	if _, err := run(t, 20*time.Second, nil, "docker", "compose", "version"); err == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	msg := "neither `docker compose` nor docker-compose is installed (apt-get install -y docker-compose)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
	return nil
}

// project is one compose project; its containers and network are removed
// when the test ends.
type project struct {
	t    *testing.T
	cmd  []string
	args []string // -p NAME -f FILE...
	env  []string
}

func newProject(t *testing.T, cmd []string, name string, env []string, files ...string) *project {
	p := &project{t: t, cmd: cmd, env: env, args: []string{"-p", name}}
	for _, f := range files {
		p.args = append(p.args, "-f", f)
	}
	t.Cleanup(func() {
		if out, err := p.run(2*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "2"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	return p
}

func (p *project) run(timeout time.Duration, args ...string) (string, error) {
	full := append(append(append([]string(nil), p.cmd[1:]...), p.args...), args...)
	return run(p.t, timeout, p.env, p.cmd[0], full...)
}

func (p *project) must(timeout time.Duration, args ...string) string {
	p.t.Helper()
	out, err := p.run(timeout, args...)
	if err != nil {
		logs, _ := p.run(30*time.Second, "logs", "--tail", "30")
		p.t.Fatalf("%v\n%s\nlogs:\n%s", err, out, logs)
	}
	return out
}

// container returns the id of a service's container.
func (p *project) container(service string) string {
	p.t.Helper()
	id := strings.TrimSpace(p.must(30*time.Second, "ps", "-q", service))
	if id == "" {
		p.t.Fatalf("service %s has no container", service)
	}
	return id
}

func TestComposeDropIn(t *testing.T) {
	requireDocker(t)
	compose := composeCmd(t)
	buildImages(t)
	dir := t.TempDir()
	// The example file as it is, with only the image under test swapped in
	// by an override file.
	override := filepath.Join(dir, "override.yml")
	if err := os.WriteFile(override, []byte("services:\n  memcached:\n    image: "+gocachedImage+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(repoRoot(t), "examples", "compose", "docker-compose.yml")
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("image: gocached:latest")) || !bytes.Contains(b, []byte("command: memcached -m 64")) {
		t.Errorf("docker-compose.yml is not the official usage with the image renamed:\n%s", b)
	}
	p := newProject(t, compose, fmt.Sprintf("gocacheddropin%d", os.Getpid()), nil, example, override)
	p.must(2*time.Minute, "up", "-d", "--no-build")
	waitHealthy(t, p.container("memcached"), 40*time.Second)
}

func TestComposeCluster(t *testing.T) {
	requireDocker(t)
	compose := composeCmd(t)
	buildImages(t)
	port := testutil.FreePort(t)
	env := []string{"GOCACHED_IMAGE=" + gocachedImage, "APP_IMAGE=" + appImage, fmt.Sprintf("APP_PORT=%d", port)}
	file := filepath.Join(repoRoot(t), "examples", "compose", "docker-compose.cluster.yml")
	p := newProject(t, compose, fmt.Sprintf("gocachedcluster%d", os.Getpid()), env, file)
	p.must(3*time.Minute, "up", "-d", "--no-build")

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Timeout: 5 * time.Second}
	type item struct {
		Key, Value, Node string
		Loads            int64
	}
	get := func(key string) (item, error) {
		var it item
		resp, err := client.Get(base + "/items/" + key)
		if err != nil {
			return it, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return it, fmt.Errorf("GET /items/%s: %s: %s", key, resp.Status, body)
		}
		err = json.Unmarshal(body, &it)
		return it, err
	}
	// The app is up once it answers.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := get("warmup"); err == nil {
			break
		} else if time.Now().After(deadline) {
			logs, _ := p.run(30*time.Second, "logs", "--tail", "30")
			t.Fatalf("app not answering: %v\n%s", err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	const n = 30
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d", i)
	}
	readAll := func(phase string) (loads int64, nodes map[string]int) {
		nodes = map[string]int{}
		for _, k := range keys {
			it, err := get(k)
			if err != nil {
				t.Fatalf("%s: %v", phase, err)
			}
			if it.Value != "value-of-"+k {
				t.Fatalf("%s: %s = %q", phase, k, it.Value)
			}
			nodes[it.Node]++
			loads = it.Loads
		}
		return loads, nodes
	}
	first, nodes := readAll("cold")
	second, _ := readAll("warm")
	if second != first {
		t.Errorf("warm reads went to the database: loads %d -> %d", first, second)
	}
	if len(nodes) != 3 {
		t.Errorf("keys spread over %d nodes, want 3: %v", len(nodes), nodes)
	}

	// Lose a node: the app keeps answering (its keys are reloaded from the
	// database and cached on a fallback node).
	p.must(time.Minute, "stop", "--timeout", "2", "cache2")
	afterStop, _ := readAll("cache2 stopped")
	again, _ := readAll("cache2 stopped, again")
	t.Logf("loads: cold %d, warm %d, after stopping cache2 %d, then %d", first, second, afterStop, again)
	if again-afterStop > n/3 {
		t.Errorf("with cache2 out, reloads kept happening: %d -> %d", afterStop, again)
	}
	p.must(time.Minute, "start", "cache2")
	waitHealthy(t, p.container("cache2"), 40*time.Second)
	readAll("cache2 back")
}

// fillKeys stores n keys (warm:0..) with 100-byte values over one
// pipelined connection.
func fillKeys(t *testing.T, m *memcached, n int) {
	t.Helper()
	_ = m.c.SetDeadline(time.Now().Add(2 * time.Minute))
	w := bufio.NewWriterSize(m.c, 64<<10)
	for i := 0; i < n; i++ {
		v := warmValue(i)
		fmt.Fprintf(w, "set warm:%d 0 0 %d noreply\r\n%s\r\n", i, len(v), v)
	}
	if _, err := w.WriteString("mn\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if l, err := m.r.ReadString('\n'); err != nil || l != "MN\r\n" {
		t.Fatalf("after filling: %q %v", l, err)
	}
}

func warmValue(i int) string { return fmt.Sprintf("%-100d", i) }

// countKeys reads keys warm:0..n-1 in multigets of 100 and counts those
// present with their value.
func countKeys(m *memcached, n int) (int, error) {
	_ = m.c.SetDeadline(time.Now().Add(2 * time.Minute))
	found := 0
	for base := 0; base < n; base += 100 {
		var req strings.Builder
		req.WriteString("get")
		for i := base; i < min(base+100, n); i++ {
			fmt.Fprintf(&req, " warm:%d", i)
		}
		req.WriteString("\r\n")
		if _, err := io.WriteString(m.c, req.String()); err != nil {
			return found, err
		}
		lines, err := m.readUntilEnd()
		if err != nil {
			return found, err
		}
		for j := 0; j+1 < len(lines); j += 2 {
			var i int
			if _, err := fmt.Sscanf(lines[j], "VALUE warm:%d ", &i); err == nil && lines[j+1] == warmValue(i) {
				found++
			}
		}
	}
	return found, nil
}

// TestComposeWarmRestart replaces the cache container with
// "docker-compose up -d --force-recreate" on the same memory file (host
// tmpfs): the image's stop signal (SIGUSR1) saves the items, the new
// container restores them.
func TestComposeWarmRestart(t *testing.T) {
	requireDocker(t)
	compose := composeCmd(t)
	buildImages(t)
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("skipping: no /dev/shm for the memory file")
	}
	dir, err := os.MkdirTemp("/dev/shm", "gocached-warm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The image runs as uid 11211.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	port := testutil.FreePort(t)
	env := []string{"GOCACHED_IMAGE=" + gocachedImage, fmt.Sprintf("CACHE_PORT=%d", port), "CACHE_MEMORY_DIR=" + dir, "CACHE_MB=64"}
	file := filepath.Join(repoRoot(t), "examples", "compose", "docker-compose.warm.yml")
	p := newProject(t, compose, fmt.Sprintf("gocachedwarm%d", os.Getpid()), env, file)
	p.must(2*time.Minute, "up", "-d", "--no-build")
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	const n = 100_000
	m := dialReady(t, addr, 30*time.Second)
	fillKeys(t, m, n)
	failed := func(format string, a ...any) {
		t.Helper()
		logs, _ := p.run(30*time.Second, "logs", "--tail", "20")
		ps, _ := p.run(30*time.Second, "ps")
		t.Fatalf(format+"\nps:\n%s\nlogs:\n%s", append(a, ps, logs)...)
	}
	if before, err := countKeys(m, n); before != n || err != nil {
		failed("%d of %d keys present before the restart (%v)", before, n, err)
	}
	old := p.container("cache")
	m.c.Close()

	start := time.Now()
	p.must(3*time.Minute, "up", "-d", "--no-build", "--force-recreate")
	recreated := time.Since(start)
	if id := p.container("cache"); id == old {
		t.Fatal("the container was not replaced")
	}
	m = dialReady(t, addr, 30*time.Second)
	ready := time.Since(start)
	after, err := countKeys(m, n)
	if err != nil {
		failed("reading the keys after the restart: %v (%d found so far)", err, after)
	}
	t.Logf("%d of %d keys present after --force-recreate (recreate took %v, answering after %v)", after, n, recreated, ready)
	if after*100 < n*99 {
		failed("%d of %d keys after the restart, want >= 99%%", after, n)
	}
}
