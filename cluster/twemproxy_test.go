package cluster

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// Ketama agreement with twemproxy (issue 7): keys written through a real
// nutcracker (Debian's twemproxy 0.5.0) with distribution: ketama must sit on
// exactly the node KetamaSelector picks from the same `servers:` lines, and
// on no other.

// twemproxyKeys is the key count written through nutcracker per run.
const twemproxyKeys = 10_000

// twemproxyHashes are the key hashes that both twemproxy's `hash:` and
// KeyHash implement: md5 (libmemcached ketama's), one_at_a_time
// (libmemcached's default), fnv1a_64 (twemproxy's default) and the rest.
// twemproxy's crc16, crc32a, hsieh, murmur and jenkins have no KeyHash.
var twemproxyHashes = []KeyHash{
	HashMD5, HashOneAtATime, HashFNV1a64, HashFNV1_64, HashFNV1_32, HashFNV1a32, HashCRC32,
}

// twemproxyKey is the i-th key: mostly short ASCII, with some bytes >= 0x80
// (C's signed char in the key hashes) and some of the 250-byte maximum.
func twemproxyKey(i int) string {
	switch {
	case i%50 == 7:
		return "k\xc3\xa9\xff\x80:" + strconv.Itoa(i)
	case i%97 == 3:
		k := "long:" + strconv.Itoa(i) + ":"
		return k + strings.Repeat("x", 250-len(k))
	}
	return testKey(i)
}

// nutcrackerPath finds nutcracker, which Debian installs in /usr/sbin:
// outside root's PATH it is still usable.
func nutcrackerPath(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("nutcracker"); err != nil {
		if fi, err := os.Stat("/usr/sbin/nutcracker"); err == nil && fi.Mode()&0o111 != 0 {
			return "/usr/sbin/nutcracker"
		}
	}
	return testutil.RequireTool(t, "nutcracker")
}

// startNutcracker runs nutcracker with one ketama pool over servers (each a
// twemproxy `servers:` line) hashing keys with hash, stops it when the test
// ends, and returns its listen address.
func startNutcracker(t *testing.T, bin string, hash KeyHash, servers []string) string {
	t.Helper()
	dir := t.TempDir()
	var lastErr string
	// The ports come from FreePort, which can race with another listener:
	// nutcracker then exits at start, and a second pair of ports is tried.
	for attempt := 0; attempt < 3; attempt++ {
		listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
		stats := testutil.FreePort(t)
		var conf strings.Builder
		fmt.Fprintf(&conf, "pool:\n  listen: %s\n  hash: %s\n  distribution: ketama\n", listen, hash)
		conf.WriteString("  timeout: 2000\n  auto_eject_hosts: false\n  server_connections: 1\n  servers:\n")
		for _, s := range servers {
			fmt.Fprintf(&conf, "   - %s\n", s)
		}
		cfgPath := filepath.Join(dir, fmt.Sprintf("nutcracker%d.yml", attempt))
		if err := os.WriteFile(cfgPath, []byte(conf.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("nutcracker%d.log", attempt))
		cmd := exec.Command(bin, "-c", cfgPath, "-o", logPath,
			"-s", strconv.Itoa(stats), "-a", "127.0.0.1",
			"-p", filepath.Join(dir, fmt.Sprintf("nutcracker%d.pid", attempt)))
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nutcracker: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", listen, 200*time.Millisecond)
			if err == nil {
				c.Close()
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					<-exited
					if t.Failed() {
						b, _ := os.ReadFile(logPath)
						t.Logf("nutcracker config:\n%s\nnutcracker log:\n%s", conf.String(), b)
					}
				})
				return listen
			}
			select {
			case err := <-exited:
				b, _ := os.ReadFile(logPath)
				lastErr = fmt.Sprintf("nutcracker exited at start: %v\n%s%s", err, stderr.String(), b)
			case <-time.After(20 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				_ = cmd.Process.Kill()
				<-exited
				b, _ := os.ReadFile(logPath)
				t.Fatalf("nutcracker not listening on %s within 5 s: %v\n%s", listen, err, b)
			}
			break
		}
	}
	t.Fatal(lastErr)
	return ""
}

// setThrough stores value "v<i>" under every key over one pipelined text
// protocol connection to addr.
func setThrough(t *testing.T, addr string, keys []string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	werr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(c, 64<<10)
		for i, k := range keys {
			v := "v" + strconv.Itoa(i)
			fmt.Fprintf(w, "set %s 0 0 %d\r\n%s\r\n", k, len(v), v)
		}
		werr <- w.Flush()
	}()
	r := bufio.NewReader(c)
	for i, k := range keys {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("set #%d %q through nutcracker: %v", i, k, err)
		}
		if line != "STORED\r\n" {
			t.Fatalf("set #%d %q through nutcracker: %q", i, k, line)
		}
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
}

// getDirect asks the node at addr for every key with multi-key gets and
// returns the values it holds.
func getDirect(t *testing.T, addr string, keys []string) map[string]string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	found := make(map[string]string)
	for start := 0; start < len(keys); {
		line := "get"
		end := start
		for end < len(keys) && (end == start || len(line)+1+len(keys[end]) < 8<<10) {
			line += " " + keys[end]
			end++
		}
		if _, err := io.WriteString(c, line+"\r\n"); err != nil {
			t.Fatal(err)
		}
		for {
			hdr, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("get from %s: %v", addr, err)
			}
			if hdr == "END\r\n" {
				break
			}
			f := strings.Fields(hdr)
			if len(f) != 4 || f[0] != "VALUE" {
				t.Fatalf("get from %s: unexpected %q", addr, hdr)
			}
			n, err := strconv.Atoi(f[3])
			if err != nil {
				t.Fatalf("get from %s: %q: %v", addr, hdr, err)
			}
			data := make([]byte, n+2)
			if _, err := io.ReadFull(r, data); err != nil {
				t.Fatal(err)
			}
			found[f[1]] = string(data[:n])
		}
		start = end
	}
	return found
}

func TestKetamaAgreesWithTwemproxy(t *testing.T) {
	bin := nutcrackerPath(t)
	keys := make([]string, twemproxyKeys)
	for i := range keys {
		keys[i] = twemproxyKey(i)
	}
	type run struct {
		name  string
		hash  KeyHash
		lines func(addrs []string) []string // twemproxy `servers:` lines
	}
	plain := func(addrs []string) []string {
		l := make([]string, len(addrs))
		for i, a := range addrs {
			l[i] = a + ":1"
		}
		return l
	}
	var runs []run
	for _, h := range twemproxyHashes {
		runs = append(runs, run{h.String(), h, plain})
	}
	// Names replace the address in the continuum, and unequal weights
	// exercise the float32 point counts.
	runs = append(runs, run{"md5_named_weighted", HashMD5, func(addrs []string) []string {
		return []string{addrs[0] + ":1 alpha", addrs[1] + ":2 beta", addrs[2] + ":3 gamma"}
	}})
	for _, rc := range runs {
		t.Run(rc.name, func(t *testing.T) {
			addrs := []string{
				testutil.StartGocached(t, nil),
				testutil.StartGocached(t, nil),
				testutil.StartGocached(t, nil),
			}
			lines := rc.lines(addrs)
			servers := make([]Server, len(lines))
			for i, l := range lines {
				s, err := ParseServer(l)
				if err != nil {
					t.Fatal(err)
				}
				servers[i] = s
			}
			sel, err := NewKetamaSelector(rc.hash, servers...)
			if err != nil {
				t.Fatal(err)
			}
			proxy := startNutcracker(t, bin, rc.hash, lines)
			setThrough(t, proxy, keys)

			held := make([]map[string]string, len(addrs))
			for n, a := range addrs {
				held[n] = getDirect(t, a, keys)
			}
			agree, missing, elsewhere := 0, 0, 0
			perNode := make([]int, len(addrs))
			var bad []string
			for i, k := range keys {
				want := sel.Primary(k)
				perNode[want]++
				var on []int
				for n := range held {
					if _, ok := held[n][k]; ok {
						on = append(on, n)
					}
				}
				ok := len(on) == 1 && on[0] == want && held[want][k] == "v"+strconv.Itoa(i)
				switch {
				case ok:
					agree++
				case len(on) == 0:
					missing++
				default:
					elsewhere++
				}
				if !ok && len(bad) < 10 {
					bad = append(bad, fmt.Sprintf("%q: KetamaSelector picks node %d, found on %v", k, want, on))
				}
			}
			t.Logf("twemproxy hash %s, servers %q: %d/%d keys (%.2f%%) found on exactly the node KetamaSelector picks; per node %v",
				rc.hash, lines, agree, len(keys), 100*float64(agree)/float64(len(keys)), perNode)
			if agree != len(keys) {
				t.Errorf("%d keys disagree (%d missing everywhere, %d on another node or on several); first: %s",
					len(keys)-agree, missing, elsewhere, strings.Join(bad, "; "))
			}
			// crc32 keeps 15 bits, so every key hashes below 32768, where
			// the continuum (32-bit MD5 points) has practically only its
			// first point: one node owns every key, in twemproxy and
			// libmemcached alike. Agreement is then all there is to check.
			for n, c := range perNode {
				if c == 0 && rc.hash != HashCRC32 {
					t.Errorf("node %d owns no keys: the test proves nothing about it", n)
				}
			}
		})
	}
}
