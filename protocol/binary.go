package protocol

import (
	"encoding/binary"
	"errors"
)

// memcached's binary protocol (protocol_binary.h). Every request and reply
// starts with a 24-byte header in network byte order:
//
//	0 magic  1 opcode  2-3 key length  4 extras length  5 data type
//	6-7 vbucket (request) / status (reply)  8-11 total body length
//	12-15 opaque  16-23 CAS
//
// followed by the body: extras, key, value. Byte slices in BinRequest point
// into the parsed buffer; nothing here allocates.

// Binary protocol framing constants.
const (
	BinRequestMagic  = 0x80
	BinResponseMagic = 0x81
	BinHeaderLen     = 24
	// MaxSASLMechLen is memcached's MAX_SASL_MECH_LEN: the longest
	// mechanism name a SASL auth or step request may carry as its key.
	MaxSASLMechLen = 32
	// NoInitialExptime is the incr/decr expiration that means "fail on a
	// miss" instead of creating the counter with its initial value.
	NoInitialExptime = 0xffffffff
)

// Binary protocol opcodes, as memcached's PROTOCOL_BINARY_CMD_*.
const (
	OpGet           uint8 = 0x00
	OpSet           uint8 = 0x01
	OpAdd           uint8 = 0x02
	OpReplace       uint8 = 0x03
	OpDelete        uint8 = 0x04
	OpIncrement     uint8 = 0x05
	OpDecrement     uint8 = 0x06
	OpQuit          uint8 = 0x07
	OpFlush         uint8 = 0x08
	OpGetQ          uint8 = 0x09
	OpNoop          uint8 = 0x0a
	OpVersion       uint8 = 0x0b
	OpGetK          uint8 = 0x0c
	OpGetKQ         uint8 = 0x0d
	OpAppend        uint8 = 0x0e
	OpPrepend       uint8 = 0x0f
	OpStat          uint8 = 0x10
	OpSetQ          uint8 = 0x11
	OpAddQ          uint8 = 0x12
	OpReplaceQ      uint8 = 0x13
	OpDeleteQ       uint8 = 0x14
	OpIncrementQ    uint8 = 0x15
	OpDecrementQ    uint8 = 0x16
	OpQuitQ         uint8 = 0x17
	OpFlushQ        uint8 = 0x18
	OpAppendQ       uint8 = 0x19
	OpPrependQ      uint8 = 0x1a
	OpVerbosity     uint8 = 0x1b // defined by the spec; memcached 1.6 answers "Unknown command"
	OpTouch         uint8 = 0x1c
	OpGAT           uint8 = 0x1d
	OpGATQ          uint8 = 0x1e
	OpSASLListMechs uint8 = 0x20
	OpSASLAuth      uint8 = 0x21
	OpSASLStep      uint8 = 0x22
	OpGATK          uint8 = 0x23
	OpGATKQ         uint8 = 0x24
)

// BinStatus is a reply's status field, as memcached's
// PROTOCOL_BINARY_RESPONSE_*.
type BinStatus uint16

// Binary protocol statuses.
const (
	StatusOK             BinStatus = 0x00
	StatusKeyNotFound    BinStatus = 0x01
	StatusKeyExists      BinStatus = 0x02
	StatusTooLarge       BinStatus = 0x03
	StatusInvalid        BinStatus = 0x04
	StatusNotStored      BinStatus = 0x05
	StatusDeltaBadValue  BinStatus = 0x06
	StatusAuthError      BinStatus = 0x20
	StatusAuthContinue   BinStatus = 0x21
	StatusUnknownCommand BinStatus = 0x81
	StatusOutOfMemory    BinStatus = 0x82
)

// Message is the body memcached sends with an error status
// (write_bin_error's generic texts).
func (s BinStatus) Message() string {
	switch s {
	case StatusOutOfMemory:
		return "Out of memory"
	case StatusUnknownCommand:
		return "Unknown command"
	case StatusKeyNotFound:
		return "Not found"
	case StatusInvalid:
		return "Invalid arguments"
	case StatusKeyExists:
		return "Data exists for key."
	case StatusTooLarge:
		return "Too large."
	case StatusDeltaBadValue:
		return "Non-numeric server-side value for incr or decr"
	case StatusNotStored:
		return "Not stored."
	case StatusAuthError:
		return "Auth failure."
	}
	return ""
}

// BinHeader is a decoded request or reply header.
type BinHeader struct {
	Magic    uint8
	Opcode   uint8
	KeyLen   uint16
	ExtLen   uint8
	DataType uint8
	VBucket  uint16 // the status in a reply
	BodyLen  uint32
	Opaque   uint32
	CAS      uint64
}

// ParseBinHeader decodes the 24-byte header at the start of buf; false if
// buf is shorter. It checks nothing.
func ParseBinHeader(buf []byte, h *BinHeader) bool {
	if len(buf) < BinHeaderLen {
		return false
	}
	h.Magic = buf[0]
	h.Opcode = buf[1]
	h.KeyLen = binary.BigEndian.Uint16(buf[2:])
	h.ExtLen = buf[4]
	h.DataType = buf[5]
	h.VBucket = binary.BigEndian.Uint16(buf[6:])
	h.BodyLen = binary.BigEndian.Uint32(buf[8:])
	h.Opaque = binary.BigEndian.Uint32(buf[12:])
	h.CAS = binary.BigEndian.Uint64(buf[16:])
	return true
}

// Errors of ParseBinRequest.
var (
	// ErrBadMagic: the request does not start with 0x80. memcached closes
	// the connection without a reply.
	ErrBadMagic = errors.New("protocol: bad binary request magic")
	// ErrBinLengths: the key and extras do not fit in the body length.
	// memcached answers StatusUnknownCommand and closes.
	ErrBinLengths = errors.New("protocol: binary key and extras longer than body")
)

// BinRequest is a parsed binary request up to its key. The value, if the
// command has one, is the ValueLen bytes that follow Key in the buffer;
// ParseBinRequest does not wait for it, so the caller can refuse a value
// too large to buffer.
type BinRequest struct {
	BinHeader
	Extras   []byte
	Key      []byte
	ValueLen int // BodyLen - ExtLen - KeyLen
	// Set by Validate:
	Command uint8 // Opcode with a quiet variant mapped to its base opcode
	Quiet   bool  // the request asked for no success reply
}

// KeyEnd is the offset, from the start of the request, just past the key:
// the bytes memcached consumes before it looks at the value.
func (r *BinRequest) KeyEnd() int { return BinHeaderLen + int(r.ExtLen) + int(r.KeyLen) }

// Len is the request's total length, header and whole body.
func (r *BinRequest) Len() int { return BinHeaderLen + int(r.BodyLen) }

// ParseBinRequest parses the header, extras and key at the start of buf,
// as memcached's try_read_command_binary and the first check of
// dispatch_bin_command. When buf is too short it returns ErrIncomplete and
// need, the length buf must reach (at most 24+255+65535 bytes, whatever
// the header claims). ErrBadMagic needs a full header; ErrBinLengths is
// reported once the key is in, as memcached does.
func ParseBinRequest(buf []byte, r *BinRequest) (need int, err error) {
	if !ParseBinHeader(buf, &r.BinHeader) {
		return BinHeaderLen, ErrIncomplete
	}
	if r.Magic != BinRequestMagic {
		return 0, ErrBadMagic
	}
	end := r.KeyEnd()
	if len(buf) < end {
		return end, ErrIncomplete
	}
	if uint32(r.KeyLen)+uint32(r.ExtLen) > r.BodyLen {
		return 0, ErrBinLengths
	}
	r.Extras = buf[BinHeaderLen : BinHeaderLen+int(r.ExtLen)]
	r.Key = buf[BinHeaderLen+int(r.ExtLen) : end]
	r.ValueLen = int(r.BodyLen) - int(r.ExtLen) - int(r.KeyLen)
	r.Command, r.Quiet = r.Opcode, false
	return 0, nil
}

// quietBase maps each quiet opcode to its base command.
var quietBase = [256]uint8{
	OpGetQ: OpGet, OpGetKQ: OpGetK, OpSetQ: OpSet, OpAddQ: OpAdd,
	OpReplaceQ: OpReplace, OpDeleteQ: OpDelete, OpIncrementQ: OpIncrement,
	OpDecrementQ: OpDecrement, OpQuitQ: OpQuit, OpFlushQ: OpFlush,
	OpAppendQ: OpAppend, OpPrependQ: OpPrepend, OpGATQ: OpGAT, OpGATKQ: OpGATK,
}

// Validate applies memcached's per-command length rules
// (dispatch_bin_command) to a request parsed by ParseBinRequest and sets
// Command and Quiet. It returns StatusOK, StatusInvalid (a protocol
// error: memcached replies and closes) or StatusUnknownCommand (an opcode
// memcached does not implement: it replies and swallows BodyLen bytes
// after the key).
func (r *BinRequest) Validate() BinStatus {
	if r.KeyLen > MaxKeyLength {
		return StatusInvalid
	}
	r.Command, r.Quiet = r.Opcode, false
	if b := quietBase[r.Opcode]; b != 0 || r.Opcode == OpGetQ {
		r.Command, r.Quiet = b, true
	}
	ext, key, body := uint32(r.ExtLen), uint32(r.KeyLen), r.BodyLen
	ok := false
	switch r.Command {
	case OpVersion, OpNoop, OpQuit, OpSASLListMechs:
		ok = ext == 0 && key == 0 && body == 0
	case OpFlush:
		ok = key == 0 && body == ext && (ext == 0 || ext == 4)
	case OpSet, OpAdd, OpReplace:
		ok = ext == 8 && key != 0 && body >= key+8
	case OpGet, OpGetK, OpDelete:
		ok = ext == 0 && key > 0 && body == key
	case OpIncrement, OpDecrement:
		ok = key > 0 && ext == 20 && body == key+ext
	case OpAppend, OpPrepend:
		ok = key > 0 && ext == 0
	case OpStat:
		ok = ext == 0
	case OpSASLAuth, OpSASLStep:
		ok = ext == 0 && key != 0
	case OpTouch, OpGAT, OpGATK:
		ok = ext == 4 && key != 0
	default:
		return StatusUnknownCommand
	}
	if !ok {
		return StatusInvalid
	}
	return StatusOK
}

// SetExtras decodes set/add/replace extras: flags and expiration.
func (r *BinRequest) SetExtras() (flags, exptime uint32) {
	if len(r.Extras) < 8 {
		return 0, 0
	}
	return binary.BigEndian.Uint32(r.Extras), binary.BigEndian.Uint32(r.Extras[4:])
}

// ArithExtras decodes incr/decr extras: delta, initial value, expiration.
func (r *BinRequest) ArithExtras() (delta, initial uint64, exptime uint32) {
	if len(r.Extras) < 20 {
		return 0, 0, 0
	}
	e := r.Extras
	return binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(e[8:]), binary.BigEndian.Uint32(e[16:])
}

// ExptimeExtras decodes the 4-byte expiration of touch, gat and flush; 0
// when there are no extras.
func (r *BinRequest) ExptimeExtras() uint32 {
	if len(r.Extras) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(r.Extras)
}

// AppendBinHeader appends a reply header; the caller appends the body of
// bodyLen bytes (extLen of extras, keyLen of key, then the value).
func AppendBinHeader(dst []byte, opcode uint8, status BinStatus, extLen, keyLen, bodyLen int, opaque uint32, cas uint64) []byte {
	return appendHeader(dst, BinResponseMagic, opcode, uint16(status), extLen, keyLen, bodyLen, opaque, cas)
}

func appendHeader(dst []byte, magic, opcode uint8, vb uint16, extLen, keyLen, bodyLen int, opaque uint32, cas uint64) []byte {
	dst = append(dst, magic, opcode, byte(keyLen>>8), byte(keyLen), byte(extLen), 0, byte(vb>>8), byte(vb))
	dst = binary.BigEndian.AppendUint32(dst, uint32(bodyLen))
	dst = binary.BigEndian.AppendUint32(dst, opaque)
	return binary.BigEndian.AppendUint64(dst, cas)
}

// AppendBinResponse appends a whole reply: header, extras, key, value.
func AppendBinResponse(dst []byte, opcode uint8, status BinStatus, opaque uint32, cas uint64, extras, key, value []byte) []byte {
	dst = AppendBinHeader(dst, opcode, status, len(extras), len(key), len(extras)+len(key)+len(value), opaque, cas)
	dst = append(dst, extras...)
	dst = append(dst, key...)
	return append(dst, value...)
}

// AppendBinError appends an error reply whose body is the status's message,
// as memcached's write_bin_error: CAS 0, no extras, no key.
func AppendBinError(dst []byte, opcode uint8, status BinStatus, opaque uint32) []byte {
	msg := status.Message()
	dst = AppendBinHeader(dst, opcode, status, 0, 0, len(msg), opaque, 0)
	return append(dst, msg...)
}

// AppendBinString appends a status-OK reply with a string value and no
// extras or key (version, SASL mechanisms, "Authenticated").
func AppendBinString(dst []byte, opcode uint8, status BinStatus, opaque uint32, value string) []byte {
	dst = AppendBinHeader(dst, opcode, status, 0, 0, len(value), opaque, 0)
	return append(dst, value...)
}

// AppendBinValue appends a get/gat/touch hit: the 4-byte flags as extras,
// then key (getk, gatk) and value, either of which may be empty.
func AppendBinValue(dst []byte, opcode uint8, opaque uint32, cas uint64, flags uint32, key, value []byte) []byte {
	return append(AppendBinValueHeader(dst, opcode, opaque, cas, flags, key, len(value)), value...)
}

// AppendBinValueHeader appends what AppendBinValue puts before the value
// of valueLen bytes (header, flags, key), for a reply whose value is
// written from elsewhere (item memory).
func AppendBinValueHeader(dst []byte, opcode uint8, opaque uint32, cas uint64, flags uint32, key []byte, valueLen int) []byte {
	dst = AppendBinHeader(dst, opcode, StatusOK, 4, len(key), 4+len(key)+valueLen, opaque, cas)
	dst = binary.BigEndian.AppendUint32(dst, flags)
	return append(dst, key...)
}

// AppendBinCounter appends an incr/decr success: the new value as an
// 8-byte body.
func AppendBinCounter(dst []byte, opcode uint8, opaque uint32, cas, value uint64) []byte {
	dst = AppendBinHeader(dst, opcode, StatusOK, 0, 0, 8, opaque, cas)
	return binary.BigEndian.AppendUint64(dst, value)
}

// AppendBinStat appends one stat reply packet; an empty name and value is
// the terminator that ends a stat reply.
func AppendBinStat(dst []byte, opaque uint32, name, value []byte) []byte {
	dst = AppendBinHeader(dst, OpStat, StatusOK, 0, len(name), len(name)+len(value), opaque, 0)
	dst = append(dst, name...)
	return append(dst, value...)
}

// AppendBinStatsFromText converts text stat lines ("STAT name value\r\n",
// as the server's stats generators produce) to binary stat packets. Lines
// that are not stats are skipped. No terminator is added.
func AppendBinStatsFromText(dst []byte, opaque uint32, text []byte) []byte {
	for len(text) > 0 {
		line := text
		next := len(text)
		for i := 0; i+1 < len(text); i++ {
			if text[i] == '\r' && text[i+1] == '\n' {
				line, next = text[:i], i+2
				break
			}
		}
		text = text[next:]
		const prefix = "STAT "
		if len(line) < len(prefix) || string(line[:len(prefix)]) != prefix {
			continue
		}
		line = line[len(prefix):]
		name, value := line, line[len(line):]
		for i, c := range line {
			if c == ' ' {
				name, value = line[:i], line[i+1:]
				break
			}
		}
		dst = AppendBinStat(dst, opaque, name, value)
	}
	return dst
}

// AppendBinRequest appends a request: header (vbucket 0, data type 0),
// extras, key and value. Clients and tests use it.
func AppendBinRequest(dst []byte, opcode uint8, opaque uint32, cas uint64, extras, key, value []byte) []byte {
	dst = appendHeader(dst, BinRequestMagic, opcode, 0, len(extras), len(key), len(extras)+len(key)+len(value), opaque, cas)
	dst = append(dst, extras...)
	dst = append(dst, key...)
	return append(dst, value...)
}
