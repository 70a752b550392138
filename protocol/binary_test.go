package protocol

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func ext32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func arithExt(delta, initial uint64, exp uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, delta)
	b = binary.BigEndian.AppendUint64(b, initial)
	return binary.BigEndian.AppendUint32(b, exp)
}

// withLens rewrites a request's key, extras and body lengths.
func withLens(req []byte, keyLen, extLen, bodyLen int) []byte {
	b := bytes.Clone(req)
	binary.BigEndian.PutUint16(b[2:], uint16(keyLen))
	b[4] = byte(extLen)
	binary.BigEndian.PutUint32(b[8:], uint32(bodyLen))
	return b
}

func TestParseBinHeader(t *testing.T) {
	raw := []byte{0x80, 0x01, 0x00, 0x03, 0x08, 0x01, 0x12, 0x34, 0, 0, 0, 0x10,
		0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0x01, 0x02}
	var h BinHeader
	if ParseBinHeader(raw[:23], &h) {
		t.Fatal("23 bytes parsed as a header")
	}
	if !ParseBinHeader(raw, &h) {
		t.Fatal("24 bytes not parsed")
	}
	want := BinHeader{Magic: 0x80, Opcode: 1, KeyLen: 3, ExtLen: 8, DataType: 1, VBucket: 0x1234,
		BodyLen: 16, Opaque: 0xdeadbeef, CAS: 0x102}
	if h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
}

func TestParseBinRequest(t *testing.T) {
	k := []byte("key")
	set := AppendBinRequest(nil, OpSet, 7, 9, ext32(1, 2), k, []byte("value"))
	tests := []struct {
		name    string
		in      []byte
		need    int
		err     error
		keyEnd  int
		valLen  int
		status  BinStatus
		command uint8
		quiet   bool
	}{
		{name: "empty", in: nil, need: 24, err: ErrIncomplete},
		{name: "short header", in: set[:10], need: 24, err: ErrIncomplete},
		{name: "header only", in: set[:24], need: 24 + 8 + 3, err: ErrIncomplete},
		{name: "key missing a byte", in: set[:34], need: 35, err: ErrIncomplete},
		{name: "set without value", in: set[:35], keyEnd: 35, valLen: 5, command: OpSet},
		{name: "set", in: set, keyEnd: 35, valLen: 5, command: OpSet},
		{name: "bad magic", in: append([]byte{0x81}, set[1:]...), err: ErrBadMagic},
		{name: "key longer than body", in: withLens(set, 3, 8, 2), err: ErrBinLengths},
		{name: "key and extras longer than body", in: withLens(set, 3, 8, 10), err: ErrBinLengths},
		{name: "huge key waits", in: withLens(set, 65535, 255, 1<<31), need: 24 + 255 + 65535, err: ErrIncomplete},
		{name: "key too long", in: AppendBinRequest(nil, OpGet, 0, 0, nil, make([]byte, 251), nil),
			keyEnd: 24 + 251, status: StatusInvalid},
		{name: "key 250", in: AppendBinRequest(nil, OpGet, 0, 0, nil, make([]byte, 250), nil),
			keyEnd: 24 + 250, command: OpGet},
		{name: "getq", in: AppendBinRequest(nil, OpGetQ, 0, 0, nil, k, nil), keyEnd: 27, command: OpGet, quiet: true},
		{name: "getkq", in: AppendBinRequest(nil, OpGetKQ, 0, 0, nil, k, nil), keyEnd: 27, command: OpGetK, quiet: true},
		{name: "get with extras", in: AppendBinRequest(nil, OpGet, 0, 0, ext32(1), k, nil), keyEnd: 31, status: StatusInvalid},
		{name: "get without key", in: AppendBinRequest(nil, OpGet, 0, 0, nil, nil, nil), keyEnd: 24, status: StatusInvalid},
		{name: "get with value", in: AppendBinRequest(nil, OpGet, 0, 0, nil, k, []byte("x")), keyEnd: 27, valLen: 1, status: StatusInvalid},
		{name: "setq", in: AppendBinRequest(nil, OpSetQ, 0, 0, ext32(0, 0), k, nil), keyEnd: 35, command: OpSet, quiet: true},
		{name: "set short extras", in: AppendBinRequest(nil, OpSet, 0, 0, ext32(0), k, nil), keyEnd: 31, status: StatusInvalid},
		{name: "add no key", in: AppendBinRequest(nil, OpAdd, 0, 0, ext32(0, 0), nil, []byte("v")), keyEnd: 32, valLen: 1, status: StatusInvalid},
		{name: "replaceq", in: AppendBinRequest(nil, OpReplaceQ, 0, 0, ext32(0, 0), k, nil), keyEnd: 35, command: OpReplace, quiet: true},
		{name: "deleteq", in: AppendBinRequest(nil, OpDeleteQ, 0, 0, nil, k, nil), keyEnd: 27, command: OpDelete, quiet: true},
		{name: "incr", in: AppendBinRequest(nil, OpIncrement, 0, 0, arithExt(1, 2, 3), k, nil), keyEnd: 47, command: OpIncrement},
		{name: "decrq", in: AppendBinRequest(nil, OpDecrementQ, 0, 0, arithExt(1, 2, 3), k, nil), keyEnd: 47, command: OpDecrement, quiet: true},
		{name: "incr short extras", in: AppendBinRequest(nil, OpIncrement, 0, 0, ext32(1), k, nil), keyEnd: 31, status: StatusInvalid},
		{name: "quitq", in: AppendBinRequest(nil, OpQuitQ, 0, 0, nil, nil, nil), keyEnd: 24, command: OpQuit, quiet: true},
		{name: "quit with key", in: AppendBinRequest(nil, OpQuit, 0, 0, nil, k, nil), keyEnd: 27, status: StatusInvalid},
		{name: "flush", in: AppendBinRequest(nil, OpFlush, 0, 0, nil, nil, nil), keyEnd: 24, command: OpFlush},
		{name: "flushq delay", in: AppendBinRequest(nil, OpFlushQ, 0, 0, ext32(10), nil, nil), keyEnd: 28, command: OpFlush, quiet: true},
		{name: "flush bad extras", in: AppendBinRequest(nil, OpFlush, 0, 0, ext32(1, 2), nil, nil), keyEnd: 32, status: StatusInvalid},
		{name: "noop", in: AppendBinRequest(nil, OpNoop, 0, 0, nil, nil, nil), keyEnd: 24, command: OpNoop},
		{name: "noop with body", in: AppendBinRequest(nil, OpNoop, 0, 0, nil, nil, []byte("x")), keyEnd: 24, valLen: 1, status: StatusInvalid},
		{name: "version", in: AppendBinRequest(nil, OpVersion, 0, 0, nil, nil, nil), keyEnd: 24, command: OpVersion},
		{name: "getk", in: AppendBinRequest(nil, OpGetK, 0, 0, nil, k, nil), keyEnd: 27, command: OpGetK},
		{name: "appendq", in: AppendBinRequest(nil, OpAppendQ, 0, 0, nil, k, []byte("v")), keyEnd: 27, valLen: 1, command: OpAppend, quiet: true},
		{name: "prepend with extras", in: AppendBinRequest(nil, OpPrepend, 0, 0, ext32(0), k, nil), keyEnd: 31, status: StatusInvalid},
		{name: "prependq", in: AppendBinRequest(nil, OpPrependQ, 0, 0, nil, k, nil), keyEnd: 27, command: OpPrepend, quiet: true},
		{name: "stat", in: AppendBinRequest(nil, OpStat, 0, 0, nil, nil, nil), keyEnd: 24, command: OpStat},
		{name: "stat group", in: AppendBinRequest(nil, OpStat, 0, 0, nil, []byte("items"), nil), keyEnd: 29, command: OpStat},
		{name: "verbosity unknown", in: AppendBinRequest(nil, OpVerbosity, 0, 0, ext32(1), nil, nil), keyEnd: 28, status: StatusUnknownCommand},
		{name: "touch", in: AppendBinRequest(nil, OpTouch, 0, 0, ext32(1), k, nil), keyEnd: 31, command: OpTouch},
		{name: "touch no extras", in: AppendBinRequest(nil, OpTouch, 0, 0, nil, k, nil), keyEnd: 27, status: StatusInvalid},
		{name: "gatq", in: AppendBinRequest(nil, OpGATQ, 0, 0, ext32(1), k, nil), keyEnd: 31, command: OpGAT, quiet: true},
		{name: "gatkq", in: AppendBinRequest(nil, OpGATKQ, 0, 0, ext32(1), k, nil), keyEnd: 31, command: OpGATK, quiet: true},
		{name: "gatk", in: AppendBinRequest(nil, OpGATK, 0, 0, ext32(1), k, nil), keyEnd: 31, command: OpGATK},
		{name: "list mechs", in: AppendBinRequest(nil, OpSASLListMechs, 0, 0, nil, nil, nil), keyEnd: 24, command: OpSASLListMechs},
		{name: "sasl auth", in: AppendBinRequest(nil, OpSASLAuth, 0, 0, nil, []byte("PLAIN"), []byte("\x00u\x00p")), keyEnd: 29, valLen: 4, command: OpSASLAuth},
		{name: "sasl step no mech", in: AppendBinRequest(nil, OpSASLStep, 0, 0, nil, nil, []byte("x")), keyEnd: 24, valLen: 1, status: StatusInvalid},
		{name: "unknown", in: AppendBinRequest(nil, 0x50, 0, 0, []byte("x"), k, []byte("abc")), keyEnd: 28, valLen: 3, status: StatusUnknownCommand},
		{name: "unassigned 0x1f", in: AppendBinRequest(nil, 0x1f, 0, 0, nil, nil, nil), keyEnd: 24, status: StatusUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r BinRequest
			need, err := ParseBinRequest(tt.in, &r)
			if err != tt.err || need != tt.need {
				t.Fatalf("ParseBinRequest = %d, %v; want %d, %v", need, err, tt.need, tt.err)
			}
			if err != nil {
				return
			}
			if r.KeyEnd() != tt.keyEnd || r.ValueLen != tt.valLen {
				t.Fatalf("KeyEnd %d ValueLen %d; want %d %d", r.KeyEnd(), r.ValueLen, tt.keyEnd, tt.valLen)
			}
			if st := r.Validate(); st != tt.status {
				t.Fatalf("Validate = %#x, want %#x", st, tt.status)
			}
			if tt.status == StatusOK && (r.Command != tt.command || r.Quiet != tt.quiet) {
				t.Fatalf("command %#x quiet %v; want %#x %v", r.Command, r.Quiet, tt.command, tt.quiet)
			}
		})
	}
}

func TestBinExtras(t *testing.T) {
	var r BinRequest
	buf := AppendBinRequest(nil, OpSet, 0, 0, ext32(0xdeadbeef, 3600), []byte("k"), nil)
	if _, err := ParseBinRequest(buf, &r); err != nil {
		t.Fatal(err)
	}
	if f, e := r.SetExtras(); f != 0xdeadbeef || e != 3600 {
		t.Fatalf("SetExtras = %#x, %d", f, e)
	}
	buf = AppendBinRequest(nil, OpIncrement, 0, 0, arithExt(5, 1<<40, NoInitialExptime), []byte("k"), nil)
	if _, err := ParseBinRequest(buf, &r); err != nil {
		t.Fatal(err)
	}
	if d, i, e := r.ArithExtras(); d != 5 || i != 1<<40 || e != NoInitialExptime {
		t.Fatalf("ArithExtras = %d, %d, %#x", d, i, e)
	}
	buf = AppendBinRequest(nil, OpFlush, 0, 0, ext32(77), nil, nil)
	if _, err := ParseBinRequest(buf, &r); err != nil {
		t.Fatal(err)
	}
	if e := r.ExptimeExtras(); e != 77 {
		t.Fatalf("ExptimeExtras = %d", e)
	}
	// Short extras decode as zero rather than panic.
	buf = AppendBinRequest(nil, OpFlush, 0, 0, nil, nil, nil)
	if _, err := ParseBinRequest(buf, &r); err != nil {
		t.Fatal(err)
	}
	if f, e := r.SetExtras(); f != 0 || e != 0 {
		t.Fatal("SetExtras of no extras")
	}
	if d, i, e := r.ArithExtras(); d != 0 || i != 0 || e != 0 {
		t.Fatal("ArithExtras of no extras")
	}
	if r.ExptimeExtras() != 0 {
		t.Fatal("ExptimeExtras of no extras")
	}
}

func TestBinResponseEncoding(t *testing.T) {
	hdr := func(op uint8, status uint16, extLen, keyLen, bodyLen int, opaque uint32, cas uint64) []byte {
		b := []byte{0x81, op, byte(keyLen >> 8), byte(keyLen), byte(extLen), 0, byte(status >> 8), byte(status)}
		b = binary.BigEndian.AppendUint32(b, uint32(bodyLen))
		b = binary.BigEndian.AppendUint32(b, opaque)
		return binary.BigEndian.AppendUint64(b, cas)
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"error", AppendBinError(nil, OpGet, StatusKeyNotFound, 5), cat(hdr(0, 1, 0, 0, 9, 5, 0), []byte("Not found"))},
		{"auth error", AppendBinError(nil, OpNoop, StatusAuthError, 1), cat(hdr(0x0a, 0x20, 0, 0, 13, 1, 0), []byte("Auth failure."))},
		{"empty ok", AppendBinHeader(nil, OpSet, StatusOK, 0, 0, 0, 9, 42), hdr(1, 0, 0, 0, 0, 9, 42)},
		{"version", AppendBinString(nil, OpVersion, StatusOK, 3, "1.6.18"), cat(hdr(0x0b, 0, 0, 0, 6, 3, 0), []byte("1.6.18"))},
		{"get hit", AppendBinValue(nil, OpGet, 2, 77, 0xdead, nil, []byte("hello")),
			cat(hdr(0, 0, 4, 0, 9, 2, 77), []byte{0, 0, 0xde, 0xad}, []byte("hello"))},
		{"getk hit", AppendBinValue(nil, OpGetK, 2, 77, 1, []byte("k"), []byte("v")),
			cat(hdr(0x0c, 0, 4, 1, 6, 2, 77), []byte{0, 0, 0, 1, 'k', 'v'})},
		{"touch hit", AppendBinValue(nil, OpTouch, 2, 77, 1, nil, nil), cat(hdr(0x1c, 0, 4, 0, 4, 2, 77), []byte{0, 0, 0, 1})},
		{"counter", AppendBinCounter(nil, OpIncrement, 4, 8, 10), cat(hdr(5, 0, 0, 0, 8, 4, 8), []byte{0, 0, 0, 0, 0, 0, 0, 10})},
		{"stat", AppendBinStat(nil, 6, []byte("pid"), []byte("12")), cat(hdr(0x10, 0, 0, 3, 5, 6, 0), []byte("pid12"))},
		{"stat end", AppendBinStat(nil, 6, nil, nil), hdr(0x10, 0, 0, 0, 0, 6, 0)},
		{"request", AppendBinRequest(nil, OpSet, 1, 2, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte("k"), []byte("v")),
			cat([]byte{0x80, 1, 0, 1, 8, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 'k', 'v'})},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got %x\nwant %x", tt.name, tt.got, tt.want)
		}
	}
}

func TestBinStatusMessages(t *testing.T) {
	for st, msg := range map[BinStatus]string{
		StatusOutOfMemory: "Out of memory", StatusUnknownCommand: "Unknown command",
		StatusKeyNotFound: "Not found", StatusInvalid: "Invalid arguments",
		StatusKeyExists: "Data exists for key.", StatusTooLarge: "Too large.",
		StatusDeltaBadValue: "Non-numeric server-side value for incr or decr",
		StatusNotStored:     "Not stored.", StatusAuthError: "Auth failure.",
		StatusOK: "", StatusAuthContinue: "",
	} {
		if got := st.Message(); got != msg {
			t.Errorf("%#x: %q, want %q", st, got, msg)
		}
	}
}

func TestAppendBinStatsFromText(t *testing.T) {
	text := []byte("STAT pid 12\r\nSTAT version 1.6.18\r\nEND\r\nSTAT empty \r\nSTAT novalue\r\nSTAT rusage_user 0.1 2\r\nSTAT last 1")
	got := AppendBinStatsFromText(nil, 9, text)
	var want []byte
	for _, kv := range [][2]string{{"pid", "12"}, {"version", "1.6.18"}, {"empty", ""}, {"novalue", ""}, {"rusage_user", "0.1 2"}, {"last", "1"}} {
		want = AppendBinStat(want, 9, []byte(kv[0]), []byte(kv[1]))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// TestBinSplitInput cuts each request of a pipeline at every byte: every
// prefix shorter than the part memcached reads before acting (header,
// extras, key) must be incomplete with a need that grows toward it, and
// never ask for more than the request holds.
func TestBinSplitInput(t *testing.T) {
	reqs := [][]byte{
		AppendBinRequest(nil, OpGet, 1, 0, nil, []byte("key"), nil),
		AppendBinRequest(nil, OpSetQ, 2, 5, ext32(1, 2), []byte("key"), []byte("some value")),
		AppendBinRequest(nil, OpIncrement, 3, 0, arithExt(1, 2, 3), []byte("counter"), nil),
		AppendBinRequest(nil, OpNoop, 4, 0, nil, nil, nil),
		AppendBinRequest(nil, OpStat, 5, 0, nil, []byte("items"), nil),
		AppendBinRequest(nil, OpSASLAuth, 6, 0, nil, []byte("PLAIN"), []byte("\x00u\x00pw")),
	}
	for _, full := range reqs {
		var r BinRequest
		for cut := 0; cut <= len(full); cut++ {
			need, err := ParseBinRequest(full[:cut], &r)
			if err == ErrIncomplete {
				if need <= cut || need > len(full) {
					t.Fatalf("op %#x cut %d: need %d", full[1], cut, need)
				}
				continue
			}
			if err != nil {
				t.Fatalf("op %#x cut %d: %v", full[1], cut, err)
			}
			if cut < r.KeyEnd() {
				t.Fatalf("op %#x cut %d: parsed before the key end %d", full[1], cut, r.KeyEnd())
			}
			if r.Validate() != StatusOK || r.Len() != len(full) {
				t.Fatalf("op %#x cut %d: status %#x len %d", full[1], cut, r.Validate(), r.Len())
			}
			value := full[r.KeyEnd():]
			if !bytes.Equal(AppendBinRequest(nil, r.Opcode, r.Opaque, r.CAS, r.Extras, r.Key, value), full) {
				t.Fatalf("op %#x cut %d: parts do not rebuild the request", full[1], cut)
			}
		}
	}
}

func TestBinZeroAlloc(t *testing.T) {
	get := AppendBinRequest(nil, OpGetK, 1, 0, nil, []byte("key"), nil)
	set := AppendBinRequest(nil, OpSet, 1, 0, ext32(1, 2), []byte("key"), []byte("value"))
	text := []byte("STAT pid 1\r\nSTAT uptime 2\r\n")
	dst := make([]byte, 0, 4096)
	var r BinRequest
	allocs := testing.AllocsPerRun(100, func() {
		for _, b := range [][]byte{get, set} {
			if _, err := ParseBinRequest(b, &r); err != nil || r.Validate() != StatusOK {
				panic("bad request")
			}
			r.SetExtras()
		}
		d := AppendBinValue(dst[:0], OpGetK, 1, 2, 3, r.Key, []byte("value"))
		d = AppendBinError(d, OpGet, StatusKeyNotFound, 1)
		d = AppendBinCounter(d, OpIncrement, 1, 2, 3)
		d = AppendBinString(d, OpVersion, StatusOK, 1, "1.6.18")
		d = AppendBinStatsFromText(d, 1, text)
		_ = AppendBinStat(d, 1, nil, nil)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}

// FuzzBinary parses arbitrary input as a stream of binary requests the
// way the server does. It must never panic, never ask for more than a
// header, extras and 64 KiB key, and what it parses must rebuild.
func FuzzBinary(f *testing.F) {
	f.Add(AppendBinRequest(nil, OpGet, 1, 0, nil, []byte("key"), nil))
	f.Add(AppendBinRequest(nil, OpSet, 1, 5, ext32(1, 2), []byte("k"), []byte("v")))
	f.Add(AppendBinRequest(nil, OpIncrementQ, 1, 0, arithExt(1, 2, NoInitialExptime), []byte("k"), nil))
	f.Add(withLens(AppendBinRequest(nil, OpGet, 1, 0, nil, []byte("key"), nil), 3, 0, 1))
	f.Add([]byte{0x80, 0x50, 0xff, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var r BinRequest
		for len(data) > 0 {
			need, err := ParseBinRequest(data, &r)
			switch err {
			case ErrIncomplete:
				if need <= len(data) || need > BinHeaderLen+255+65535 {
					t.Fatalf("need %d with %d bytes", need, len(data))
				}
				return
			case ErrBadMagic, ErrBinLengths:
				return
			case nil:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			if r.KeyEnd() > len(data) || r.ValueLen < 0 || r.KeyEnd()+r.ValueLen != r.Len() {
				t.Fatalf("bad lengths: keyEnd %d valueLen %d len %d buf %d", r.KeyEnd(), r.ValueLen, r.Len(), len(data))
			}
			st := r.Validate()
			switch st {
			case StatusOK:
				if r.KeyLen > MaxKeyLength {
					t.Fatalf("key of %d accepted", r.KeyLen)
				}
			case StatusInvalid, StatusUnknownCommand:
			default:
				t.Fatalf("status %#x", st)
			}
			r.SetExtras()
			r.ArithExtras()
			r.ExptimeExtras()
			if r.Len() <= len(data) && r.DataType == 0 && r.VBucket == 0 {
				re := AppendBinRequest(nil, r.Opcode, r.Opaque, r.CAS, r.Extras, r.Key, data[r.KeyEnd():r.Len()])
				if !bytes.Equal(re, data[:r.Len()]) {
					t.Fatalf("rebuilt %x, want %x", re, data[:r.Len()])
				}
			}
			data = data[r.KeyEnd():]
		}
	})
}
