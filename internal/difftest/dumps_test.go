package difftest

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/gocached/gocached/internal/testutil"
)

// dumpLoad stores keys of every kind a key dump encodes differently: plain,
// needing URI escapes, set in base64 (a space), control bytes, several
// classes, fetched and not, expired, deleted and flushed ones that no dump
// lists.
var dumpLoad = []string{
	"set a 0 0 1\r\n1\r\n",
	"set flagged 4294967295 100 5\r\nhello\r\n",
	"set k\xc3\xa9y%+~._- 0 0 1\r\nz\r\n",
	"ms Zm9vIGJhcg== 2 b\r\nhi\r\n",
	"set bin\x01\x7f 0 0 1\r\nq\r\n",
	"set mid 0 0 300\r\n" + strings.Repeat("y", 300) + "\r\n",
	"set big 0 0 3000\r\n" + strings.Repeat("x", 3000) + "\r\n",
	"set fetched 0 0 1\r\nf\r\nget fetched\r\n",
	"set gone 0 0 1\r\nf\r\ndelete gone\r\n",
	"set neg 0 -1 1\r\nf\r\n",
}

// metadumpLine is a line of memcached's metadump; the key is URI-encoded.
var metadumpLine = regexp.MustCompile(`^key=(\S+) exp=\S+ la=\d+ cas=\d+ fetch=(?:yes|no) cls=\d+ size=\d+\n$`)

// TestMgdumpAgainstMetadump compares gocached's "lru_crawler mgdump" with
// memcached's metadump of the same items. memcached 1.6.18 has no mgdump
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
func TestMgdumpAgainstMetadump(t *testing.T) {
	ref := testutil.StartMemcached(t, defaultFlags...)
	mutate, err := configFromFlags(defaultFlags)
	if err != nil {
		t.Fatal(err)
	}
	sides := [2]*side{
		{name: "memcached", addr: ref, conns: map[int]net.Conn{}, closed: map[int]bool{}},
		{name: "gocached", addr: testutil.StartGocached(t, mutate), conns: map[int]net.Conn{}, closed: map[int]bool{}},
	}
	for _, s := range sides {
		defer s.closeAll()
		for _, req := range dumpLoad {
			if got := s.do(1, step{kind: stepSend}, []byte(req)); bytes.Contains(got, []byte("ERROR")) {
				t.Fatalf("%s: %q: %q", s.name, req, got)
			}
		}
	}
	for _, tc := range []struct {
		arg  string
		keys int // keys listed: a guard against both sides listing none
	}{
		{"all", 8}, {"hash", 8}, {"1", 6}, {"1,63", 6}, {"63", 0},
		{"0", 0}, {"64", 0}, {"x", 0}, {"1,x", 0}, {"ALL", 0}, {"all extra", 0}, {"", 0},
	} {
		arg := tc.arg
		name := strings.ReplaceAll(arg, " ", "_")
		if name == "" {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			meta := sides[0].do(1, step{kind: stepDump}, []byte(strings.TrimRight("lru_crawler metadump "+arg, " ")+"\r\n"))
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

var mgLine = regexp.MustCompile(`^mg `)

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
