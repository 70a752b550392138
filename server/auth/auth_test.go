package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePlain(t *testing.T) {
	tests := []struct {
		msg              string
		authz, user, pwd string
		ok               bool
	}{
		{"\x00alice\x00secret", "", "alice", "secret", true},
		{"alice\x00alice\x00secret", "alice", "alice", "secret", true},
		{"\x00alice\x00", "", "alice", "", true},
		{"\x00\x00secret", "", "", "", false},
		{"alicesecret", "", "", "", false},
		{"\x00alice", "", "", "", false},
		{"\x00alice\x00se\x00cret", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, tt := range tests {
		a, u, p, ok := ParsePlain([]byte(tt.msg))
		if ok != tt.ok || string(a) != tt.authz || string(u) != tt.user || string(p) != tt.pwd {
			t.Errorf("ParsePlain(%q) = %q %q %q %v", tt.msg, a, u, p, ok)
		}
	}
}

func TestCheckPassword(t *testing.T) {
	db := "alice:secret\nbob:pa:ss:extra\r\ncarol:\ndave:dos\r\nalice:other\nnocolon\n:nouser\n"
	tests := []struct {
		user, pass string
		ok         bool
	}{
		{"alice", "secret", true},
		{"alice", "other", false}, // the first line for a user decides
		{"alice", "secre", false},
		{"alice", "secrets", false},
		{"alice", "", false},
		{"bob", "pa", true}, // the password ends at ':' as in memcached
		{"bob", "pa:ss", false},
		{"carol", "", true},
		{"carol", "x", false},
		{"dave", "dos", true}, // CRLF line ends
		{"eve", "secret", false},
		{"nocolon", "", false},
		{"", "nouser", false},
		{"ali", "ce:secret", false},
		{"alice:secret", "", false},
		{"alice", strings.Repeat("x", 300), false},
	}
	for _, tt := range tests {
		if got := CheckPassword(strings.NewReader(db), []byte(tt.user), []byte(tt.pass)); got != tt.ok {
			t.Errorf("CheckPassword(%q, %q) = %v, want %v", tt.user, tt.pass, got, tt.ok)
		}
	}
}

func TestCheckPlainFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pwdb")
	if err := os.WriteFile(path, []byte("alice:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, msg string
		ok        bool
	}{
		{path, "\x00alice\x00secret", true},
		{path, "alice\x00alice\x00secret", true},
		{path, "bob\x00alice\x00secret", false}, // no proxy authorization
		{path, "\x00alice\x00wrong", false},
		{path, "garbage", false},
		{"", "\x00alice\x00secret", false},
		{path + ".missing", "\x00alice\x00secret", false},
	}
	for _, tt := range tests {
		if got := CheckPlain(tt.path, []byte(tt.msg)); got != tt.ok {
			t.Errorf("CheckPlain(%q, %q) = %v, want %v", tt.path, tt.msg, got, tt.ok)
		}
	}
}

func TestPasswordDBPath(t *testing.T) {
	t.Setenv(EnvPasswordDB, "/from/env")
	if got := PasswordDBPath(nil); got != "/from/env" {
		t.Errorf("env: %q", got)
	}
	if got := PasswordDBPath(map[string]string{OptionPasswordDB: "/from/option"}); got != "/from/option" {
		t.Errorf("option: %q", got)
	}
	t.Setenv(EnvPasswordDB, "")
	if got := PasswordDBPath(map[string]string{}); got != "" {
		t.Errorf("none: %q", got)
	}
}
