package protocol

import "strconv"

// Meta protocol limits, as memcached's MFLAG_MAX_OPT_LENGTH (counted in
// tokenizer tokens, the terminal one included) and MFLAG_MAX_OPAQUE_LENGTH
// (the O token, its letter included).
const (
	metaMaxTokens    = 20
	metaMaxOpaqueLen = 32
)

// Meta-command errors, with memcached's exact text.
const (
	ErrMetaInvalidFlag    Reply = "CLIENT_ERROR invalid flag"
	ErrMetaDuplicateFlag  Reply = "CLIENT_ERROR duplicate flag"
	ErrMetaInvalidOrDup   Reply = "CLIENT_ERROR invalid or duplicate flag" // md, ma: every flag error
	ErrMetaBadToken       Reply = "CLIENT_ERROR bad token in command line format"
	ErrMetaDecodeKey      Reply = "CLIENT_ERROR error decoding key"
	ErrMetaMTokenLength   Reply = "CLIENT_ERROR incorrect length for M token"
	ErrMetaBadInitial     Reply = "CLIENT_ERROR invalid numeric initial value"
	ErrMetaBadDelta       Reply = "CLIENT_ERROR invalid numeric delta value"
	ErrMetaOpaqueTooLong  Reply = "CLIENT_ERROR opaque token too long"
	ErrMetaGetTooManyOpts Reply = "CLIENT_ERROR options flags are too long" // mg
	ErrMetaTooManyOpts    Reply = "CLIENT_ERROR options flags too long"     // ms, md, ma
	ErrMetaSetMode        Reply = "CLIENT_ERROR invalid mode for ms M token"
	ErrMetaArithMode      Reply = "CLIENT_ERROR invalid mode for ma M token"
)

// MetaFlags is a parsed meta command: the key, the flags present and their
// tokens. Byte slices point into the request line or the key buffer given
// to ParseMeta. The zero value is ready for use; ParseMeta resets it.
type MetaFlags struct {
	Key    []byte // the key to look up: decoded when Base64
	RawKey []byte // the key token as sent
	// Size is ms's <datalen>; -1 until it is parsed. When ParseMeta fails
	// on an ms with Size >= 0, the Size+2 data bytes must be swallowed.
	Size int

	present uint64   // bit flagBit(c) for each flag letter c present
	order   [24]byte // flag letters in request order
	norder  uint8    // len(order) used
	Opaque  []byte   // the O token, letter included ("O123")
	CAS     uint64   // C
	Flags   uint32   // F (client flags)
	TTL     int64    // T, as sent (relative, absolute or negative)
	Vivify  int64    // N, as sent
	Recache int64    // R, as sent
	Delta   uint64   // D (default 1)
	Initial uint64   // J
	Mode    byte     // M's letter, 0 if none
	Base64  bool     // b
	Quiet   bool     // q
}

// flagBit maps a flag letter to its bit; 0 for a byte that is no letter.
func flagBit(c byte) uint64 {
	switch {
	case c >= 'a' && c <= 'z':
		return 1 << (c - 'a')
	case c >= 'A' && c <= 'Z':
		return 1 << (26 + c - 'A')
	}
	return 0
}

// Has reports whether flag letter c was sent.
func (m *MetaFlags) Has(c byte) bool { return m.present&flagBit(c) != 0 }

// Order returns the flag letters in the order they were sent.
func (m *MetaFlags) Order() []byte { return m.order[:m.norder] }

// flags memcached 1.6.18 accepts on every meta command, plus x (drop the
// value), which the current protocol.txt documents. E (an explicit new CAS)
// is refused as 1.6.18 refuses it: gocached's CAS also orders flushes, so
// a client-chosen CAS needs the store to keep a separate flush sequence.
var knownFlags = func() (b uint64) {
	for _, c := range []byte("bcCDfFhIJklLMNOPqRsTtuvx") {
		b |= flagBit(c)
	}
	return
}()

// ParseMeta interprets the meta request r (mg, ms, md, ma or me) into m,
// decoding a base64 key into keyBuf (which needs room for len(r.Key) bytes;
// a nil or short keyBuf is replaced by a fresh slice). Errors are Replies
// with memcached's text; they are never silenced by q.
func ParseMeta(r *Request, keyBuf []byte, m *MetaFlags) error {
	*m = MetaFlags{Size: -1, Delta: 1, RawKey: r.Key, Key: r.Key}
	cmd := r.Command
	if cmd == CmdMetaDebug {
		return parseMetaDebug(r, keyBuf, m)
	}
	if r.Key == nil {
		return ErrUnknownCommand
	}
	if len(r.Key) > MaxKeyLength {
		return ErrBadFormat
	}
	args := r.Args
	ntokens := len(args) + 3 // command, key, flags..., terminal
	if cmd == CmdMetaSet {
		if len(args) == 0 {
			return ErrBadFormat
		}
	}
	if ntokens > metaMaxTokens {
		if cmd == CmdMetaGet {
			return ErrMetaGetTooManyOpts
		}
		return ErrMetaTooManyOpts
	}
	if cmd == CmdMetaSet {
		size, ok := safeStrtol32(args[0])
		if !ok || size < 0 || size > maxValueLength {
			return ErrBadFormat
		}
		m.Size = int(size)
		args = args[1:]
	}
	err := m.preparse(args, keyBuf)
	if err != nil {
		if cmd == CmdMetaDelete || cmd == CmdMetaArith {
			return ErrMetaInvalidOrDup
		}
		return err
	}
	switch cmd {
	case CmdMetaSet:
		switch m.Mode {
		case 0, 'E', 'A', 'P', 'R', 'S':
		default:
			return ErrMetaSetMode
		}
	case CmdMetaArith:
		switch m.Mode {
		case 0, 'I', '+', 'D', '-':
		default:
			return ErrMetaArithMode
		}
	}
	if len(m.Opaque) > metaMaxOpaqueLen {
		return ErrMetaOpaqueTooLong
	}
	return nil
}

// preparse mirrors memcached's _meta_flag_preparse: a repeated flag or an
// unknown one stops at once; a bad token is remembered and parsing goes on,
// the last such error winning (a bad F keeps the previous text).
func (m *MetaFlags) preparse(args [][]byte, keyBuf []byte) error {
	var err error
	for _, tok := range args {
		c := tok[0]
		bit := flagBit(c)
		if c >= 127 || (bit != 0 && m.present&bit != 0) {
			return ErrMetaDuplicateFlag
		}
		if bit&knownFlags == 0 {
			return ErrMetaInvalidFlag
		}
		m.present |= bit
		if int(m.norder) < len(m.order) {
			m.order[m.norder] = c
			m.norder++
		}
		val := tok[1:]
		var ok bool
		switch c {
		case 'b':
			m.Base64 = true
			if cap(keyBuf) < len(m.RawKey) {
				keyBuf = make([]byte, len(m.RawKey))
			}
			n, dok := DecodeBase64Key(keyBuf[:len(m.RawKey)], m.RawKey)
			if !dok {
				err = ErrMetaDecodeKey
			}
			m.Key = keyBuf[:n]
		case 'N':
			if m.Vivify, ok = ParseInt32(val); !ok {
				err = ErrMetaBadToken
			}
		case 'T':
			if m.TTL, ok = ParseInt32(val); !ok {
				err = ErrMetaBadToken
			}
		case 'R':
			if m.Recache, ok = ParseInt32(val); !ok {
				err = ErrMetaBadToken
			}
		case 'O':
			m.Opaque = tok
		case 'q':
			m.Quiet = true
		case 'F':
			var v uint64
			if v, ok = safeStrtoull(val); !ok {
				if err == nil {
					err = ErrBadFormat
				}
			}
			m.Flags = uint32(v)
		case 'C':
			if m.CAS, ok = safeStrtoull(val); !ok {
				err = ErrMetaBadToken
			}
		case 'M':
			if len(tok) != 2 {
				err = ErrMetaMTokenLength
			} else {
				m.Mode = tok[1]
			}
		case 'J':
			if m.Initial, ok = safeStrtoull(val); !ok {
				err = ErrMetaBadInitial
			}
		case 'D':
			if m.Delta, ok = safeStrtoull(val); !ok {
				err = ErrMetaBadDelta
			}
		}
	}
	return err
}

// parseMetaDebug parses "me <key> [b]": only a first flag of exactly "b"
// means anything.
func parseMetaDebug(r *Request, keyBuf []byte, m *MetaFlags) error {
	if r.Key == nil || len(r.Key) > MaxKeyLength {
		return ErrBadFormat
	}
	if len(r.Args) > 0 && len(r.Args[0]) == 1 && r.Args[0][0] == 'b' {
		m.Base64 = true
		m.present |= flagBit('b')
		if cap(keyBuf) < len(r.Key) {
			keyBuf = make([]byte, len(r.Key))
		}
		n, ok := DecodeBase64Key(keyBuf[:len(r.Key)], r.Key)
		if !ok {
			return ErrBadFormat
		}
		m.Key = keyBuf[:n]
	}
	return nil
}

// base64 decoding table: 0x80 marks a byte outside the alphabet.
var b64dec = func() (t [256]byte) {
	for i := range t {
		t[i] = 0x80
	}
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(alpha); i++ {
		t[alpha[i]] = byte(i)
	}
	t['='] = 0
	return
}()

const b64enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// DecodeBase64Key decodes src into dst (len(dst) >= len(src)*3/4) the way
// memcached's base64_decode does: bytes outside the alphabet are skipped,
// the count of the others must be a positive multiple of 4, and decoding
// stops after the first quantum with padding (one or two '=').
func DecodeBase64Key(dst, src []byte) (int, bool) {
	count := 0
	for _, c := range src {
		if b64dec[c] != 0x80 {
			count++
		}
	}
	if count == 0 || count%4 != 0 {
		return 0, false
	}
	var block [4]byte
	n, pad := 0, 0
	count = 0
	for _, c := range src {
		t := b64dec[c]
		if t == 0x80 {
			continue
		}
		if c == '=' {
			pad++
		}
		block[count] = t
		count++
		if count == 4 {
			if n+3 > len(dst) {
				return 0, false
			}
			dst[n] = block[0]<<2 | block[1]>>4
			dst[n+1] = block[1]<<4 | block[2]>>2
			dst[n+2] = block[2]<<6 | block[3]
			n += 3
			count = 0
			if pad > 0 {
				if pad > 2 {
					return 0, false
				}
				n -= pad
				break
			}
		}
	}
	return n, n > 0
}

// AppendBase64 appends the standard, padded base64 encoding of src.
func AppendBase64(dst, src []byte) []byte {
	for len(src) >= 3 {
		v := uint(src[0])<<16 | uint(src[1])<<8 | uint(src[2])
		dst = append(dst, b64enc[v>>18&63], b64enc[v>>12&63], b64enc[v>>6&63], b64enc[v&63])
		src = src[3:]
	}
	switch len(src) {
	case 1:
		v := uint(src[0]) << 16
		dst = append(dst, b64enc[v>>18&63], b64enc[v>>12&63], '=', '=')
	case 2:
		v := uint(src[0])<<16 | uint(src[1])<<8
		dst = append(dst, b64enc[v>>18&63], b64enc[v>>12&63], b64enc[v>>6&63], '=')
	}
	return dst
}

// Meta return codes.
const (
	MetaHD = "HD"
	MetaEN = "EN"
	MetaNS = "NS"
	MetaEX = "EX"
	MetaNF = "NF"
)

// AppendMetaHeader starts a meta reply: "VA <size>" when value is true,
// else the two-letter code.
func AppendMetaHeader(dst []byte, code string, value bool, size int) []byte {
	if value {
		dst = append(dst, "VA "...)
		return strconv.AppendInt(dst, int64(size), 10)
	}
	return append(dst, code...)
}

// AppendMetaUint appends " <c><v>".
func AppendMetaUint(dst []byte, c byte, v uint64) []byte {
	dst = append(dst, ' ', c)
	return strconv.AppendUint(dst, v, 10)
}

// AppendMetaInt appends " <c><v>" for a signed value.
func AppendMetaInt(dst []byte, c byte, v int64) []byte {
	dst = append(dst, ' ', c)
	return strconv.AppendInt(dst, v, 10)
}

// AppendMetaFlag appends " <c>".
func AppendMetaFlag(dst []byte, c byte) []byte { return append(dst, ' ', c) }

// AppendMetaOpaque appends " O<token>" (the token keeps its letter).
func (m *MetaFlags) AppendOpaque(dst []byte) []byte {
	dst = append(dst, ' ')
	return append(dst, m.Opaque...)
}

// AppendMetaKey appends " k<key>", base64-encoded with a trailing " b"
// when binary is set, as memcached's META_KEY.
func AppendMetaKey(dst, key []byte, binary bool) []byte {
	dst = append(dst, ' ', 'k')
	if !binary {
		return append(dst, key...)
	}
	dst = AppendBase64(dst, key)
	return append(dst, ' ', 'b')
}

// AppendMetaEnd ends a meta reply line, then appends the value block when
// withValue is set.
func AppendMetaEnd(dst, value []byte, withValue bool) []byte {
	dst = append(dst, crlf...)
	if withValue {
		dst = append(dst, value...)
		dst = append(dst, crlf...)
	}
	return dst
}

// AppendMetaStatusFlags appends the return flags memcached echoes on a
// reply that carries no item data (EN, NF, NS, EX, and HD of md): O and k
// in request order, and c as c<cas> when withCAS (ms returns c0 on
// failure).
func (m *MetaFlags) AppendStatusFlags(dst []byte, key []byte, cas uint64, withCAS bool) []byte {
	for _, c := range m.Order() {
		switch c {
		case 'O':
			dst = m.AppendOpaque(dst)
		case 'k':
			dst = AppendMetaKey(dst, key, m.Base64)
		case 'c':
			if withCAS {
				dst = AppendMetaUint(dst, 'c', cas)
			}
		}
	}
	return dst
}
