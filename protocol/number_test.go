package protocol

import "testing"

// TestNumbers checks the number readers against what glibc's strtol and
// strtoul and memcached's safe_strto* (util.c) give on a 64-bit machine.
func TestNumbers(t *testing.T) {
	tests := []struct {
		in    string
		u64   uint64 // safe_strtoull; ok64 false: refused
		ok64  bool
		u32   uint32 // safe_strtoul into uint32_t
		i32   int32  // safe_strtol into int32_t
		okI32 bool
	}{
		{"0", 0, true, 0, 0, true},
		{"42", 42, true, 42, 42, true},
		{"+42", 42, true, 42, 42, true},
		{"-0", 0, true, 0, 0, true},
		{"-1", 0, false, 0, -1, true},
		{"\t7", 7, true, 7, 7, true},
		{"7\t", 7, true, 7, 7, true},
		{"7\tjunk", 7, true, 7, 7, true}, // white space ends the number
		{"7x", 0, false, 0, 0, false},
		{"", 0, false, 0, 0, false},
		{"+", 0, false, 0, 0, false},
		{"-", 0, false, 0, 0, false},
		{"0x10", 0, false, 0, 0, false},
		{"2147483647", 2147483647, true, 2147483647, 2147483647, true},
		{"2147483648", 2147483648, true, 2147483648, -2147483648, true},
		{"4294967295", 4294967295, true, 4294967295, -1, true},
		{"4294967296", 4294967296, true, 0, 0, true},
		{"4294967297", 4294967297, true, 1, 1, true},
		{"9223372036854775807", 1<<63 - 1, true, 1<<32 - 1, -1, true},
		{"9223372036854775808", 1 << 63, true, 0, 0, false}, // strtol: ERANGE; strtoull: negative as a long, but no '-'
		{"-9223372036854775808", 0, false, 0, 0, true},
		{"-9223372036854775809", 1<<63 - 1, true, 1<<32 - 1, 0, false},
		{"18446744073709551615", 1<<64 - 1, true, 1<<32 - 1, 0, false},
		{"18446744073709551616", 0, false, 0, 0, false},
		{"-18446744073709551615", 1, true, 1, 0, false}, // strtoull negates modulo 2^64
	}
	for _, tt := range tests {
		b := []byte(tt.in)
		u, ok := safeStrtoull(b)
		if ok != tt.ok64 || (ok && u != tt.u64) {
			t.Errorf("safeStrtoull(%q) = %d, %v; want %d, %v", tt.in, u, ok, tt.u64, tt.ok64)
		}
		if u32, ok := safeStrtoul32(b); ok != tt.ok64 || (ok && u32 != tt.u32) {
			t.Errorf("safeStrtoul32(%q) = %d, %v; want %d, %v", tt.in, u32, ok, tt.u32, tt.ok64)
		}
		if i, ok := safeStrtol32(b); ok != tt.okI32 || (ok && i != tt.i32) {
			t.Errorf("safeStrtol32(%q) = %d, %v; want %d, %v", tt.in, i, ok, tt.i32, tt.okI32)
		}
	}
}

func BenchmarkParseNumber(b *testing.B) {
	in := []byte("1234567")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := safeStrtol32(in); !ok {
			b.Fatal("refused")
		}
	}
}
