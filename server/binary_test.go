package server_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/protocol"
	"github.com/gocached/gocached/server"
)

// binClient is a raw binary-protocol client.
type binClient struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

type binResp struct {
	protocol.BinHeader
	extras, key, value []byte
}

func (r binResp) status() protocol.BinStatus { return protocol.BinStatus(r.VBucket) }

func dialBin(t testing.TB, addr string) *binClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &binClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (b *binClient) send(reqs ...[]byte) {
	b.t.Helper()
	if _, err := b.c.Write(bytes.Join(reqs, nil)); err != nil {
		b.t.Fatal(err)
	}
}

func (b *binClient) read() (binResp, error) {
	_ = b.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [protocol.BinHeaderLen]byte
	var r binResp
	if _, err := io.ReadFull(b.r, hdr[:]); err != nil {
		return r, err
	}
	protocol.ParseBinHeader(hdr[:], &r.BinHeader)
	if r.Magic != protocol.BinResponseMagic {
		b.t.Fatalf("response magic %#x", r.Magic)
	}
	body := make([]byte, r.BodyLen)
	if _, err := io.ReadFull(b.r, body); err != nil {
		return r, err
	}
	e, k := int(r.ExtLen), int(r.KeyLen)
	r.extras, r.key, r.value = body[:e], body[e:e+k], body[e+k:]
	return r, nil
}

func (b *binClient) recv() binResp {
	b.t.Helper()
	r, err := b.read()
	if err != nil {
		b.t.Fatalf("reading response: %v", err)
	}
	return r
}

// expect reads one response and checks its opcode, opaque, status and, when
// not nil, its value.
func (b *binClient) expect(op uint8, opaque uint32, st protocol.BinStatus, value []byte) binResp {
	b.t.Helper()
	r := b.recv()
	if r.Opcode != op || r.Opaque != opaque || r.status() != st {
		b.t.Fatalf("got op %#x opaque %d status %#x (%q); want op %#x opaque %d status %#x",
			r.Opcode, r.Opaque, r.status(), r.value, op, opaque, st)
	}
	if value != nil && !bytes.Equal(r.value, value) {
		b.t.Fatalf("op %#x opaque %d: value %q, want %q", op, opaque, r.value, value)
	}
	return r
}

// expectClosed checks that the server closes the connection with nothing
// more to read.
func (b *binClient) expectClosed() {
	b.t.Helper()
	r, err := b.read()
	if err == nil {
		b.t.Fatalf("expected close, got op %#x status %#x", r.Opcode, r.status())
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			b.t.Fatalf("expected close, got %v", err)
		}
	}
}

func req(op uint8, opaque uint32, cas uint64, extras, key, value []byte) []byte {
	return protocol.AppendBinRequest(nil, op, opaque, cas, extras, key, value)
}

func setExt(flags, exp uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, flags), exp)
}

func expExt(exp uint32) []byte { return binary.BigEndian.AppendUint32(nil, exp) }

func arithExt(delta, initial uint64, exp uint32) []byte {
	b := binary.BigEndian.AppendUint64(nil, delta)
	b = binary.BigEndian.AppendUint64(b, initial)
	return binary.BigEndian.AppendUint32(b, exp)
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func noop(opaque uint32) []byte { return req(protocol.OpNoop, opaque, 0, nil, nil, nil) }

var (
	noKey  = []byte("nokey")
	notFnd = []byte("Not found")
)

func TestBinaryOpcodes(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, nil))
	k := []byte("k")

	c.send(req(protocol.OpSet, 1, 0, setExt(0xdead, 0), k, []byte("hello")))
	set := c.expect(protocol.OpSet, 1, protocol.StatusOK, []byte{})
	if set.CAS == 0 {
		t.Fatal("set returned CAS 0")
	}
	c.send(req(protocol.OpGet, 2, 0, nil, k, nil))
	r := c.expect(protocol.OpGet, 2, protocol.StatusOK, []byte("hello"))
	if r.CAS != set.CAS || !bytes.Equal(r.extras, []byte{0, 0, 0xde, 0xad}) || len(r.key) != 0 {
		t.Fatalf("get: cas %d extras %x key %q", r.CAS, r.extras, r.key)
	}
	c.send(req(protocol.OpGetK, 3, 0, nil, k, nil))
	if r = c.expect(protocol.OpGetK, 3, protocol.StatusOK, []byte("hello")); string(r.key) != "k" {
		t.Fatalf("getk key %q", r.key)
	}
	c.send(req(protocol.OpGet, 4, 0, nil, noKey, nil))
	c.expect(protocol.OpGet, 4, protocol.StatusKeyNotFound, notFnd)
	c.send(req(protocol.OpGetK, 5, 0, nil, noKey, nil))
	if r = c.expect(protocol.OpGetK, 5, protocol.StatusKeyNotFound, []byte{}); string(r.key) != "nokey" {
		t.Fatalf("getk miss key %q", r.key)
	}

	c.send(req(protocol.OpAdd, 6, 0, setExt(0, 0), k, []byte("x")))
	c.expect(protocol.OpAdd, 6, protocol.StatusKeyExists, []byte("Data exists for key."))
	c.send(req(protocol.OpAdd, 7, 0, setExt(0, 0), []byte("a"), []byte("x")))
	c.expect(protocol.OpAdd, 7, protocol.StatusOK, []byte{})
	c.send(req(protocol.OpReplace, 8, 0, setExt(0, 0), noKey, []byte("x")))
	c.expect(protocol.OpReplace, 8, protocol.StatusKeyNotFound, notFnd)
	c.send(req(protocol.OpReplace, 9, 0, setExt(5, 0), []byte("a"), []byte("y")))
	c.expect(protocol.OpReplace, 9, protocol.StatusOK, []byte{})

	c.send(req(protocol.OpAppend, 10, 0, nil, k, []byte("!")))
	c.expect(protocol.OpAppend, 10, protocol.StatusOK, []byte{})
	c.send(req(protocol.OpPrepend, 11, 0, nil, k, []byte("<")))
	c.expect(protocol.OpPrepend, 11, protocol.StatusOK, []byte{})
	c.send(req(protocol.OpAppend, 12, 0, nil, noKey, []byte("!")))
	c.expect(protocol.OpAppend, 12, protocol.StatusNotStored, []byte("Not stored."))
	c.send(req(protocol.OpGet, 13, 0, nil, k, nil))
	if r = c.expect(protocol.OpGet, 13, protocol.StatusOK, []byte("<hello!")); !bytes.Equal(r.extras, []byte{0, 0, 0xde, 0xad}) {
		t.Fatalf("append changed the flags: %x", r.extras)
	}

	c.send(req(protocol.OpIncrement, 14, 0, arithExt(1, 10, 0), []byte("n"), nil))
	c.expect(protocol.OpIncrement, 14, protocol.StatusOK, u64(10))
	c.send(req(protocol.OpIncrement, 15, 0, arithExt(5, 10, 0), []byte("n"), nil))
	c.expect(protocol.OpIncrement, 15, protocol.StatusOK, u64(15))
	c.send(req(protocol.OpDecrement, 16, 0, arithExt(100, 10, 0), []byte("n"), nil))
	c.expect(protocol.OpDecrement, 16, protocol.StatusOK, u64(0))
	c.send(req(protocol.OpIncrement, 17, 0, arithExt(1, 10, protocol.NoInitialExptime), noKey, nil))
	c.expect(protocol.OpIncrement, 17, protocol.StatusKeyNotFound, notFnd)
	c.send(req(protocol.OpIncrement, 18, 0, arithExt(1, 0, 0), k, nil))
	c.expect(protocol.OpIncrement, 18, protocol.StatusDeltaBadValue, []byte("Non-numeric server-side value for incr or decr"))
	c.send(req(protocol.OpIncrement, 19, 0, arithExt(1, 0, 0), []byte("wrap"), nil))
	c.expect(protocol.OpIncrement, 19, protocol.StatusOK, u64(0))
	c.send(req(protocol.OpDecrement, 20, 0, arithExt(1, 0, 0), []byte("wrap"), nil))
	c.expect(protocol.OpDecrement, 20, protocol.StatusOK, u64(0))

	c.send(req(protocol.OpTouch, 21, 0, expExt(100), k, nil))
	if r = c.expect(protocol.OpTouch, 21, protocol.StatusOK, []byte{}); !bytes.Equal(r.extras, []byte{0, 0, 0xde, 0xad}) {
		t.Fatalf("touch extras %x", r.extras)
	}
	c.send(req(protocol.OpTouch, 22, 0, expExt(100), noKey, nil))
	c.expect(protocol.OpTouch, 22, protocol.StatusKeyNotFound, notFnd)
	c.send(req(protocol.OpGAT, 23, 0, expExt(100), k, nil))
	c.expect(protocol.OpGAT, 23, protocol.StatusOK, []byte("<hello!"))
	c.send(req(protocol.OpGATK, 24, 0, expExt(100), k, nil))
	if r = c.expect(protocol.OpGATK, 24, protocol.StatusOK, []byte("<hello!")); string(r.key) != "k" {
		t.Fatalf("gatk key %q", r.key)
	}
	c.send(req(protocol.OpGATK, 25, 0, expExt(100), noKey, nil))
	if r = c.expect(protocol.OpGATK, 25, protocol.StatusKeyNotFound, []byte{}); string(r.key) != "nokey" {
		t.Fatalf("gatk miss key %q", r.key)
	}
	c.send(req(protocol.OpGAT, 26, 0, expExt(100), noKey, nil))
	c.expect(protocol.OpGAT, 26, protocol.StatusKeyNotFound, notFnd)
	// A touch in the past expires the item.
	c.send(req(protocol.OpSet, 27, 0, setExt(0, 0), []byte("gone"), []byte("v")),
		req(protocol.OpGAT, 28, 0, expExt(uint32(time.Now().Unix()-10)), []byte("gone"), nil),
		req(protocol.OpGet, 29, 0, nil, []byte("gone"), nil))
	c.expect(protocol.OpSet, 27, protocol.StatusOK, nil)
	c.expect(protocol.OpGAT, 28, protocol.StatusOK, []byte("v"))
	c.expect(protocol.OpGet, 29, protocol.StatusKeyNotFound, notFnd)

	c.send(req(protocol.OpDelete, 30, 0, nil, k, nil))
	c.expect(protocol.OpDelete, 30, protocol.StatusOK, []byte{})
	c.send(req(protocol.OpDelete, 31, 0, nil, k, nil))
	c.expect(protocol.OpDelete, 31, protocol.StatusKeyNotFound, notFnd)

	c.send(req(protocol.OpVersion, 32, 0, nil, nil, nil))
	c.expect(protocol.OpVersion, 32, protocol.StatusOK, []byte(server.Version))
	c.send(noop(33))
	c.expect(protocol.OpNoop, 33, protocol.StatusOK, []byte{})
	c.send(req(protocol.OpFlush, 34, 0, nil, nil, nil), req(protocol.OpGet, 35, 0, nil, []byte("a"), nil))
	c.expect(protocol.OpFlush, 34, protocol.StatusOK, []byte{})
	c.expect(protocol.OpGet, 35, protocol.StatusKeyNotFound, notFnd)
	// A delayed flush leaves items readable until then.
	c.send(req(protocol.OpSet, 36, 0, setExt(0, 0), k, []byte("v")), req(protocol.OpFlush, 37, 0, expExt(100), nil, nil),
		req(protocol.OpGet, 38, 0, nil, k, nil))
	c.expect(protocol.OpSet, 36, protocol.StatusOK, nil)
	c.expect(protocol.OpFlush, 37, protocol.StatusOK, []byte{})
	c.expect(protocol.OpGet, 38, protocol.StatusOK, []byte("v"))

	c.send(req(protocol.OpVerbosity, 39, 0, expExt(1), nil, nil))
	c.expect(protocol.OpVerbosity, 39, protocol.StatusUnknownCommand, []byte("Unknown command"))
	// memcached swallows the body length again after the extras: 4 bytes
	// of padding keep the stream aligned.
	c.send([]byte{0, 0, 0, 0}, noop(40))
	c.expect(protocol.OpNoop, 40, protocol.StatusOK, nil)

	c.send(req(protocol.OpQuit, 41, 0, nil, nil, nil), noop(42))
	c.expect(protocol.OpQuit, 41, protocol.StatusOK, []byte{})
	c.expectClosed()
}

func TestBinaryCAS(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, nil))
	k := []byte("k")
	c.send(req(protocol.OpSet, 1, 0, setExt(0, 0), k, []byte("v1")))
	cas := c.expect(protocol.OpSet, 1, protocol.StatusOK, nil).CAS
	c.send(req(protocol.OpSet, 2, cas+1000, setExt(0, 0), k, []byte("v2")))
	c.expect(protocol.OpSet, 2, protocol.StatusKeyExists, nil)
	c.send(req(protocol.OpSet, 3, 5, setExt(0, 0), noKey, []byte("v2")))
	c.expect(protocol.OpSet, 3, protocol.StatusKeyNotFound, nil)
	c.send(req(protocol.OpAdd, 4, cas, setExt(0, 0), k, []byte("v2")))
	cas2 := c.expect(protocol.OpAdd, 4, protocol.StatusOK, nil).CAS // add with a CAS is a CAS
	if cas2 == cas {
		t.Fatal("CAS did not change")
	}
	c.send(req(protocol.OpAppend, 5, cas, nil, k, []byte("x")))
	c.expect(protocol.OpAppend, 5, protocol.StatusKeyExists, nil)
	c.send(req(protocol.OpAppend, 6, cas2, nil, k, []byte("x")))
	cas3 := c.expect(protocol.OpAppend, 6, protocol.StatusOK, nil).CAS
	c.send(req(protocol.OpDelete, 7, cas2, nil, k, nil))
	c.expect(protocol.OpDelete, 7, protocol.StatusKeyExists, nil)

	c.send(req(protocol.OpSet, 8, 0, setExt(0, 0), []byte("n"), []byte("1")))
	ncas := c.expect(protocol.OpSet, 8, protocol.StatusOK, nil).CAS
	c.send(req(protocol.OpIncrement, 9, ncas+1000, arithExt(1, 0, 0), []byte("n"), nil))
	c.expect(protocol.OpIncrement, 9, protocol.StatusKeyExists, nil)
	c.send(req(protocol.OpIncrement, 10, ncas, arithExt(1, 0, 0), []byte("n"), nil))
	r := c.expect(protocol.OpIncrement, 10, protocol.StatusOK, u64(2))
	c.send(req(protocol.OpGet, 11, 0, nil, []byte("n"), nil))
	if got := c.expect(protocol.OpGet, 11, protocol.StatusOK, []byte("2")).CAS; got != r.CAS {
		t.Fatalf("incr returned CAS %d, item has %d", r.CAS, got)
	}
	c.send(req(protocol.OpDelete, 12, cas3, nil, k, nil))
	if r := c.expect(protocol.OpDelete, 12, protocol.StatusOK, nil); r.CAS != 0 {
		t.Fatalf("delete returned CAS %d", r.CAS)
	}
}

// TestBinaryQuietPipeline sends every quiet command in one write: only
// errors, hits and the final noop answer.
func TestBinaryQuietPipeline(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, nil))
	q := []byte("q")
	c.send(
		req(protocol.OpSetQ, 1, 0, setExt(7, 0), q, []byte("v")), // silent
		req(protocol.OpAddQ, 2, 0, setExt(0, 0), q, []byte("v")), // exists
		req(protocol.OpReplaceQ, 3, 0, setExt(0, 0), noKey, []byte("v")),
		req(protocol.OpAppendQ, 4, 0, nil, q, []byte("w")), // silent
		req(protocol.OpPrependQ, 5, 0, nil, noKey, []byte("w")),
		req(protocol.OpGetQ, 6, 0, nil, q, nil), // hit
		req(protocol.OpGetQ, 7, 0, nil, noKey, nil),
		req(protocol.OpGetKQ, 8, 0, nil, q, nil), // hit with key
		req(protocol.OpGetKQ, 9, 0, nil, noKey, nil),
		req(protocol.OpGATQ, 10, 0, expExt(0), q, nil), // hit
		req(protocol.OpGATQ, 11, 0, expExt(0), noKey, nil),
		req(protocol.OpGATKQ, 12, 0, expExt(0), q, nil), // hit with key
		req(protocol.OpGATKQ, 13, 0, expExt(0), noKey, nil),
		req(protocol.OpIncrementQ, 14, 0, arithExt(1, 5, 0), []byte("n"), nil), // silent
		req(protocol.OpDecrementQ, 15, 0, arithExt(1, 5, protocol.NoInitialExptime), noKey, nil),
		req(protocol.OpIncrementQ, 16, 0, arithExt(1, 5, 0), q, nil), // non-numeric
		req(protocol.OpDeleteQ, 17, 0, nil, noKey, nil),
		req(protocol.OpDeleteQ, 18, 0, nil, []byte("n"), nil), // silent
		req(protocol.OpFlushQ, 19, 0, nil, nil, nil),          // silent
		req(protocol.OpGetQ, 20, 0, nil, q, nil),
		noop(21),
	)
	c.expect(protocol.OpAddQ, 2, protocol.StatusKeyExists, nil)
	c.expect(protocol.OpReplaceQ, 3, protocol.StatusKeyNotFound, nil)
	c.expect(protocol.OpPrependQ, 5, protocol.StatusNotStored, nil)
	if r := c.expect(protocol.OpGetQ, 6, protocol.StatusOK, []byte("vw")); !bytes.Equal(r.extras, []byte{0, 0, 0, 7}) {
		t.Fatalf("getq flags %x", r.extras)
	}
	if r := c.expect(protocol.OpGetKQ, 8, protocol.StatusOK, []byte("vw")); string(r.key) != "q" {
		t.Fatalf("getkq key %q", r.key)
	}
	c.expect(protocol.OpGATQ, 10, protocol.StatusOK, []byte("vw"))
	if r := c.expect(protocol.OpGATKQ, 12, protocol.StatusOK, []byte("vw")); string(r.key) != "q" {
		t.Fatalf("gatkq key %q", r.key)
	}
	c.expect(protocol.OpDecrementQ, 15, protocol.StatusKeyNotFound, nil)
	c.expect(protocol.OpIncrementQ, 16, protocol.StatusDeltaBadValue, nil)
	c.expect(protocol.OpDeleteQ, 17, protocol.StatusKeyNotFound, nil)
	c.expect(protocol.OpNoop, 21, protocol.StatusOK, nil)

	// quitq closes without a word.
	c.send(req(protocol.OpQuitQ, 22, 0, nil, nil, nil), noop(23))
	c.expectClosed()
}

func TestBinaryMalformed(t *testing.T) {
	addr := testutil.StartGocached(t, nil)
	get := req(protocol.OpGet, 1, 0, nil, []byte("key"), nil)
	lens := func(b []byte, keyLen, extLen, bodyLen int) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint16(b[2:], uint16(keyLen))
		b[4] = byte(extLen)
		binary.BigEndian.PutUint32(b[8:], uint32(bodyLen))
		return b
	}
	closing := []struct {
		name   string
		in     []byte
		status protocol.BinStatus // 0: closed without a reply
	}{
		{"key longer than body", lens(get, 3, 0, 2), protocol.StatusUnknownCommand},
		{"extras and key longer than body", lens(get, 3, 1, 3), protocol.StatusUnknownCommand},
		{"key too long", req(protocol.OpGet, 1, 0, nil, make([]byte, 251), nil), protocol.StatusInvalid},
		{"get with extras", req(protocol.OpGet, 1, 0, expExt(1), []byte("k"), nil), protocol.StatusInvalid},
		{"set without extras", req(protocol.OpSet, 1, 0, nil, []byte("k"), []byte("v")), protocol.StatusInvalid},
		{"incr short extras", req(protocol.OpIncrement, 1, 0, setExt(0, 0), []byte("k"), nil), protocol.StatusInvalid},
		{"noop with body", req(protocol.OpNoop, 1, 0, nil, nil, []byte("x")), protocol.StatusInvalid},
		{"touch without key", req(protocol.OpTouch, 1, 0, expExt(0), nil, nil), protocol.StatusInvalid},
	}
	for _, tt := range closing {
		t.Run(tt.name, func(t *testing.T) {
			c := dialBin(t, addr)
			c.send(tt.in, noop(2))
			c.expect(tt.in[1], 1, tt.status, []byte(tt.status.Message()))
			c.expectClosed()
		})
	}
	t.Run("bad magic after a binary request", func(t *testing.T) {
		c := dialBin(t, addr)
		bad := noop(2)
		bad[0] = 0x81
		c.send(noop(1), bad, noop(3))
		c.expect(protocol.OpNoop, 1, protocol.StatusOK, nil)
		c.expectClosed()
	})
	t.Run("text after a binary request", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(noop(1), []byte("version\r\nversion\r\nversion\r\n"))
		c.expect(protocol.OpNoop, 1, protocol.StatusOK, nil)
		c.expectClosed()
	})
	t.Run("unknown opcode", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(req(0x50, 1, 0, nil, nil, []byte("body")), noop(2))
		c.expect(0x50, 1, protocol.StatusUnknownCommand, []byte("Unknown command"))
		c.expect(protocol.OpNoop, 2, protocol.StatusOK, nil)
	})
	t.Run("huge body claims", func(t *testing.T) {
		// A set claiming a 4 GiB value is refused from its header, its
		// "value" swallowed rather than buffered.
		c := dialBin(t, addr)
		c.send(req(protocol.OpSet, 1, 0, setExt(0, 0), []byte("big"), []byte("v")))
		c.expect(protocol.OpSet, 1, protocol.StatusOK, nil)
		h := lens(req(protocol.OpSet, 2, 0, setExt(0, 0), []byte("big"), nil), 3, 8, 0xffffffff)
		c.send(h, make([]byte, 64<<10))
		c.expect(protocol.OpSet, 2, protocol.StatusTooLarge, []byte("Too large."))
		c2 := dialBin(t, addr)
		c2.send(req(protocol.OpGet, 3, 0, nil, []byte("big"), nil))
		c2.expect(protocol.OpGet, 3, protocol.StatusKeyNotFound, nil) // a failed set drops the old value
	})
}

func TestBinaryTooLarge(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, func(cfg *server.Config) { cfg.Store.MaxItemSize = 1 << 20 }))
	k := []byte("k")
	c.send(req(protocol.OpSet, 1, 0, setExt(0, 0), k, []byte("old")))
	c.expect(protocol.OpSet, 1, protocol.StatusOK, nil)
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = 0x80 // looks like request magic: must be swallowed, not parsed
	}
	c.send(req(protocol.OpSetQ, 2, 0, setExt(0, 0), k, big), req(protocol.OpGet, 3, 0, nil, k, nil),
		req(protocol.OpAppend, 4, 0, nil, []byte("other"), big), noop(5))
	c.expect(protocol.OpSetQ, 2, protocol.StatusTooLarge, []byte("Too large."))
	c.expect(protocol.OpGet, 3, protocol.StatusKeyNotFound, nil)
	c.expect(protocol.OpAppend, 4, protocol.StatusTooLarge, nil)
	c.expect(protocol.OpNoop, 5, protocol.StatusOK, nil)

	// A value just under the limit is stored and read back.
	val := bytes.Repeat([]byte("x"), 1<<19)
	c.send(req(protocol.OpSet, 6, 0, setExt(0, 0), k, val), req(protocol.OpGet, 7, 0, nil, k, nil))
	c.expect(protocol.OpSet, 6, protocol.StatusOK, nil)
	c.expect(protocol.OpGet, 7, protocol.StatusOK, val)
}

// TestBinarySplitInput sends a pipeline one byte per write.
func TestBinarySplitInput(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, nil))
	if tc, ok := c.c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	in := bytes.Join([][]byte{
		req(protocol.OpSet, 1, 0, setExt(3, 0), []byte("key"), []byte("value")),
		req(protocol.OpGetK, 2, 0, nil, []byte("key"), nil),
		req(protocol.OpIncrement, 3, 0, arithExt(2, 40, 0), []byte("n"), nil),
		req(protocol.OpStat, 4, 0, nil, []byte("sizes"), nil),
		noop(5),
	}, nil)
	for i := range in {
		c.send(in[i : i+1])
	}
	c.expect(protocol.OpSet, 1, protocol.StatusOK, nil)
	c.expect(protocol.OpGetK, 2, protocol.StatusOK, []byte("value"))
	c.expect(protocol.OpIncrement, 3, protocol.StatusOK, u64(40))
	if r := c.expect(protocol.OpStat, 4, protocol.StatusOK, []byte("disabled")); string(r.key) != "sizes_status" {
		t.Fatalf("stat key %q", r.key)
	}
	c.expect(protocol.OpStat, 4, protocol.StatusOK, []byte{})
	c.expect(protocol.OpNoop, 5, protocol.StatusOK, nil)
}

// readStats reads stat packets up to the terminator.
func (b *binClient) readStats(opaque uint32) map[string]string {
	b.t.Helper()
	m := map[string]string{}
	for {
		r := b.expect(protocol.OpStat, opaque, protocol.StatusOK, nil)
		if len(r.key) == 0 {
			if len(r.value) != 0 {
				b.t.Fatalf("terminator with a value %q", r.value)
			}
			return m
		}
		m[string(r.key)] = string(r.value)
	}
}

func TestBinaryStats(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, nil))
	c.send(req(protocol.OpSet, 1, 0, setExt(0, 0), []byte("k"), []byte("v")), req(protocol.OpGet, 2, 0, nil, []byte("k"), nil))
	c.expect(protocol.OpSet, 1, protocol.StatusOK, nil)
	c.expect(protocol.OpGet, 2, protocol.StatusOK, nil)

	c.send(req(protocol.OpStat, 3, 0, nil, nil, nil))
	st := c.readStats(3)
	if st["version"] != server.Version || st["pid"] != strconv.Itoa(os.Getpid()) || st["cmd_get"] != "1" ||
		st["get_hits"] != "1" || st["cmd_set"] != "1" || st["curr_items"] != "1" {
		t.Fatalf("general stats: %v", st)
	}
	c.send(req(protocol.OpStat, 4, 0, nil, []byte("settings"), nil))
	if st = c.readStats(4); st["item_size_max"] != "1048576" || st["binding_protocol"] != "auto-negotiate" {
		t.Fatalf("settings: %v", st)
	}
	c.send(req(protocol.OpStat, 5, 0, nil, []byte("items"), nil))
	if st = c.readStats(5); len(st) == 0 {
		t.Fatal("no item stats")
	}
	c.send(req(protocol.OpStat, 6, 0, nil, []byte("slabs"), nil))
	if st = c.readStats(6); st["active_slabs"] == "" {
		t.Fatalf("slabs: %v", st)
	}
	c.send(req(protocol.OpStat, 7, 0, nil, []byte("detail dump"), nil))
	if st = c.readStats(7); st["detailed"] != "END\r\n" {
		t.Fatalf("detail dump: %q", st)
	}
	c.send(req(protocol.OpStat, 8, 0, nil, []byte("reset"), nil))
	if st = c.readStats(8); len(st) != 0 {
		t.Fatalf("reset: %v", st)
	}
	c.send(req(protocol.OpStat, 9, 0, nil, nil, nil))
	if st = c.readStats(9); st["cmd_get"] != "0" {
		t.Fatalf("after reset: cmd_get %q", st["cmd_get"])
	}
	for i, group := range []string{"conns", "foo", "detail", "itemsx"} {
		c.send(req(protocol.OpStat, uint32(10+i), 0, nil, []byte(group), nil))
		c.expect(protocol.OpStat, uint32(10+i), protocol.StatusKeyNotFound, notFnd)
	}
}

func TestBinaryOptions(t *testing.T) {
	t.Run("flush disabled", func(t *testing.T) {
		c := dialBin(t, testutil.StartGocached(t, func(cfg *server.Config) { cfg.DisableFlushAll = true }))
		c.send(req(protocol.OpFlushQ, 1, 0, nil, nil, nil), noop(2))
		c.expect(protocol.OpFlushQ, 1, protocol.StatusAuthError, []byte("Auth failure."))
		c.expect(protocol.OpNoop, 2, protocol.StatusOK, nil)
	})
	t.Run("no sasl", func(t *testing.T) {
		c := dialBin(t, testutil.StartGocached(t, nil))
		c.send(req(protocol.OpSASLListMechs, 1, 0, nil, nil, nil),
			req(protocol.OpSASLAuth, 2, 0, nil, []byte("PLAIN"), []byte("\x00a\x00b")), noop(3))
		c.expect(protocol.OpSASLListMechs, 1, protocol.StatusUnknownCommand, nil)
		c.expect(protocol.OpSASLAuth, 2, protocol.StatusUnknownCommand, nil)
		c.expect(protocol.OpNoop, 3, protocol.StatusOK, nil)
	})
	t.Run("binary only", func(t *testing.T) {
		c := dialBin(t, testutil.StartGocached(t, func(cfg *server.Config) { cfg.Protocol = "binary" }))
		c.send([]byte("version\r\nversion\r\nversion\r\n"))
		c.expectClosed()
	})
}

func startSASL(t *testing.T) string {
	t.Helper()
	pwdb := filepath.Join(t.TempDir(), "pwdb")
	if err := os.WriteFile(pwdb, []byte("alice:secret\nbob:hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.SASL = true
		cfg.Extended["sasl_pwdb"] = pwdb
	})
}

func plain(opaque uint32, user, pass string) []byte {
	return req(protocol.OpSASLAuth, opaque, 0, nil, []byte("PLAIN"), []byte("\x00"+user+"\x00"+pass))
}

func TestBinarySASL(t *testing.T) {
	addr := startSASL(t)

	t.Run("unauthenticated refused", func(t *testing.T) {
		for _, r := range [][]byte{
			req(protocol.OpGet, 1, 0, nil, []byte("k"), nil),
			req(protocol.OpSet, 1, 0, setExt(0, 0), []byte("k"), []byte("v")),
			req(protocol.OpDelete, 1, 0, nil, []byte("k"), nil),
			req(protocol.OpFlush, 1, 0, nil, nil, nil),
			req(protocol.OpStat, 1, 0, nil, nil, nil),
			req(protocol.OpIncrement, 1, 0, arithExt(1, 0, 0), []byte("k"), nil),
			req(protocol.OpGetQ, 1, 0, nil, []byte("k"), nil),
			req(protocol.OpQuitQ, 1, 0, nil, nil, nil),
			req(protocol.OpVerbosity, 1, 0, expExt(1), nil, nil),
			noop(1),
		} {
			c := dialBin(t, addr)
			c.send(r, noop(2))
			c.expect(r[1], 1, protocol.StatusAuthError, []byte("Auth failure."))
			c.expectClosed()
		}
	})
	t.Run("text refused", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send([]byte("set k 0 0 1\r\nv\r\nget k\r\nversion\r\n"))
		c.expectClosed()
	})
	t.Run("version and mechanisms before auth", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(req(protocol.OpVersion, 1, 0, nil, nil, nil), req(protocol.OpSASLListMechs, 2, 0, nil, nil, nil))
		c.expect(protocol.OpVersion, 1, protocol.StatusOK, []byte(server.Version))
		c.expect(protocol.OpSASLListMechs, 2, protocol.StatusOK, []byte("PLAIN"))
	})
	t.Run("auth works", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(plain(1, "alice", "secret"), req(protocol.OpSet, 2, 0, setExt(0, 0), []byte("k"), []byte("v")),
			req(protocol.OpGet, 3, 0, nil, []byte("k"), nil))
		c.expect(protocol.OpSASLAuth, 1, protocol.StatusOK, []byte("Authenticated"))
		c.expect(protocol.OpSet, 2, protocol.StatusOK, nil)
		c.expect(protocol.OpGet, 3, protocol.StatusOK, []byte("v"))
	})
	t.Run("auth in two steps", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(req(protocol.OpSASLAuth, 1, 0, nil, []byte("PLAIN"), nil))
		c.expect(protocol.OpSASLAuth, 1, protocol.StatusAuthContinue, []byte{})
		c.send(req(protocol.OpSASLStep, 2, 0, nil, []byte("PLAIN"), []byte("\x00bob\x00hunter2")), noop(3))
		c.expect(protocol.OpSASLStep, 2, protocol.StatusOK, []byte("Authenticated"))
		c.expect(protocol.OpNoop, 3, protocol.StatusOK, nil)
	})
	t.Run("wrong password refused", func(t *testing.T) {
		for _, bad := range [][]byte{
			plain(1, "alice", "hunter2"),
			plain(1, "carol", "secret"),
			req(protocol.OpSASLAuth, 1, 0, nil, []byte("CRAM-MD5"), []byte("\x00alice\x00secret")),
			req(protocol.OpSASLAuth, 1, 0, nil, []byte("PLAIN"), []byte("alice secret")),
			req(protocol.OpSASLStep, 1, 0, nil, []byte("PLAIN"), []byte("\x00alice\x00secret")),
		} {
			c := dialBin(t, addr)
			c.send(bad)
			c.expect(bad[1], 1, protocol.StatusAuthError, []byte("Auth failure."))
			// The connection stays open for another attempt...
			c.send(req(protocol.OpVersion, 2, 0, nil, nil, nil))
			c.expect(protocol.OpVersion, 2, protocol.StatusOK, nil)
			// ...but serves nothing else.
			c.send(req(protocol.OpGet, 3, 0, nil, []byte("k"), nil))
			c.expect(protocol.OpGet, 3, protocol.StatusAuthError, nil)
			c.expectClosed()
		}
	})
	t.Run("failed reauth drops authentication", func(t *testing.T) {
		c := dialBin(t, addr)
		c.send(plain(1, "alice", "secret"), plain(2, "alice", "wrong"), noop(3))
		c.expect(protocol.OpSASLAuth, 1, protocol.StatusOK, nil)
		c.expect(protocol.OpSASLAuth, 2, protocol.StatusAuthError, nil)
		c.expect(protocol.OpNoop, 3, protocol.StatusAuthError, nil)
		c.expectClosed()
	})
	t.Run("attempts counted", func(t *testing.T) {
		addr := startSASL(t)
		c := dialBin(t, addr)
		c.send(plain(1, "alice", "nope"), plain(2, "bob", "nope"), plain(3, "bob", "hunter2"),
			req(protocol.OpStat, 4, 0, nil, nil, nil))
		c.expect(protocol.OpSASLAuth, 1, protocol.StatusAuthError, nil)
		c.expect(protocol.OpSASLAuth, 2, protocol.StatusAuthError, nil)
		c.expect(protocol.OpSASLAuth, 3, protocol.StatusOK, nil)
		st := c.readStats(4)
		if st["auth_cmds"] != "3" || st["auth_errors"] != "2" {
			t.Fatalf("auth_cmds %q auth_errors %q, want 3 and 2", st["auth_cmds"], st["auth_errors"])
		}
		c.send(req(protocol.OpStat, 5, 0, nil, []byte("settings"), nil))
		if st = c.readStats(5); st["auth_enabled_sasl"] != "yes" {
			t.Fatalf("auth_enabled_sasl %q", st["auth_enabled_sasl"])
		}
	})
}

// TestBinaryValueIntoItem: a binary value longer than the read buffer is
// read into its item (values.go). With no memory for it, memcached answers
// at once (unlike text, which answers after the value) and swallows the
// value, which may look like requests.
func TestBinaryValueIntoItem(t *testing.T) {
	c := dialBin(t, testutil.StartGocached(t, func(cfg *server.Config) {
		cfg.Store.MemoryLimit = 4 << 20
		cfg.Store.DisableEvictions = true
	}))
	// A byte at a time, the next request right behind it.
	val := bytes.Repeat([]byte{0x80, 'x', 0}, 2000)
	in := append(req(protocol.OpSet, 1, 0, setExt(9, 0), []byte("k"), val), req(protocol.OpGet, 2, 0, nil, []byte("k"), nil)...)
	for i := range in {
		c.send(in[i : i+1])
	}
	c.expect(protocol.OpSet, 1, protocol.StatusOK, nil)
	c.expect(protocol.OpGet, 2, protocol.StatusOK, val)
	c.send(req(protocol.OpDelete, 3, 0, nil, []byte("k"), nil))
	c.expect(protocol.OpDelete, 3, protocol.StatusOK, nil)

	fill := bytes.Repeat([]byte{0x80}, 400<<10)
	var stored int
	for i := uint32(1); ; i++ {
		c.send(req(protocol.OpSet, i, 0, setExt(i, 0), []byte("f"+strconv.Itoa(int(i))), fill))
		if r := c.recv(); r.status() != protocol.StatusOK {
			if r.status() != protocol.StatusOutOfMemory || r.Opaque != i {
				t.Fatalf("set %d: status %#x opaque %d", i, r.status(), r.Opaque)
			}
			break
		}
		stored++
	}
	if stored < 2 {
		t.Fatalf("only %d values of 400 KB stored in 4 MB", stored)
	}
	c.send(req(protocol.OpGet, 100, 0, nil, []byte("f1"), nil))
	if r := c.expect(protocol.OpGet, 100, protocol.StatusOK, fill); !bytes.Equal(r.extras, u64(1)[4:]) {
		t.Fatalf("flags %x", r.extras)
	}
	// Refused at once, before the value has been sent; the value then
	// swallowed.
	oom := req(protocol.OpSet, 101, 0, setExt(0, 0), []byte("big"), fill)
	c.send(oom[:len(oom)/2])
	c.expect(protocol.OpSet, 101, protocol.StatusOutOfMemory, nil)
	c.send(oom[len(oom)/2:], req(protocol.OpGet, 102, 0, nil, []byte("big"), nil))
	c.expect(protocol.OpGet, 102, protocol.StatusKeyNotFound, nil)
}
