package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Protocol is the wire protocol the generator speaks.
type Protocol int

// The three client sides the generator implements.
const (
	ProtoText   Protocol = iota // classic text: get/set
	ProtoMeta                   // meta text: mg/ms (mn for multiget)
	ProtoBinary                 // binary: GET/SET, GETKQ...NOOP for multiget
)

func (p Protocol) String() string {
	switch p {
	case ProtoText:
		return "text"
	case ProtoMeta:
		return "meta"
	case ProtoBinary:
		return "binary"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// ParseProtocol accepts "text" (or "ascii"), "meta" and "binary".
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "text", "ascii", "classic":
		return ProtoText, nil
	case "meta":
		return ProtoMeta, nil
	case "binary", "bin":
		return ProtoBinary, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (text, meta, binary)", s)
}

// MarshalText lets Protocol appear by name in JSON.
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses a protocol name.
func (p *Protocol) UnmarshalText(b []byte) error {
	v, err := ParseProtocol(string(b))
	*p = v
	return err
}

// Two kinds of failure while reading replies. A reply error is a complete,
// well-formed reply that is not the expected one (wrong value, NOT_STORED,
// SERVER_ERROR...): it is counted and the stream stays usable. A protocol
// error means the stream cannot be trusted any more (garbage, short read,
// timeout): the connection is dropped and every pending request is an error.
var (
	errReply = errors.New("unexpected reply")
)

type protoError struct{ msg string }

func (e *protoError) Error() string { return e.msg }

func protoErr(format string, args ...any) error {
	return &protoError{fmt.Sprintf(format, args...)}
}

func isProtoErr(err error) bool {
	var pe *protoError
	return errors.As(err, &pe)
}

// ---------------------------------------------------------------------------
// Keys and values.
//
// Key i is "gcb:" followed by i in 10 zero-padded digits (14 bytes). Its value
// is a slice of a repeating alphabet starting at i%26, and its flags are a
// 32-bit mix of i, so a reply for the wrong key, or a corrupted value, is
// detected without storing anything per key.

const (
	keyPrefix = "gcb:"
	keyDigits = 10
	keyLen    = len(keyPrefix) + keyDigits
)

func appendKey(dst []byte, id uint64) []byte {
	dst = append(dst, keyPrefix...)
	var d [keyDigits]byte
	for i := keyDigits - 1; i >= 0; i-- {
		d[i] = byte('0' + id%10)
		id /= 10
	}
	return append(dst, d[:]...)
}

// parseKey returns the id of a key made by appendKey.
func parseKey(k []byte) (uint64, bool) {
	if len(k) != keyLen || string(k[:len(keyPrefix)]) != keyPrefix {
		return 0, false
	}
	var id uint64
	for _, c := range k[len(keyPrefix):] {
		if c < '0' || c > '9' {
			return 0, false
		}
		id = id*10 + uint64(c-'0')
	}
	return id, true
}

// keyFlags is the client flags word stored with key id (full 32 bits).
func keyFlags(id uint64) uint32 {
	x := id*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	x ^= x >> 29
	return uint32(x)
}

// values holds the repeating pattern values are cut from.
type values struct{ pattern []byte }

func newValues(max int) *values {
	p := make([]byte, max+26)
	for i := range p {
		p[i] = byte('a' + i%26)
	}
	return &values{p}
}

func (v *values) value(id uint64, n int) []byte {
	off := int(id % 26)
	return v.pattern[off : off+n]
}

// check reports whether data/flags are what key id must hold.
func (v *values) check(id uint64, flags uint32, data []byte, vmin, vmax int) bool {
	if flags != keyFlags(id) || len(data) < vmin || len(data) > vmax {
		return false
	}
	return bytes.Equal(data, v.value(id, len(data)))
}

// ---------------------------------------------------------------------------
// Buffered reader that parses in place and never allocates once grown.

type reader struct {
	rd   io.Reader
	buf  []byte
	r, w int
	now  time.Time // time of the last successful read
}

func newReader(rd io.Reader, size int) *reader {
	return &reader{rd: rd, buf: make([]byte, size)}
}

func (b *reader) reset(rd io.Reader) { b.rd, b.r, b.w = rd, 0, 0 }

// buffered reports whether unread bytes remain.
func (b *reader) buffered() int { return b.w - b.r }

// fill reads more bytes, compacting and growing the buffer so that at least
// need bytes fit.
func (b *reader) fill(need int) error {
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	if need > len(b.buf) {
		nb := make([]byte, need+need/2)
		copy(nb, b.buf[:b.w])
		b.buf = nb
	} else if b.w == len(b.buf) {
		nb := make([]byte, 2*len(b.buf))
		copy(nb, b.buf[:b.w])
		b.buf = nb
	}
	n, err := b.rd.Read(b.buf[b.w:])
	if n > 0 {
		b.w += n
		b.now = time.Now()
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return protoErr("read: %v", err)
}

const maxLine = 64 << 10

// line returns the next line without its "\r\n"; valid until the next call.
func (b *reader) line() ([]byte, error) {
	scanned := 0
	for {
		if i := bytes.IndexByte(b.buf[b.r+scanned:b.w], '\n'); i >= 0 {
			end := b.r + scanned + i
			if end == b.r || b.buf[end-1] != '\r' {
				return nil, protoErr("line not ended by \\r\\n: %q", clip(b.buf[b.r:end+1]))
			}
			l := b.buf[b.r : end-1]
			b.r = end + 1
			return l, nil
		}
		scanned = b.w - b.r
		if scanned > maxLine {
			return nil, protoErr("reply line longer than %d bytes", maxLine)
		}
		if err := b.fill(0); err != nil {
			return nil, err
		}
	}
}

// next returns exactly n bytes; valid until the next call.
func (b *reader) next(n int) ([]byte, error) {
	for b.w-b.r < n {
		if err := b.fill(n); err != nil {
			return nil, err
		}
	}
	p := b.buf[b.r : b.r+n]
	b.r += n
	return p, nil
}

func clip(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// ---------------------------------------------------------------------------
// Small parsing helpers (no allocation).

// field splits off the first space-separated token of s.
func field(s []byte) (tok, rest []byte) {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	i := bytes.IndexByte(s, ' ')
	if i < 0 {
		return s, nil
	}
	return s[:i], s[i+1:]
}

func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func appendUint(dst []byte, n uint64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(dst, d[i:]...)
}

// isErrorLine reports the replies memcached uses for failures.
func isErrorLine(l []byte) bool {
	return bytes.HasPrefix(l, []byte("ERROR")) || bytes.HasPrefix(l, []byte("SERVER_ERROR")) ||
		bytes.HasPrefix(l, []byte("CLIENT_ERROR"))
}

// ---------------------------------------------------------------------------
// Requests and replies.
//
// A request is a get of n >= 1 keys or a set of one key. The codec appends
// it to the write buffer, and later reads its reply, checking every byte it
// can: key order, flags, value length and content, terminators.

// getResult is what one get reply held.
type getResult struct {
	hits   int
	missed []uint64 // ids of missed keys (appended; caller resets)
}

type codec struct {
	proto      Protocol
	vals       *values
	vmin, vmax int
	rd         *reader
}

// appendGet encodes a get of ids (one request; a multiget when len(ids) > 1).
func (c *codec) appendGet(dst []byte, ids []uint64) []byte {
	switch c.proto {
	case ProtoText:
		dst = append(dst, "get"...)
		for _, id := range ids {
			dst = append(dst, ' ')
			dst = appendKey(dst, id)
		}
		return append(dst, "\r\n"...)
	case ProtoMeta:
		if len(ids) == 1 {
			dst = append(dst, "mg "...)
			dst = appendKey(dst, ids[0])
			return append(dst, " v f\r\n"...)
		}
		for _, id := range ids {
			dst = append(dst, "mg "...)
			dst = appendKey(dst, id)
			dst = append(dst, " v f k q\r\n"...)
		}
		return append(dst, "mn\r\n"...)
	default:
		if len(ids) == 1 {
			return appendBinReq(dst, binGet, 0, ids[0], 0, nil, 0)
		}
		for i, id := range ids {
			dst = appendBinReq(dst, binGetKQ, uint32(i), id, 0, nil, 0)
		}
		return appendBinHeader(dst, binNoop, 0, 0, 0, uint32(len(ids)))
	}
}

// appendSet encodes a set of id with a value of n bytes.
func (c *codec) appendSet(dst []byte, id uint64, n int) []byte {
	v := c.vals.value(id, n)
	fl := keyFlags(id)
	switch c.proto {
	case ProtoText:
		dst = append(dst, "set "...)
		dst = appendKey(dst, id)
		dst = append(dst, ' ')
		dst = appendUint(dst, uint64(fl))
		dst = append(dst, " 0 "...)
		dst = appendUint(dst, uint64(n))
		dst = append(dst, "\r\n"...)
		dst = append(dst, v...)
		return append(dst, "\r\n"...)
	case ProtoMeta:
		dst = append(dst, "ms "...)
		dst = appendKey(dst, id)
		dst = append(dst, ' ')
		dst = appendUint(dst, uint64(n))
		dst = append(dst, " F"...)
		dst = appendUint(dst, uint64(fl))
		dst = append(dst, "\r\n"...)
		dst = append(dst, v...)
		return append(dst, "\r\n"...)
	default:
		return appendBinReq(dst, binSet, 0, id, fl, v, 8)
	}
}

// readSet reads the reply to one set.
func (c *codec) readSet() error {
	if c.proto == ProtoBinary {
		h, body, err := c.readBin()
		if err != nil {
			return err
		}
		if h.opcode != binSet {
			return protoErr("binary set: reply opcode 0x%02x", h.opcode)
		}
		if h.status != 0 {
			return fmt.Errorf("%w: binary set status 0x%04x %q", errReply, h.status, clip(body))
		}
		return nil
	}
	l, err := c.rd.line()
	if err != nil {
		return err
	}
	want := "STORED"
	if c.proto == ProtoMeta {
		want = "HD"
	}
	if string(l) == want {
		return nil
	}
	if isErrorLine(l) || string(l) == "NOT_STORED" || string(l) == "NS" {
		return fmt.Errorf("%w: set: %q", errReply, clip(l))
	}
	return protoErr("set: unexpected reply %q", clip(l))
}

// readGet reads the reply to a get of ids, adding hits and missed ids to res.
func (c *codec) readGet(ids []uint64, res *getResult) error {
	switch c.proto {
	case ProtoText:
		return c.readTextGet(ids, res)
	case ProtoMeta:
		if len(ids) == 1 {
			return c.readMetaGet1(ids[0], res)
		}
		return c.readMetaMulti(ids, res)
	default:
		if len(ids) == 1 {
			return c.readBinGet1(ids[0], res)
		}
		return c.readBinMulti(ids, res)
	}
}

// matchKey advances through ids[*next:] to the one equal to key, adding the
// skipped ones (misses) to res. It fails when key is not among them.
func matchKey(ids []uint64, next *int, key []byte, res *getResult) (uint64, bool) {
	id, ok := parseKey(key)
	if !ok {
		return 0, false
	}
	return matchID(ids, next, id, res)
}

func matchID(ids []uint64, next *int, id uint64, res *getResult) (uint64, bool) {
	for i := *next; i < len(ids); i++ {
		if ids[i] == id {
			res.missed = append(res.missed, ids[*next:i]...)
			*next = i + 1
			return id, true
		}
	}
	return 0, false
}

func (c *codec) readTextGet(ids []uint64, res *getResult) error {
	next := 0
	bad := false
	for {
		l, err := c.rd.line()
		if err != nil {
			return err
		}
		if string(l) == "END" {
			res.missed = append(res.missed, ids[next:]...)
			if bad {
				return fmt.Errorf("%w: get: wrong key, flags or value", errReply)
			}
			return nil
		}
		if !bytes.HasPrefix(l, []byte("VALUE ")) {
			if isErrorLine(l) && next == 0 {
				res.missed = append(res.missed, ids...)
				return fmt.Errorf("%w: get: %q", errReply, clip(l))
			}
			return protoErr("get: unexpected reply %q", clip(l))
		}
		key, rest := field(l[6:])
		fs, rest := field(rest)
		ns, rest := field(rest)
		fl, ok1 := atou(fs)
		n, ok2 := atou(ns)
		if !ok1 || !ok2 || fl > 1<<32-1 || n > 1<<30 {
			return protoErr("get: malformed VALUE line %q", clip(l))
		}
		_ = rest // a cas unique may follow (gets); not requested here
		id, found := matchKey(ids, &next, key, res)
		data, err := c.rd.next(int(n) + 2)
		if err != nil {
			return err
		}
		if data[n] != '\r' || data[n+1] != '\n' {
			return protoErr("get: value not followed by \\r\\n")
		}
		if !found || !c.vals.check(id, uint32(fl), data[:n], c.vmin, c.vmax) {
			bad = true
			continue
		}
		res.hits++
	}
}

// metaFlags reads the return flags of a VA/EN/HD line: f (client flags), k
// (key), s (size, ignored). Unknown flags are ignored.
func metaFlags(rest []byte) (fl uint64, hasF bool, key []byte, ok bool) {
	ok = true
	for len(rest) > 0 {
		var t []byte
		t, rest = field(rest)
		if len(t) == 0 {
			continue
		}
		switch t[0] {
		case 'f':
			fl, hasF = atou(t[1:])
			if !hasF {
				ok = false
			}
		case 'k':
			key = t[1:]
		}
	}
	return
}

// readMetaValue reads the data block announced by a "VA <size> ..." line.
// keyID is valid when hasKey (a k flag holding a generator key came back).
func (c *codec) readMetaValue(l []byte) (data []byte, fl uint64, hasF bool, keyID uint64, hasKey bool, err error) {
	ns, rest := field(l[3:])
	n, ok := atou(ns)
	if !ok || n > 1<<30 {
		return nil, 0, false, 0, false, protoErr("mg: malformed VA line %q", clip(l))
	}
	var key []byte
	fl, hasF, key, ok = metaFlags(rest)
	if !ok {
		return nil, 0, false, 0, false, protoErr("mg: malformed flags %q", clip(l))
	}
	if key != nil { // parse before next() may move the buffer under key
		keyID, hasKey = parseKey(key)
	}
	data, err = c.rd.next(int(n) + 2)
	if err != nil {
		return nil, 0, false, 0, false, err
	}
	if data[n] != '\r' || data[n+1] != '\n' {
		return nil, 0, false, 0, false, protoErr("mg: value not followed by \\r\\n")
	}
	return data[:n], fl, hasF, keyID, hasKey, nil
}

func (c *codec) readMetaGet1(id uint64, res *getResult) error {
	l, err := c.rd.line()
	if err != nil {
		return err
	}
	switch {
	case string(l) == "EN" || bytes.HasPrefix(l, []byte("EN ")):
		res.missed = append(res.missed, id)
		return nil
	case bytes.HasPrefix(l, []byte("VA ")):
		data, fl, hasF, _, _, err := c.readMetaValue(l)
		if err != nil {
			return err
		}
		if !hasF || fl > 1<<32-1 || !c.vals.check(id, uint32(fl), data, c.vmin, c.vmax) {
			return fmt.Errorf("%w: mg: wrong flags or value", errReply)
		}
		res.hits++
		return nil
	case isErrorLine(l):
		res.missed = append(res.missed, id)
		return fmt.Errorf("%w: mg: %q", errReply, clip(l))
	}
	return protoErr("mg: unexpected reply %q", clip(l))
}

func (c *codec) readMetaMulti(ids []uint64, res *getResult) error {
	next := 0
	bad := false
	for {
		l, err := c.rd.line()
		if err != nil {
			return err
		}
		switch {
		case string(l) == "MN":
			res.missed = append(res.missed, ids[next:]...)
			if bad {
				return fmt.Errorf("%w: mg (multi): wrong key, flags or value", errReply)
			}
			return nil
		case bytes.HasPrefix(l, []byte("VA ")):
			data, fl, hasF, kid, hasKey, err := c.readMetaValue(l)
			if err != nil {
				return err
			}
			var id uint64
			found := false
			if hasKey {
				id, found = matchID(ids, &next, kid, res)
			}
			if !found || !hasF || fl > 1<<32-1 || !c.vals.check(id, uint32(fl), data, c.vmin, c.vmax) {
				bad = true
				continue
			}
			res.hits++
		case string(l) == "EN" || bytes.HasPrefix(l, []byte("EN ")):
			// q suppresses misses; a server that sends them anyway is fine.
		case isErrorLine(l):
			bad = true
		default:
			return protoErr("mg (multi): unexpected reply %q", clip(l))
		}
	}
}

// ---------------------------------------------------------------------------
// Binary protocol.

const (
	binReqMagic = 0x80
	binResMagic = 0x81
	binGet      = 0x00
	binSet      = 0x01
	binNoop     = 0x0a
	binGetKQ    = 0x0d
	binHdrLen   = 24
)

type binHeader struct {
	opcode byte
	keyLen int
	extLen int
	status uint16
	body   int
	opaque uint32
}

func appendBinHeader(dst []byte, op byte, keyLen, extLen, body int, opaque uint32) []byte {
	var h [binHdrLen]byte
	h[0] = binReqMagic
	h[1] = op
	binary.BigEndian.PutUint16(h[2:], uint16(keyLen))
	h[4] = byte(extLen)
	binary.BigEndian.PutUint32(h[8:], uint32(body))
	binary.BigEndian.PutUint32(h[12:], opaque)
	return append(dst, h[:]...)
}

// appendBinReq encodes a key request; for a set extLen is 8 (flags, expiry).
func appendBinReq(dst []byte, op byte, opaque uint32, id uint64, flags uint32, val []byte, extLen int) []byte {
	dst = appendBinHeader(dst, op, keyLen, extLen, extLen+keyLen+len(val), opaque)
	if extLen == 8 {
		var e [8]byte
		binary.BigEndian.PutUint32(e[:], flags)
		dst = append(dst, e[:]...)
	}
	dst = appendKey(dst, id)
	return append(dst, val...)
}

// readBin reads one response packet; body is valid until the next read.
func (c *codec) readBin() (binHeader, []byte, error) {
	p, err := c.rd.next(binHdrLen)
	if err != nil {
		return binHeader{}, nil, err
	}
	if p[0] != binResMagic {
		return binHeader{}, nil, protoErr("binary: bad response magic 0x%02x", p[0])
	}
	h := binHeader{
		opcode: p[1],
		keyLen: int(binary.BigEndian.Uint16(p[2:])),
		extLen: int(p[4]),
		status: binary.BigEndian.Uint16(p[6:]),
		body:   int(binary.BigEndian.Uint32(p[8:])),
		opaque: binary.BigEndian.Uint32(p[12:]),
	}
	if h.body > 1<<30 || h.keyLen+h.extLen > h.body {
		return h, nil, protoErr("binary: bad lengths key %d extras %d body %d", h.keyLen, h.extLen, h.body)
	}
	body, err := c.rd.next(h.body)
	return h, body, err
}

func (c *codec) readBinGet1(id uint64, res *getResult) error {
	h, body, err := c.readBin()
	if err != nil {
		return err
	}
	if h.opcode != binGet {
		return protoErr("binary get: reply opcode 0x%02x", h.opcode)
	}
	switch h.status {
	case 0:
	case 1: // key not found
		res.missed = append(res.missed, id)
		return nil
	default:
		res.missed = append(res.missed, id)
		return fmt.Errorf("%w: binary get status 0x%04x", errReply, h.status)
	}
	if h.extLen != 4 {
		return fmt.Errorf("%w: binary get: %d bytes of extras", errReply, h.extLen)
	}
	fl := binary.BigEndian.Uint32(body)
	if !c.vals.check(id, fl, body[4+h.keyLen:], c.vmin, c.vmax) {
		return fmt.Errorf("%w: binary get: wrong flags or value", errReply)
	}
	res.hits++
	return nil
}

func (c *codec) readBinMulti(ids []uint64, res *getResult) error {
	next := 0
	bad := false
	for {
		h, body, err := c.readBin()
		if err != nil {
			return err
		}
		switch h.opcode {
		case binNoop:
			res.missed = append(res.missed, ids[next:]...)
			if h.opaque != uint32(len(ids)) {
				return protoErr("binary noop: opaque %d, want %d", h.opaque, len(ids))
			}
			if bad {
				return fmt.Errorf("%w: binary getkq: wrong key, flags or value", errReply)
			}
			return nil
		case binGetKQ:
			if h.status != 0 || h.extLen != 4 {
				bad = true // a quiet get reports errors other than a miss
				continue
			}
			key := body[4 : 4+h.keyLen]
			id, found := matchKey(ids, &next, key, res)
			if !found || h.opaque != uint32(next-1) ||
				!c.vals.check(id, binary.BigEndian.Uint32(body), body[4+h.keyLen:], c.vmin, c.vmax) {
				bad = true
				continue
			}
			res.hits++
		default:
			return protoErr("binary getkq: reply opcode 0x%02x", h.opcode)
		}
	}
}
