// Package swarm_test deploys examples/swarm/stack.yml on a single-node
// Docker swarm and checks what the fleet promises: a rolling update keeps
// the app's hit ratio (each node comes back with its cache, in its place
// on the ring); scaling 3 -> 4 moves about a quarter of the keys, all to
// the new node; removing a replica loses only its keys. It initialises swarm mode only if the
// machine is in no swarm, and then leaves it; it removes the stack, its
// volumes and memory files even on failure. It skips where Docker or
// swarm mode is unavailable, and fails there under CI.
package swarm_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// keys is how many keys each phase reads.
const keys = 1000

// The images' tags are this test process's own (other work trees' tests
// may use the same Docker daemon).
var (
	gocachedImage = fmt.Sprintf("gocached:swarmtest-%d", os.Getpid())
	appImage      = fmt.Sprintf("gocached-example-app:swarmtest-%d", os.Getpid())
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func docker(t *testing.T, timeout time.Duration, env []string, args ...string) string {
	t.Helper()
	out, err := testutil.Run(t, timeout, env, "docker", args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return strings.TrimSpace(out)
}

// skipOrFail skips locally and fails under CI.
func skipOrFail(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("skipping: " + msg)
}

// useSwarm makes this node a swarm manager: the swarm it is in, or one it
// initialises and leaves when the test ends.
func useSwarm(t *testing.T) {
	t.Helper()
	state, err := testutil.Run(t, 20*time.Second, nil, "docker", "info", "--format", "{{.Swarm.LocalNodeState}}|{{.Swarm.ControlAvailable}}")
	state = strings.TrimSpace(state)
	switch {
	case err != nil:
		skipOrFail(t, fmt.Sprintf("docker info: %v: %s", err, state))
	case state == "active|true":
		t.Log("using the swarm this node is a manager of")
	case strings.HasPrefix(state, "inactive"):
		if out, err := testutil.Run(t, time.Minute, nil, "docker", "swarm", "init", "--advertise-addr", "127.0.0.1"); err != nil {
			skipOrFail(t, fmt.Sprintf("swarm mode cannot start here: %v: %s", err, out))
		}
		t.Cleanup(func() {
			if out, err := testutil.Run(t, time.Minute, nil, "docker", "swarm", "leave", "--force"); err != nil {
				t.Errorf("leaving the swarm this test initialised: %v: %s", err, out)
			}
		})
	default:
		skipOrFail(t, "this node is in a swarm it does not manage ("+state+")")
	}
}

// app is the example app's HTTP API.
type app struct {
	t    *testing.T
	base string
	http *http.Client
}

type item struct {
	Value, Node, Home string
	Loads             int64
}

type appStats struct {
	Loads, Requests int64
	Started         int64
	Nodes           int
	Ejected         []string
}

func (a *app) getJSON(path string, v any) error {
	resp, err := a.http.Get(a.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

func (a *app) item(key string) (item, error) {
	var it item
	err := a.getJSON("/items/"+key, &it)
	if err == nil && it.Value != "value-of-"+key {
		err = fmt.Errorf("%s = %q", key, it.Value)
	}
	return it, err
}

func (a *app) stats() appStats {
	a.t.Helper()
	var s appStats
	if err := a.getJSON("/stats", &s); err != nil {
		a.t.Fatal(err)
	}
	return s
}

// placement reads every key of a set ("user", "fresh") and returns the
// home node of each (its place on the ring) and how many reads went to
// the database.
func (a *app) placement(set, phase string) (map[string]string, int64) {
	a.t.Helper()
	before := a.stats().Loads
	nodes := make(map[string]string, keys)
	for i := 0; i < keys; i++ {
		k := set + ":" + strconv.Itoa(i)
		it, err := a.item(k)
		if err != nil {
			a.t.Fatalf("%s: %v", phase, err)
		}
		nodes[k] = it.Home
	}
	return nodes, a.stats().Loads - before
}

// waitNodes waits until the app's ring has n nodes, none ejected, and
// the service runs n tasks.
func (a *app) waitNodes(svc string, n int, within time.Duration) {
	a.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var s appStats
		err := a.getJSON("/stats", &s)
		running, _ := testutil.Run(a.t, 20*time.Second, nil, "docker", "service", "ls", "--filter", "name="+svc, "--format", "{{.Replicas}}")
		if err == nil && s.Nodes == n && len(s.Ejected) == 0 && strings.TrimSpace(running) == fmt.Sprintf("%d/%d", n, n) {
			time.Sleep(time.Second) // a probe round
			return
		}
		if time.Now().After(deadline) {
			ps, _ := testutil.Run(a.t, 20*time.Second, nil, "docker", "service", "ps", "--no-trunc", svc)
			a.t.Fatalf("want %d nodes within %v: app %+v %v, service %s\n%s", n, within, s, err, running, ps)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func TestSwarmStack(t *testing.T) {
	testutil.RequireDocker(t)
	useSwarm(t)
	root := repoRoot()
	for _, img := range []testutil.Image{
		{Tag: gocachedImage, Package: "./cmd/gocached", Binary: "bin/gocached", DockerDir: root},
		{Tag: appImage, Package: "./examples/compose/app", Binary: "bin/app", DockerDir: filepath.Join(root, "examples", "compose", "app")},
	} {
		t.Cleanup(func() { _, _ = testutil.Run(t, 30*time.Second, nil, "docker", "rmi", "-f", img.Tag) })
		if out, err := testutil.BuildImage(t, root, img); err != nil {
			t.Fatalf("building %s: %v\n%s", img.Tag, err, out)
		}
	}
	// The per-slot memory files, in host RAM; the image runs as uid 11211.
	mem, err := os.MkdirTemp("/dev/shm", "gocached-swarm-")
	if err != nil {
		skipOrFail(t, "no /dev/shm for the memory files: "+err.Error())
	}
	t.Cleanup(func() { os.RemoveAll(mem) })
	for slot := 1; slot <= 8; slot++ {
		d := filepath.Join(mem, strconv.Itoa(slot))
		if err := os.Mkdir(d, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}

	stack := fmt.Sprintf("gocachedswarm%d", os.Getpid())
	svc := stack + "_gocached"
	volumes := stack + "-memory"
	port := testutil.FreePort(t)
	env := []string{"GOCACHED_IMAGE=" + gocachedImage, "APP_IMAGE=" + appImage, fmt.Sprintf("APP_PORT=%d", port),
		"CACHE_MEMORY_DIR=" + mem, "STACK_VOLUME_PREFIX=" + volumes, "CACHE_MB=32", "UPDATE_DELAY=2s"}
	t.Cleanup(func() { removeStack(t, stack, volumes) })
	docker(t, 2*time.Minute, env, "stack", "deploy", "-c", filepath.Join(root, "examples", "swarm", "stack.yml"), stack)

	began := time.Now()
	a := &app{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), http: &http.Client{Timeout: 5 * time.Second}}
	a.waitNodes(svc, 3, 2*time.Minute)

	// Three nodes share the keys.
	t.Logf("%v: 3 nodes up", time.Since(began).Round(time.Second))
	three, loads := a.placement("user", "3 nodes")
	if n := len(distinct(three)); n != 3 || loads != keys {
		t.Fatalf("3 nodes: keys on %d nodes, %d loads", n, loads)
	}

	// A rolling update, one task at a time, under load: each node comes
	// back with its cache, on the same place of the ring.
	rolled := rollingUpdate(t, a, svc, 3)
	rolledHomes, loads := a.placement("user", "after the rolling update")
	changed := 0
	for k, n := range rolledHomes {
		if n != three[k] {
			changed++
		}
	}
	t.Logf("rolling update: hit ratio %.2f%% through it (%d requests, %d loads, %d errors, %v); afterwards %d keys placed elsewhere and %d of %d reloaded",
		100*rolled.hitRatio, rolled.requests, rolled.loads, rolled.errors, rolled.took.Round(time.Second), changed, loads, keys)
	if rolled.hitRatio < 0.95 {
		t.Errorf("hit ratio through the rolling update %.3f, want >= 0.95", rolled.hitRatio)
	}
	if changed != 0 {
		t.Errorf("%d keys changed nodes across the rolling update", changed)
	}

	t.Logf("%v: rolling update done", time.Since(began).Round(time.Second))

	// 3 -> 4: about a quarter of the keys move, all to the new node.
	docker(t, time.Minute, nil, "service", "update", "-d", "--replicas", "4", svc)
	a.waitNodes(svc, 4, 2*time.Minute)
	four, loads := a.placement("user", "4 nodes")
	t.Logf("%v: scaled to 4", time.Since(began).Round(time.Second))
	moved, toNew := 0, 0
	old := distinct(three)
	for k, n := range four {
		if n != three[k] {
			moved++
			if !old[n] {
				toNew++
			}
		}
	}
	t.Logf("scale 3 -> 4: %d of %d keys moved (%.1f%%), %d of them to the new node; %d loads", moved, keys, 100*float64(moved)/keys, toNew, loads)
	// A key read while its node was briefly ejected (a slow reply under
	// load) is loaded once more: a few loads beyond the moved keys.
	if moved < keys*15/100 || moved > keys*35/100 || toNew != moved || loads < int64(moved) || loads > int64(moved+keys/20) {
		t.Errorf("scale 3 -> 4: %d keys moved, %d to the new node, %d loads; want about %d, all to it, each loaded once", moved, toNew, loads, keys/4)
	}

	// Removing a replica loses its keys only. Fresh keys, so that none
	// is on a fallback node from the rolling update's outages.
	after, _ := a.placement("fresh", "before removing a replica")
	docker(t, time.Minute, nil, "service", "update", "-d", "--replicas", "3", svc)
	a.waitNodes(svc, 3, 2*time.Minute)
	final, loads := a.placement("fresh", "after removing a replica")
	remaining := distinct(final)
	lost, stayed, strayed := 0, 0, 0
	for k, n := range final {
		switch {
		case !remaining[after[k]]:
			lost++
		case n == after[k]:
			stayed++
		default:
			strayed++
		}
	}
	t.Logf("scale 4 -> 3: %d keys of the removed node moved (%d loads), %d stayed, %d others moved", lost, loads, stayed, strayed)
	if strayed != 0 || lost == 0 || loads < int64(lost) || loads > int64(lost+keys/20) {
		t.Errorf("removing a replica: %d of its keys moved with %d loads; %d other keys moved", lost, loads, strayed)
	}
}

type rollResult struct {
	hitRatio                float64
	requests, loads, errors int64
	took                    time.Duration
}

// rollingUpdate runs "docker service update --force" while two clients
// read Zipf-distributed keys through the app, and returns the app's hit
// ratio over the update.
func rollingUpdate(t *testing.T, a *app, svc string, nodes int) rollResult {
	t.Helper()
	before := a.stats()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs atomic.Int64
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(seed int64) {
			defer wg.Done()
			zipf := rand.NewZipf(rand.New(rand.NewSource(seed)), 1.1, 1, keys-1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := a.item("user:" + strconv.FormatUint(zipf.Uint64(), 10)); err != nil {
					errs.Add(1)
					time.Sleep(10 * time.Millisecond)
				}
				// A steady load, not a saturating one: on two CPUs that
				// would starve the nodes and the app's health check.
				time.Sleep(time.Millisecond)
			}
		}(int64(w))
	}
	start := time.Now()
	docker(t, time.Minute, nil, "service", "update", "-d", "--force", svc)
	deadline := start.Add(4 * time.Minute)
	for {
		state, _ := testutil.Run(t, 20*time.Second, nil, "docker", "service", "inspect", "-f", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}", svc)
		state = strings.TrimSpace(state)
		if state == "completed" {
			break
		}
		if strings.Contains(state, "rollback") || strings.Contains(state, "paused") || time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			ps, _ := testutil.Run(t, 20*time.Second, nil, "docker", "service", "ps", "--no-trunc", svc)
			t.Fatalf("rolling update: state %q after %v\n%s", state, time.Since(start), ps)
		}
		time.Sleep(500 * time.Millisecond)
	}
	took := time.Since(start)
	a.waitNodes(svc, nodes, time.Minute)
	close(stop)
	wg.Wait()
	after := a.stats()
	if after.Started != before.Started {
		t.Fatalf("the app restarted during the rolling update: its counters do not cover it (%d client errors)", errs.Load())
	}
	res := rollResult{requests: after.Requests - before.Requests, loads: after.Loads - before.Loads, errors: errs.Load(), took: took}
	if res.requests > 0 {
		res.hitRatio = 1 - float64(res.loads)/float64(res.requests)
	}
	return res
}

func distinct(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, n := range m {
		out[n] = true
	}
	return out
}

// removeStack removes the stack, waits for its containers and network to
// go, then removes its volumes.
func removeStack(t *testing.T, stack, volumePrefix string) {
	if out, err := testutil.Run(t, time.Minute, nil, "docker", "stack", "rm", stack); err != nil {
		t.Errorf("stack rm: %v\n%s", err, out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ids, _ := testutil.Run(t, 20*time.Second, nil, "docker", "ps", "-aq", "--filter", "label=com.docker.stack.namespace="+stack)
		nets, _ := testutil.Run(t, 20*time.Second, nil, "docker", "network", "ls", "-q", "--filter", "label=com.docker.stack.namespace="+stack)
		if strings.TrimSpace(ids) == "" && strings.TrimSpace(nets) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("stack %s: containers %q networks %q still there", stack, ids, nets)
			break
		}
		time.Sleep(time.Second)
	}
	vols, _ := testutil.Run(t, 20*time.Second, nil, "docker", "volume", "ls", "-q", "--filter", "name="+volumePrefix)
	for _, v := range strings.Fields(vols) {
		if out, err := testutil.Run(t, 30*time.Second, nil, "docker", "volume", "rm", "-f", v); err != nil {
			t.Errorf("volume rm %s: %v\n%s", v, err, out)
		}
	}
}
