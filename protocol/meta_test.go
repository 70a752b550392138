package protocol

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

func parseMetaLine(t testing.TB, line string) (*MetaFlags, error) {
	t.Helper()
	var r Request
	if _, err := ParseLine([]byte(line), &r, 1<<20); err != nil {
		return nil, err
	}
	var m MetaFlags
	err := ParseMeta(&r, make([]byte, 0, MaxKeyLength), &m)
	return &m, err
}

func TestParseMetaTable(t *testing.T) {
	long := strings.Repeat("a", 251)
	tests := []struct {
		line string
		err  error
		size int
		key  string
		has  string // flags that must be present
		chk  func(*MetaFlags) string
	}{
		{line: "mg k\r\n", size: -1, key: "k"},
		{line: "mg\r\n", err: ErrUnknownCommand, size: -1},
		{line: "mg " + long + " v\r\n", err: ErrBadFormat, size: -1},
		{line: "mg k v s f t c h l k Oab q u\r\n", size: -1, key: "k", has: "vsftchlkOqu",
			chk: func(m *MetaFlags) string {
				if string(m.Opaque) != "Oab" || !m.Quiet || string(m.Order()) != "vsftchlkOqu" {
					return fmt.Sprintf("opaque %q order %q", m.Opaque, m.Order())
				}
				return ""
			}},
		{line: "mg k E13\r\n", err: ErrMetaInvalidFlag, size: -1},
		{line: "mg k T30 N-5 R+7 C12\r\n", size: -1, key: "k", has: "TNRC",
			chk: func(m *MetaFlags) string {
				if m.TTL != 30 || m.Vivify != -5 || m.Recache != 7 || m.CAS != 12 {
					return fmt.Sprintf("%+v", *m)
				}
				return ""
			}},
		{line: "mg k T2147483648\r\n", size: -1, key: "k", chk: func(m *MetaFlags) string {
			if m.TTL != -2147483648 { // safe_strtol truncates into an int32
				return fmt.Sprint(m.TTL)
			}
			return ""
		}},
		{line: "mg k zz\r\n", err: ErrMetaInvalidFlag, size: -1},
		{line: "mg k k k\r\n", err: ErrMetaDuplicateFlag, size: -1},
		{line: "mg k \xff\r\n", err: ErrMetaDuplicateFlag, size: -1},
		{line: "mg k Tx\r\n", err: ErrMetaBadToken, size: -1},
		{line: "mg k T\r\n", err: ErrMetaBadToken, size: -1},
		{line: "mg k Nx Fx b\r\n", err: ErrMetaDecodeKey, size: -1},
		{line: "mg k O12345678901234567890123456789012\r\n", err: ErrMetaOpaqueTooLong, size: -1},
		{line: "mg k O1234567890123456789012345678901\r\n", size: -1, key: "k"},
		{line: "mg k 0 1 2 3 4 5 6 7 8 9 a b c d e f g h\r\n", err: ErrMetaGetTooManyOpts, size: -1},
		{line: "mg Zm9v b k\r\n", size: -1, key: "foo", has: "bk"},
		{line: "mg Zh== b\r\n", size: -1, key: "f"},
		{line: "mg Zg==Zm9v b\r\n", size: -1, key: "f"},
		{line: "mg Zm9v! b\r\n", size: -1, key: "foo"},
		{line: "mg Z=== b\r\n", err: ErrMetaDecodeKey, size: -1},
		{line: "ms k 2\r\n", size: 2, key: "k"},
		{line: "ms k\r\n", err: ErrBadFormat, size: -1},
		{line: "ms k -1\r\n", err: ErrBadFormat, size: -1},
		{line: "ms k x\r\n", err: ErrBadFormat, size: -1},
		{line: "ms " + long + " 1\r\n", err: ErrBadFormat, size: -1},
		{line: "ms k 1 zz\r\n", err: ErrMetaInvalidFlag, size: 1},
		{line: "ms k 1 Fx\r\n", err: ErrBadFormat, size: 1},
		{line: "ms k 1 Fx T\r\n", err: ErrMetaBadToken, size: 1},
		{line: "ms k 1 T Fx\r\n", err: ErrMetaBadToken, size: 1},
		{line: "ms k 1 MX\r\n", err: ErrMetaSetMode, size: 1},
		{line: "ms k 1 Ma\r\n", err: ErrMetaSetMode, size: 1},
		{line: "ms k 1 MAA\r\n", err: ErrMetaMTokenLength, size: 1},
		{line: "ms k 1 a b c d e f g h i j k l m n o p q\r\n", err: ErrMetaTooManyOpts, size: -1},
		{line: "ms k 3 F4294967296 MA I c\r\n", size: 3, key: "k", has: "FMIc", chk: func(m *MetaFlags) string {
			if m.Flags != 0 || m.Mode != 'A' {
				return fmt.Sprintf("%+v", *m)
			}
			return ""
		}},
		{line: "md k zz\r\n", err: ErrMetaInvalidOrDup, size: -1},
		{line: "md k Tx\r\n", err: ErrMetaInvalidOrDup, size: -1},
		{line: "md k I T30 x q C5\r\n", size: -1, key: "k", has: "ITxqC"},
		{line: "ma k Dx\r\n", err: ErrMetaInvalidOrDup, size: -1},
		{line: "ma k MX\r\n", err: ErrMetaArithMode, size: -1},
		{line: "ma k Md\r\n", err: ErrMetaArithMode, size: -1},
		{line: "ma k MD D5 J7 N0\r\n", size: -1, key: "k", chk: func(m *MetaFlags) string {
			if m.Mode != 'D' || m.Delta != 5 || m.Initial != 7 {
				return fmt.Sprintf("%+v", *m)
			}
			return ""
		}},
		{line: "ma k\r\n", size: -1, key: "k", chk: func(m *MetaFlags) string {
			if m.Delta != 1 {
				return "default delta"
			}
			return ""
		}},
		{line: "me\r\n", err: ErrBadFormat, size: -1},
		{line: "me Zm9v b\r\n", size: -1, key: "foo"},
		{line: "me k b\r\n", err: ErrBadFormat, size: -1},
		{line: "me k zz k\r\n", size: -1, key: "k"},
	}
	for _, tt := range tests {
		m, err := parseMetaLine(t, tt.line)
		if err != tt.err {
			t.Errorf("%q: err %v, want %v", tt.line, err, tt.err)
			continue
		}
		if m == nil {
			continue
		}
		if m.Size != tt.size {
			t.Errorf("%q: size %d, want %d", tt.line, m.Size, tt.size)
		}
		if err != nil {
			continue
		}
		if string(m.Key) != tt.key {
			t.Errorf("%q: key %q, want %q", tt.line, m.Key, tt.key)
		}
		for _, c := range []byte(tt.has) {
			if !m.Has(c) {
				t.Errorf("%q: flag %c missing", tt.line, c)
			}
		}
		if tt.chk != nil {
			if s := tt.chk(m); s != "" {
				t.Errorf("%q: %s", tt.line, s)
			}
		}
	}
}

func TestBase64RoundTrip(t *testing.T) {
	for _, s := range []string{"f", "fo", "foo", "foob", "\x00\x01\xff", strings.Repeat("z", 187)} {
		enc := AppendBase64(nil, []byte(s))
		if want := base64.StdEncoding.EncodeToString([]byte(s)); string(enc) != want {
			t.Fatalf("encode %q: %q, want %q", s, enc, want)
		}
		dst := make([]byte, len(enc))
		n, ok := DecodeBase64Key(dst, enc)
		if !ok || string(dst[:n]) != s {
			t.Fatalf("decode %q: %q %v", enc, dst[:n], ok)
		}
	}
}

func TestMetaEncoders(t *testing.T) {
	m, err := parseMetaLine(t, "mg Zm9v b k O99 c v\r\n")
	if err != nil {
		t.Fatal(err)
	}
	w := AppendMetaHeader(nil, MetaHD, true, 2)
	w = AppendMetaUint(w, 'c', 5)
	w = m.AppendOpaque(w)
	w = AppendMetaKey(w, m.Key, m.Base64)
	w = AppendMetaFlag(w, 'W')
	w = AppendMetaEnd(w, []byte("hi"), true)
	if got := string(w); got != "VA 2 c5 O99 kZm9v b W\r\nhi\r\n" {
		t.Fatalf("got %q", got)
	}
	w = append([]byte(nil), MetaNS...)
	w = m.AppendStatusFlags(w, m.Key, 0, true)
	if got := string(AppendMetaEnd(w, nil, false)); got != "NS kZm9v b O99 c0\r\n" {
		t.Fatalf("got %q", got)
	}
}

// describeStream parses every complete request of buf (meta and others)
// and describes it; it returns the description and the bytes consumed.
func describeStream(buf []byte) (string, int) {
	var sb strings.Builder
	var r Request
	var m MetaFlags
	kb := make([]byte, MaxKeyLength)
	pos := 0
	for pos < len(buf) {
		n, err := ParseLine(buf[pos:], &r, 1<<20)
		if err == ErrIncomplete {
			break
		}
		if err != nil && err != ErrLineTooLong {
			if _, ok := err.(Reply); !ok {
				break
			}
			fmt.Fprintf(&sb, "E(%v)", err)
			pos += n
			continue
		}
		if err == ErrLineTooLong {
			sb.WriteString("TOOLONG")
			return sb.String(), len(buf)
		}
		switch r.Command {
		case CmdMetaGet, CmdMetaSet, CmdMetaDelete, CmdMetaArith, CmdMetaDebug:
			perr := ParseMeta(&r, kb, &m)
			if r.Command == CmdMetaSet && m.Size >= 0 {
				if len(buf[pos+n:]) < m.Size+2 {
					return sb.String(), pos
				}
				data, dn, derr := ParseData(buf[pos+n:], m.Size)
				fmt.Fprintf(&sb, "ms(%q %q %v %v %q)", m.Key, m.Order(), perr, derr, data)
				pos += n + dn
				continue
			}
			fmt.Fprintf(&sb, "%d(%q %q %v %d %d)", r.Command, m.Key, m.Order(), perr, m.TTL, m.CAS)
		default:
			fmt.Fprintf(&sb, "cmd%d", r.Command)
		}
		pos += n
	}
	return sb.String(), pos
}

const metaStream = "mg k v s f t\r\nms Zm9v 5 b T30 c k O1\r\nhello\r\nmg Zm9v b k v\r\n" +
	"md k q I T10\r\nma n N0 J5 D2 MD v\r\nmn\r\nmg k zz\r\nms k 2 zz\r\nhi\r\n" +
	"ms k 3 q\r\nabc\r\nme k\r\nms k 2\r\nhiX\r\nmg k O1 q\r\n"

func TestMetaSplitInput(t *testing.T) {
	in := []byte(metaStream)
	want, n := describeStream(in)
	if n != len(in) {
		t.Fatalf("whole stream: consumed %d of %d", n, len(in))
	}
	for cut := 0; cut <= len(in); cut++ {
		// Feed the first cut bytes, keep what is left, then the rest.
		first, used := describeStream(in[:cut])
		rest := append(append([]byte(nil), in[used:cut]...), in[cut:]...)
		second, n2 := describeStream(rest)
		if first+second != want || used+n2 != len(in) {
			t.Fatalf("cut at %d:\n got %s%s\nwant %s", cut, first, second, want)
		}
	}
}

func FuzzMeta(f *testing.F) {
	f.Add([]byte(metaStream))
	f.Add([]byte("mg Zm9v b k v\r\n"))
	f.Add([]byte("ms k 2 T-1 F5 C9 I MA N30\r\nhi\r\n"))
	f.Add([]byte("ma k MD D18446744073709551615 J1 N0 q O123\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		desc, n := describeStream(in)
		if n > len(in) {
			t.Fatalf("consumed %d of %d", n, len(in))
		}
		// Same result when fed one byte short, then completed.
		if len(in) > 0 && !strings.Contains(desc, "TOOLONG") {
			first, used := describeStream(in[:len(in)-1])
			rest := append(append([]byte(nil), in[used:len(in)-1]...), in[len(in)-1])
			second, _ := describeStream(rest)
			// A long line closes the connection only when it arrives
			// without its newline, as in memcached.
			if first+second != desc && !strings.Contains(first, "TOOLONG") {
				t.Fatalf("split differs:\n%s%s\n%s", first, second, desc)
			}
		}
		// A key decoded from base64 is never longer than its token, and
		// re-encoding it decodes to the same bytes.
		var r Request
		if _, err := ParseLine(in, &r, 1<<20); err == nil && r.Key != nil {
			dst := make([]byte, len(r.Key))
			if k, ok := DecodeBase64Key(dst, r.Key); ok {
				enc := AppendBase64(nil, dst[:k])
				back := make([]byte, len(enc))
				k2, ok2 := DecodeBase64Key(back, enc)
				if !ok2 || !bytes.Equal(back[:k2], dst[:k]) {
					t.Fatalf("base64 round trip of %q", r.Key)
				}
			}
		}
	})
}

func BenchmarkMetaGetParseEncode(b *testing.B) {
	line := []byte("mg some:key:12345 v f t c k O42 s\r\n")
	value := []byte("0123456789abcdef")
	var r Request
	var m MetaFlags
	kb := make([]byte, MaxKeyLength)
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLine(line, &r, 1<<20); err != nil {
			b.Fatal(err)
		}
		if err := ParseMeta(&r, kb, &m); err != nil {
			b.Fatal(err)
		}
		w := AppendMetaHeader(out[:0], MetaHD, m.Has('v'), len(value))
		for _, c := range m.Order() {
			switch c {
			case 'f':
				w = AppendMetaUint(w, 'f', 5)
			case 't':
				w = AppendMetaInt(w, 't', -1)
			case 'c':
				w = AppendMetaUint(w, 'c', 123456)
			case 's':
				w = AppendMetaUint(w, 's', uint64(len(value)))
			case 'O':
				w = m.AppendOpaque(w)
			case 'k':
				w = AppendMetaKey(w, m.Key, m.Base64)
			}
		}
		out = AppendMetaEnd(w, value, true)
	}
}

func BenchmarkMetaSetParseEncode(b *testing.B) {
	req := []byte("ms c29tZTprZXk6MTIzNDU= 16 b T300 F7 c k O42\r\n0123456789abcdef\r\n")
	var r Request
	var m MetaFlags
	kb := make([]byte, MaxKeyLength)
	out := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		n, err := ParseLine(req, &r, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if err := ParseMeta(&r, kb, &m); err != nil {
			b.Fatal(err)
		}
		if _, _, err := ParseData(req[n:], m.Size); err != nil {
			b.Fatal(err)
		}
		w := append(out[:0], MetaHD...)
		w = m.AppendStatusFlags(w, m.Key, 99, true)
		out = AppendMetaEnd(w, nil, false)
	}
}
