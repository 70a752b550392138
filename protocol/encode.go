package protocol

import "strconv"

// Fixed text-protocol replies, with their line endings.
var (
	ReplyStored    = []byte("STORED\r\n")
	ReplyNotStored = []byte("NOT_STORED\r\n")
	ReplyExists    = []byte("EXISTS\r\n")
	ReplyNotFound  = []byte("NOT_FOUND\r\n")
	ReplyDeleted   = []byte("DELETED\r\n")
	ReplyTouched   = []byte("TOUCHED\r\n")
	ReplyEnd       = []byte("END\r\n")
	ReplyOK        = []byte("OK\r\n")
	ReplyReset     = []byte("RESET\r\n")
	ReplyMetaNoop  = []byte("MN\r\n")
	crlf           = []byte("\r\n")
)

// AppendLine appends s and "\r\n".
func AppendLine(dst []byte, s string) []byte {
	dst = append(dst, s...)
	return append(dst, crlf...)
}

// AppendValue appends a retrieval hit: "VALUE key flags bytes [cas]\r\n",
// the value and "\r\n".
func AppendValue(dst, key []byte, flags uint32, value []byte, cas uint64, withCAS bool) []byte {
	dst = AppendValueHeader(dst, key, flags, len(value), cas, withCAS)
	dst = append(dst, value...)
	return append(dst, crlf...)
}

// AppendValueHeader appends a retrieval hit's line, "VALUE key flags bytes
// [cas]\r\n", for a value of size bytes that the caller sends after it,
// followed by "\r\n".
func AppendValueHeader(dst, key []byte, flags uint32, size int, cas uint64, withCAS bool) []byte {
	dst = append(dst, "VALUE "...)
	dst = append(dst, key...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(flags), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(size), 10)
	if withCAS {
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, cas, 10)
	}
	return append(dst, crlf...)
}

// AppendUint appends a decimal and "\r\n" (incr/decr replies).
func AppendUint(dst []byte, v uint64) []byte {
	dst = strconv.AppendUint(dst, v, 10)
	return append(dst, crlf...)
}

// AppendStat appends "STAT name value\r\n".
func AppendStat(dst []byte, name, value string) []byte {
	dst = append(dst, "STAT "...)
	dst = append(dst, name...)
	dst = append(dst, ' ')
	dst = append(dst, value...)
	return append(dst, crlf...)
}
