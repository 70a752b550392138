package clients

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// scriptTimeout bounds one client run. The slowest (spymemcached's JVM)
// takes about 3 s on an idle machine, but ten times that when the machine is
// loaded with the other packages' tests.
const scriptTimeout = 3 * time.Minute

// A client is one real client library and the script that drives it.
type client struct {
	name string
	// pkgs are the Debian packages it needs (named when they are missing).
	pkgs string
	// servers is how many servers of each kind the script gets (default 1).
	servers int
	// command returns the program and arguments that run the script; the
	// servers' "127.0.0.1:port" addresses follow them. It calls
	// testutil.Missing when the client is not installed.
	command func(t *testing.T, pkgs string) []string
}

var clientTable = []client{
	{name: "pylibmc", pkgs: "python3-pylibmc", command: python("pylibmc_client.py", "pylibmc")},
	{name: "django", pkgs: "python3-django python3-pylibmc python3-pymemcache", command: python("django_cache.py", "django", "pylibmc", "pymemcache")},
	{name: "python-memcached", pkgs: "python3-memcache", command: python("python_memcached.py", "memcache")},
	{name: "pymemcache", pkgs: "python3-pymemcache", command: python("pymemcache_client.py", "pymemcache")},
	{name: "dalli", pkgs: "ruby ruby-dalli", command: ruby("dalli.rb", "dalli")},
	{name: "spymemcached", pkgs: "libspymemcached-java default-jdk-headless", servers: 2, command: spymemcached},
	{name: "php-memcache", pkgs: "php-cli php-memcache", command: php("php_memcache.php", "memcache")},
	{name: "php-memcached", pkgs: "php-cli php-memcached", command: php("php_memcached.php", "memcached")},
	{name: "cache-memcached-fast", pkgs: "libcache-memcached-fast-perl", command: perl("cache_memcached_fast.pl", "Cache::Memcached::Fast")},
	{name: "nginx", pkgs: "nginx-light python3", command: nginx},
	{name: "libmemcached-tools", pkgs: "libmemcached-tools", command: libmemcachedTools},
}

// TestClients runs every client's script against memcached and gocached.
func TestClients(t *testing.T) {
	for _, c := range clientTable {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			argv := c.command(t, c.pkgs)
			var mcAddrs, goAddrs []string
			for range max(c.servers, 1) {
				mcAddrs = append(mcAddrs, testutil.StartMemcached(t))
				goAddrs = append(goAddrs, testutil.StartGocached(t, nil))
			}
			mcArgs := append(slices.Clip(argv), mcAddrs...)
			goArgs := append(slices.Clip(argv), goAddrs...)
			var mc, gc run
			var wg sync.WaitGroup
			wg.Go(func() { mc = runScript(mcArgs) })
			wg.Go(func() { gc = runScript(goArgs) })
			wg.Wait()
			compare(t, mc, gc)
		})
	}
}

// run is what one script printed and how it ended.
type run struct {
	args   []string
	ok     []string          // checks that passed, in order
	failed map[string]string // failed check -> what happened
	order  []string          // every check, in order
	out    string            // stdout and stderr
	err    error             // the exit status or the timeout
}

func runScript(args []string) run {
	r := run{args: args, failed: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	r.err = cmd.Run()
	if ctx.Err() != nil {
		r.err = fmt.Errorf("did not finish within %v", scriptTimeout)
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "ok "); ok {
			r.ok = append(r.ok, name)
			r.order = append(r.order, name)
		} else if rest, ok := strings.CutPrefix(line, "FAIL "); ok {
			name, detail, _ := strings.Cut(rest, ": ")
			r.failed[name] = detail
			r.order = append(r.order, name)
		}
	}
	r.out = stdout.String()
	if stderr.Len() > 0 {
		r.out += "--- stderr\n" + stderr.String()
	}
	return r
}

// compare requires the memcached run to pass every check (else the check is
// wrong) and the gocached run to pass the same checks.
func compare(t *testing.T, mc, gc run) {
	t.Helper()
	if os.Getenv("CLIENTS_VERBOSE") != "" {
		t.Logf("memcached run %q:\n%s", mc.args, mc.out)
		t.Logf("gocached run %q:\n%s", gc.args, gc.out)
	}
	if mc.err != nil || len(mc.failed) > 0 || len(mc.ok) == 0 {
		t.Fatalf("the checks are wrong: against memcached %v (%d ok, %d failed)\n%s",
			mc.err, len(mc.ok), len(mc.failed), mc.out)
	}
	t.Logf("%d checks pass against memcached", len(mc.ok))
	for _, name := range gc.order {
		if detail, ok := gc.failed[name]; ok {
			t.Errorf("%s: fails against gocached: %s", name, detail)
		} else if !slices.Contains(mc.ok, name) {
			t.Errorf("%s: ran against gocached only", name)
		}
	}
	var missed []string
	for _, name := range mc.ok {
		if !slices.Contains(gc.order, name) {
			missed = append(missed, name)
		}
	}
	if len(missed) > 0 {
		t.Errorf("passed against memcached, did not run against gocached: %s", strings.Join(missed, ", "))
	}
	if gc.err != nil {
		t.Errorf("the client broke against gocached: %v", gc.err)
	}
	if t.Failed() {
		t.Logf("gocached run %q:\n%s", gc.args, gc.out)
	}
}

// testdata is the absolute path of a script.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// need returns the path of a program the client needs, from PATH or
// /usr/sbin (where Debian puts nginx, and a user's PATH may not reach).
func need(t *testing.T, pkgs, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		path, err = exec.LookPath(filepath.Join("/usr/sbin", name))
	}
	if err != nil {
		testutil.Missing(t, fmt.Sprintf("%s not found in PATH or /usr/sbin (Debian: %s)", name, pkgs))
	}
	return path
}

// probe runs a program that exits 0 when a client library is installed.
func probe(t *testing.T, pkgs string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
		testutil.Missing(t, fmt.Sprintf("%s (Debian: %s): %v %s", strings.Join(args, " "), pkgs, err, bytes.TrimSpace(out)))
	}
}

// pythonPath is Debian's python3, where the python3-* packages install,
// ahead of any other python3 in PATH.
func pythonPath(t *testing.T, pkgs string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return need(t, pkgs, "python3")
}

func python(script string, modules ...string) func(*testing.T, string) []string {
	return func(t *testing.T, pkgs string) []string {
		py := pythonPath(t, pkgs)
		probe(t, pkgs, py, "-c", "import "+strings.Join(modules, ", "))
		return []string{py, "-B", testdata(t, script)} // -B: no __pycache__ in testdata
	}
}

func ruby(script, lib string) func(*testing.T, string) []string {
	return func(t *testing.T, pkgs string) []string {
		rb := need(t, pkgs, "ruby")
		probe(t, pkgs, rb, "-e", "require '"+lib+"'")
		return []string{rb, testdata(t, script)}
	}
}

func php(script, ext string) func(*testing.T, string) []string {
	return func(t *testing.T, pkgs string) []string {
		bin := need(t, pkgs, "php")
		probe(t, pkgs, bin, "-r", "exit(extension_loaded('"+ext+"') ? 0 : 1);")
		return []string{bin, testdata(t, script)}
	}
}

func perl(script, module string) func(*testing.T, string) []string {
	return func(t *testing.T, pkgs string) []string {
		bin := need(t, pkgs, "perl")
		probe(t, pkgs, bin, "-M"+module, "-e", "1")
		return []string{bin, testdata(t, script)}
	}
}

// spymemcachedJar is where libspymemcached-java puts the library.
const spymemcachedJar = "/usr/share/java/spymemcached.jar"

// spymemcached runs every check in one JVM (its start-up is the slow
// part), compiled once for both servers' runs.
func spymemcached(t *testing.T, pkgs string) []string {
	java, javac := need(t, pkgs, "java"), need(t, pkgs, "javac")
	if _, err := os.Stat(spymemcachedJar); err != nil {
		testutil.Missing(t, fmt.Sprintf("%s (Debian: %s): %v", spymemcachedJar, pkgs, err))
	}
	classes := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, javac, "-d", classes, "-cp", spymemcachedJar, testdata(t, "Spymemcached.java")).CombinedOutput()
	if err != nil {
		t.Fatalf("javac Spymemcached.java: %v\n%s", err, out)
	}
	// C1 only and the serial collector: the checks are short, start-up counts.
	return []string{java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
		"-cp", classes + string(os.PathListSeparator) + spymemcachedJar, "Spymemcached"}
}

// nginx: the script starts nginx itself, on a unix socket in a temporary
// directory, with memcached_pass to the server.
func nginx(t *testing.T, pkgs string) []string {
	return []string{pythonPath(t, pkgs), "-B", testdata(t, "nginx.py"), need(t, pkgs, "nginx")}
}

func libmemcachedTools(t *testing.T, pkgs string) []string {
	for _, tool := range []string{"memccp", "memccat", "memcstat", "memcexist", "memctouch", "memcrm", "memcping", "memcdump", "memcflush"} {
		need(t, pkgs, tool)
	}
	return []string{need(t, pkgs, "bash"), testdata(t, "libmemcached_tools.sh")}
}
