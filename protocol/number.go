package protocol

import "bytes"

// Numbers are read as memcached reads them: glibc's strtol/strtoul on a
// 64-bit long (leading white space, an optional sign, decimal digits,
// ERANGE past 64 bits), accepted when the digits end the token or are
// followed by white space (memcached's safe_strto* in util.c), and then, for
// most fields, stored into a 32-bit variable. So an exptime of 4294967295
// is -1 (expired at once), 4294967296 is 0 (never expires) and a length of
// 4294967297 is 1. Clients depend on it: libmemcached sends an exptime of -1
// as 4294967295.

// isCSpace is C's isspace in the C locale.
func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// cStrto scans b as glibc's strtoul/strtol do in base 10 and applies
// safe_strto*'s end check. It returns the magnitude of the number, whether
// it had a '-' sign, and false when there are no digits, the magnitude
// overflows 64 bits, or a byte other than white space follows the digits.
func cStrto(b []byte) (mag uint64, neg, ok bool) {
	i := 0
	for i < len(b) && isCSpace(b[i]) {
		i++
	}
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		neg = b[i] == '-'
		i++
	}
	start := i
	overflow := false
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := uint64(b[i] - '0')
		if mag > (1<<64-1-d)/10 {
			overflow = true
		}
		mag = mag*10 + d
	}
	if i == start || overflow || (i < len(b) && !isCSpace(b[i])) {
		return 0, false, false
	}
	return mag, neg, true
}

// safeStrtoull is memcached's safe_strtoull (and, before truncation,
// safe_strtoul): strtoull negates a number with a '-' sign modulo 2^64, and
// only a result that is negative as a signed number is refused for it
// ("-0" is 0, "-1" is refused).
func safeStrtoull(b []byte) (uint64, bool) {
	mag, neg, ok := cStrto(b)
	if !ok {
		return 0, false
	}
	v := mag
	if neg {
		v = -mag
	}
	if int64(v) < 0 && bytes.IndexByte(b, '-') >= 0 {
		return 0, false
	}
	return v, true
}

// safeStrtoul32 is memcached's safe_strtoul into a uint32_t: the unsigned
// long is truncated to its low 32 bits (client flags, verbosity,
// cache_memlimit).
func safeStrtoul32(b []byte) (uint32, bool) {
	v, ok := safeStrtoull(b)
	return uint32(v), ok
}

// safeStrtol is memcached's safe_strtol before truncation: strtol into a
// 64-bit long, refused (ERANGE) outside int64.
func safeStrtol(b []byte) (int64, bool) {
	mag, neg, ok := cStrto(b)
	switch {
	case !ok:
		return 0, false
	case neg && mag > 1<<63:
		return 0, false
	case neg:
		return -int64(mag), true // -(1<<63) wraps to itself, as wanted
	case mag > 1<<63-1:
		return 0, false
	}
	return int64(mag), true
}

// safeStrtol32 is memcached's safe_strtol into an int32_t: the long is
// truncated to its low 32 bits (exptimes and value lengths).
func safeStrtol32(b []byte) (int32, bool) {
	v, ok := safeStrtol(b)
	return int32(v), ok
}

// ParseUint64 parses an unsigned 64-bit argument as memcached's
// safe_strtoull (a '+' sign and white space around the digits allowed).
func ParseUint64(b []byte) (uint64, bool) { return safeStrtoull(b) }

// ParseUint32 parses an argument memcached reads with safe_strtoul into a
// 32-bit field: the 64-bit value is truncated.
func ParseUint32(b []byte) (uint32, bool) { return safeStrtoul32(b) }

// ParseInt32 parses an argument memcached reads with safe_strtol into a
// 32-bit field (an exptime or a delay): the 64-bit value is truncated, so
// 4294967295 is -1.
func ParseInt32(b []byte) (int64, bool) {
	v, ok := safeStrtol32(b)
	return int64(v), ok
}
