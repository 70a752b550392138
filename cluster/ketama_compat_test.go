package cluster

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gocached/gocached/internal/testutil"
)

// The libmemcached oracle drives the installed libmemcached.so.11 through
// python3 ctypes (testdata/libmemcached_oracle.py): libmemcached-tools' CLI
// programs cannot select ketama, but the library itself can, and asking it
// directly compares every key rather than a sample of published vectors.

func oracle(t *testing.T, stdin []string, args ...string) []string {
	t.Helper()
	py := testutil.RequireTool(t, "python3")
	var in bytes.Buffer
	for _, k := range stdin {
		in.WriteString(hex.EncodeToString([]byte(k)) + "\n")
	}
	cmd := exec.Command(py, append([]string{"testdata/libmemcached_oracle.py"}, args...)...)
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 3 {
		msg := "libmemcached.so.11 not loadable (apt-get install -y libmemcached-tools): " + stderr.String()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	if err != nil {
		t.Fatalf("oracle %v: %v\n%s", args, err, stderr.String())
	}
	lines := strings.Fields(string(out))
	if len(lines) != len(stdin) && len(stdin) > 0 && args[0] != "store" {
		t.Fatalf("oracle returned %d answers for %d keys", len(lines), len(stdin))
	}
	return lines
}

// oracleKeys mixes ordinary keys with bytes >= 0x80, which exercise the
// signed-char behaviour of the C hash functions.
func oracleKeys(n int) []string {
	keys := make([]string, 0, n+4)
	for i := 0; i < n; i++ {
		keys = append(keys, testKey(i))
	}
	return append(keys, "a", "\x80\xff\xc3\xa9t\xc3\xa9", "user:42:profile", strings.Repeat("k", 250))
}

func TestKeyHashMatchesLibhashkit(t *testing.T) {
	keys := oracleKeys(2000)
	for h := range hashNames {
		t.Run(h.String(), func(t *testing.T) {
			want := oracle(t, keys, "hash", h.String())
			for i, k := range keys {
				if got := strconv.FormatUint(uint64(h.Sum32(k)), 10); got != want[i] {
					t.Fatalf("%s(%q) = %s, libhashkit says %s", h, k, got, want[i])
				}
			}
		})
	}
}

func TestKetamaMatchesLibmemcached(t *testing.T) {
	cases := []struct {
		name    string
		hash    KeyHash
		servers []Server
	}{
		{"3 nodes default port", HashMD5, []Server{{Addr: "10.0.0.1:11211"}, {Addr: "10.0.0.2:11211"}, {Addr: "10.0.0.3:11211"}}},
		{"other ports", HashMD5, []Server{{Addr: "127.0.0.1:11311"}, {Addr: "127.0.0.1:11312"}, {Addr: "127.0.0.1:11313"}, {Addr: "127.0.0.1:11211"}}},
		{"hostnames", HashMD5, []Server{{Addr: "cache1:11211"}, {Addr: "cache2:11211"}, {Addr: "cache3:11211"}}},
		{"weighted", HashMD5, []Server{{Addr: "10.0.0.1:11211", Weight: 1}, {Addr: "10.0.0.2:11211", Weight: 2}, {Addr: "10.0.0.3:11212", Weight: 3}, {Addr: "10.0.0.4:11211", Weight: 5}}},
		{"7 nodes", HashMD5, func() (s []Server) {
			for i := 1; i <= 7; i++ {
				s = append(s, Server{Addr: fmt.Sprintf("192.168.1.%d:11211", i)})
			}
			return s
		}()},
		{"fnv1a_64 keys", HashFNV1a64, []Server{{Addr: "10.0.0.1:11211"}, {Addr: "10.0.0.2:11211"}, {Addr: "10.0.0.3:11211"}}},
		{"crc32 keys", HashCRC32, []Server{{Addr: "10.0.0.1:11211"}, {Addr: "10.0.0.2:11211"}, {Addr: "10.0.0.3:11211"}}},
		{"one_at_a_time keys", HashOneAtATime, []Server{{Addr: "10.0.0.1:11211"}, {Addr: "10.0.0.2:11211"}, {Addr: "10.0.0.3:11211"}}},
	}
	keys := oracleKeys(10_000)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewKetamaSelector(tc.hash, tc.servers...)
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"pick", tc.hash.String()}
			for _, srv := range s.Servers() {
				args = append(args, srv.Addr+":"+strconv.Itoa(srv.Weight))
			}
			want := oracle(t, keys, args...)
			agree := 0
			for i, k := range keys {
				if strconv.Itoa(s.Primary(k)) == want[i] {
					agree++
				} else if agree+10 > i { // report the first few only
					t.Errorf("key %q: node %d, libmemcached says %s", k, s.Primary(k), want[i])
				}
			}
			t.Logf("%s: %d/%d keys agree with libmemcached", tc.name, agree, len(keys))
		})
	}
}

// TestKetamaStoreThroughLibmemcached writes keys through libmemcached's
// weighted ketama into three real memcached nodes, then checks that each key
// sits on exactly the node KetamaSelector names.
func TestKetamaStoreThroughLibmemcached(t *testing.T) {
	var servers []Server
	weights := []int{1, 1, 2}
	for _, w := range weights {
		servers = append(servers, Server{Addr: testutil.StartMemcached(t), Weight: w})
	}
	s, err := NewKetamaSelector(HashMD5, servers...)
	if err != nil {
		t.Fatal(err)
	}
	keys := oracleKeys(3000)[:3000]
	args := []string{"store"}
	for _, srv := range servers {
		args = append(args, srv.Addr+":"+strconv.Itoa(srv.Weight))
	}
	oracle(t, keys, args...)

	direct := make([]*memcache.Client, len(servers))
	for i, srv := range servers {
		direct[i] = memcache.New(srv.Addr)
	}
	perNode := make([]int, len(servers))
	for _, k := range keys {
		want := s.Primary(k)
		for i, mc := range direct {
			_, err := mc.Get(k)
			switch {
			case i == want && err != nil:
				t.Fatalf("key %q not on node %d (KetamaSelector's pick): %v", k, i, err)
			case i != want && err == nil:
				t.Fatalf("key %q found on node %d, KetamaSelector says %d", k, i, want)
			}
		}
		perNode[want]++
	}
	t.Logf("%d keys stored by libmemcached, all found on KetamaSelector's node; per node %v (weights %v)", len(keys), perNode, weights)
}
