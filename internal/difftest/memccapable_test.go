package difftest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
	"github.com/gocached/gocached/slab"
)

// memccapableTimeout bounds one memccapable run; against memcached the
// ASCII suite takes about 2.5 s here.
const memccapableTimeout = 30 * time.Second

// memccapableResult is memccapable's verdict on each test it ran.
type memccapableResult struct {
	pass, fail, skip []string
	out              string
}

var memccapableLine = regexp.MustCompile(`(?m)^(\S.*?)\s+\[(pass|FAIL|skip)\]\s*$`)

// runMemccapable runs memccapable with mode ("-a" ASCII or "-b" binary)
// against the server at addr and parses its report.
func runMemccapable(t *testing.T, mode, addr string) memccapableResult {
	t.Helper()
	bin := testutil.RequireTool(t, "memccapable")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), memccapableTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, mode, "-h", host, "-p", port)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	runErr := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("memccapable %s did not finish within %v; output so far:\n%s", mode, memccapableTimeout, out.String())
	}
	var r memccapableResult
	r.out = out.String()
	for _, m := range memccapableLine.FindAllStringSubmatch(r.out, -1) {
		name := strings.Join(strings.Fields(m[1]), " ")
		switch m[2] {
		case "pass":
			r.pass = append(r.pass, name)
		case "FAIL":
			r.fail = append(r.fail, name)
		case "skip":
			r.skip = append(r.skip, name)
		}
	}
	if runErr != nil && len(r.fail) == 0 {
		// It stops at the first failure on some builds, or crashed.
		r.fail = append(r.fail, fmt.Sprintf("(memccapable exited: %v)", runErr))
	}
	return r
}

// requireAllPass fails unless memccapable ran at least want tests and all
// passed, and logs the score either way.
func requireAllPass(t *testing.T, server string, r memccapableResult, want int) {
	t.Helper()
	total := len(r.pass) + len(r.fail)
	t.Logf("memccapable against %s: %d/%d passed, %d skipped", server, len(r.pass), total, len(r.skip))
	if len(r.fail) > 0 {
		t.Errorf("memccapable against %s: failed: %s\nfull output:\n%s", server, strings.Join(r.fail, ", "), r.out)
	}
	if total < want {
		t.Errorf("memccapable against %s ran %d tests, want at least %d\nfull output:\n%s", server, total, want, r.out)
	}
}

// memccapableASCIITests is the number of ASCII tests of the memccapable in
// libmemcached-tools (Debian 12).
const (
	memccapableASCIITests  = 27
	memccapableBinaryTests = 27
)

func TestMemccapableASCII(t *testing.T) {
	testutil.RequireTool(t, "memccapable")
	t.Run("memcached", func(t *testing.T) {
		t.Parallel()
		addr := testutil.StartMemcached(t)
		requireAllPass(t, "memcached", runMemccapable(t, "-a", addr), memccapableASCIITests)
	})
	for _, ev := range evictions {
		t.Run("gocached "+ev, func(t *testing.T) {
			t.Parallel()
			addr := testutil.StartGocached(t, withEviction(ev))
			requireAllPass(t, "gocached "+ev, runMemccapable(t, "-a", addr), memccapableASCIITests)
		})
	}
}

func TestMemccapableBinary(t *testing.T) {
	testutil.RequireTool(t, "memccapable")
	for _, ev := range evictions {
		t.Run(ev, func(t *testing.T) {
			t.Parallel()
			addr := testutil.StartGocached(t, withEviction(ev))
			requireAllPass(t, "gocached "+ev, runMemccapable(t, "-b", addr), memccapableBinaryTests)
		})
	}
}

// evictions are the store's eviction policies: memccapable passes under
// each (their item layouts differ).
var evictions = []string{slab.EvictionS3Clock, slab.EvictionLRU, slab.EvictionS3FIFO, slab.EvictionClock}

func withEviction(ev string) func(*server.Config) {
	return func(c *server.Config) { c.Store.Eviction = ev }
}
