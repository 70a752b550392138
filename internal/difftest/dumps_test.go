package difftest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
)

// dumpLoad stores keys of every kind a key dump encodes differently: plain,
// needing URI escapes, set in base64 (a space), control bytes, several
// classes (a chunked one too), fetched and not, expired and deleted ones
// that no dump lists; then bulk items, enough for dumps to flush their
// output many times on the way.
func dumpLoad(bulk int) []string {
	reqs := []string{
		"set a 0 0 1\r\n1\r\n",
		fmt.Sprintf("set flagged 4294967295 %d 5\r\nhello\r\n", time.Now().Unix()+1000),
		"set k\xc3\xa9y%+~._- 0 0 1\r\nz\r\n",
		"ms Zm9vIGJhcg== 2 b\r\nhi\r\n",
		"set bin\x01\x7f 0 0 1\r\nq\r\n",
		"set mid 0 0 300\r\n" + strings.Repeat("y", 300) + "\r\n",
		"set big 0 0 3000\r\n" + strings.Repeat("x", 3000) + "\r\n",
		"set huge 0 0 600000\r\n" + strings.Repeat("h", 600000) + "\r\n",
		"set fetched 0 0 1\r\nf\r\nget fetched\r\n",
		"set gone 0 0 1\r\nf\r\ndelete gone\r\n",
		"set neg 0 -1 1\r\nf\r\n",
	}
	var b strings.Builder
	for i := range bulk {
		// Small values fall in class 1 on both servers, the others in
		// neither, so that "metadump 1" lists the same keys.
		n := i % 5
		if i%2 == 1 {
			n = 150 + i%100
		}
		fmt.Fprintf(&b, "set bulk/%05d %d 0 %d\r\n%s\r\n", i, i, n, strings.Repeat("v", n))
		if i%3 == 0 {
			fmt.Fprintf(&b, "mg bulk/%05d\r\n", i)
		}
	}
	return append(reqs, b.String())
}

// metadumpLine is a line of memcached's metadump; the key is URI-encoded.
var metadumpLine = regexp.MustCompile(`^key=(\S+) exp=\S+ la=\d+ cas=\d+ fetch=(?:yes|no) cls=\d+ size=\d+\n$`)

// TestKeyDumps loads the same items, thousands of them, into memcached and
// gocached and compares their metadumps, as dumps.txt does (la=, cls= and
// size= masked, lines sorted: see there why), and gocached's "lru_crawler
// mgdump" with memcached's metadump. memcached 1.6.18 has no mgdump
// (it answers ERROR); gocached follows the current protocol.txt. So
// memcached's "metadump ARG" reply is turned into the mgdump reply the
// protocol describes (each key as "mg <key>\r\n", or "mg <base64> b\r\n",
// and EN for END; refusals as they are) and gocached's "mgdump ARG" must
// equal it, lines sorted (see dumps.txt on dump order).
//
// Which keys go out in base64: newer memcached's mgdump encodes the keys
// that were set in base64 (its ITEM_KEY_BINARY bit); gocached's items do
// not record that, so it encodes the keys a text command could not carry
// back (a space, control bytes, bytes from 0x7f), which mgdump's reader
// decodes the same way.
func TestKeyDumps(t *testing.T) {
	const bulk = 3000
	// no_lru_maintainer: see dumps.txt on items listed twice otherwise.
	flags := []string{"-m", "64", "-o", "no_lru_maintainer"}
	ref := testutil.StartMemcached(t, flags...)
	mutate, err := configFromFlags(flags)
	if err != nil {
		t.Fatal(err)
	}
	sides := [2]*side{
		{name: "memcached", addr: ref, conns: map[int]net.Conn{}, closed: map[int]bool{}},
		{name: "gocached", addr: testutil.StartGocached(t, mutate), conns: map[int]net.Conn{}, closed: map[int]bool{}},
	}
	load := dumpLoad(bulk) // once: it holds the time
	for _, s := range sides {
		defer s.closeAll()
		for _, req := range load {
			if got := s.do(1, step{kind: stepSend}, []byte(req)); bytes.Contains(got, []byte("ERROR")) || bytes.Contains(got, []byte("NOT_STORED")) {
				t.Fatalf("%s: %.100q: %.200q", s.name, req, got)
			}
		}
	}
	for _, tc := range []struct {
		arg  string
		keys int // keys listed: a guard against both sides listing none
	}{
		{"all", 9 + bulk}, {"hash", 9 + bulk}, {"1", 6 + bulk/2}, {"1,63", 6 + bulk/2}, {"63", 0},
		{"0", 0}, {"64", 0}, {"x", 0}, {"1,x", 0}, {"ALL", 0}, {"all extra", 0}, {"", 0},
	} {
		arg := tc.arg
		name := strings.ReplaceAll(arg, " ", "_")
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			req := []byte(strings.TrimRight("lru_crawler metadump "+arg, " ") + "\r\n")
			meta := sides[0].do(1, step{kind: stepDump}, req)
			var masked [2][]byte
			for i, s := range sides {
				reply := meta
				if i > 0 {
					reply = s.do(1, step{kind: stepDump}, req)
				}
				masked[i] = sortRuns(dumpKeyLine, metadumpMask(reply))
			}
			if !bytes.Equal(masked[0], masked[1]) {
				t.Fatalf("metadump %s: %s", arg, diff([2]string{"memcached", "gocached"}, masked, false))
			}
			want, err := metadumpToMgdump(meta)
			if err != nil {
				t.Fatalf("memcached's metadump %s: %v\n%s", arg, err, render(meta))
			}
			got := sides[1].do(1, step{kind: stepDump}, []byte(strings.TrimRight("lru_crawler mgdump "+arg, " ")+"\r\n"))
			got = sortRuns(mgLine, got)
			if n := countLines(mgLine, want); n != tc.keys {
				t.Errorf("memcached's metadump %s lists %d keys, want %d:\n%s", arg, n, tc.keys, render(meta))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("mgdump %s: %s", arg, diff([2]string{"memcached's metadump as mgdump", "gocached"}, [2][]byte{want, got}, false))
			}
		})
	}
}

var (
	mgLine       = regexp.MustCompile(`^mg `)
	dumpKeyLine  = regexp.MustCompile(`^key=`)
	metadumpMask = regexpMask(regexp.MustCompile("(?m)" + maskAliases["metadump"]))
)

// countLines counts the lines of b that re matches.
func countLines(re *regexp.Regexp, b []byte) int {
	n := 0
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if re.Match(line) {
			n++
		}
	}
	return n
}

// metadumpToMgdump turns a metadump reply into the mgdump reply of the
// same items, its lines sorted.
func metadumpToMgdump(meta []byte) ([]byte, error) {
	var out []byte
	for _, line := range bytes.SplitAfter(meta, []byte("\n")) {
		m := metadumpLine.FindSubmatch(line)
		if m == nil {
			if string(line) == "END\r\n" {
				line = []byte("EN\r\n")
			}
			out = append(out, line...)
			continue
		}
		key, err := url.PathUnescape(string(m[1]))
		if err != nil {
			return nil, err
		}
		out = append(out, "mg "...)
		if needsBase64(key) {
			out = base64.StdEncoding.AppendEncode(out, []byte(key))
			out = append(out, " b"...)
		} else {
			out = append(out, key...)
		}
		out = append(out, "\r\n"...)
	}
	return sortRuns(mgLine, out), nil
}

// needsBase64 reports whether mgdump sends key in base64: when it holds a
// byte a text command cannot carry (a space or control byte) or one
// from 0x7f.
func needsBase64(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return true
		}
	}
	return false
}
