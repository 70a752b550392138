package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// writeAuthFile writes a -Y file and returns its path.
func writeAuthFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// converse writes each chunk (pausing between them, so each is a read of
// its own) and returns everything read until the server is idle for idle,
// with <EOF> appended when it closed the connection.
func converse(addr string, chunks []string, idle time.Duration) []byte {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return []byte(fmt.Sprintf("<dial: %v>", err))
	}
	defer c.Close()
	for i, ch := range chunks {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := c.Write([]byte(ch)); err != nil {
			return []byte("<write failed>")
		}
	}
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return out
			}
			return append(out, "<EOF>"...)
		}
	}
}

// asciiAuthScripts are conversations with a -Y server; "|" separates the
// chunks written separately. Each uses its own keys once authenticated.
var asciiAuthScripts = []string{
	"get foo\r\n",
	"get foo\r\nget foo\r\n",
	"get foo\r\n|get foo\r\n",
	"version\r\n",
	"mn\r\n",
	"\r\n",
	"x",
	"set a 0 0 9\r\nuser pass\r\nget k1\r\n",
	"set a 0 0 9\r\nuser pasx\r\nget a\r\n",
	"set a 0 0 9\r\nuser pasx\r\n|get a\r\n",
	"set a 0 0 9\r\nuser pasx\r\nset a 0 0 9\r\nuser pass\r\nversion\r\n",
	"set a 0 0 9\r\nuser pasx\r\n|set a 0 0 9\r\nuser pass\r\n|version\r\n",
	"set a 0 0 9\r\n|user pass\r\n|version\r\n",
	"set a 0 0\r\n",
	"set a 0 0 9 noreply\r\nuser pass\r\nversion\r\n",
	"set a 0 0 9\r\nuser pass\r\nset k2 0 0 2\r\nhi\r\nget k2\r\n",
	"SET a 0 0 9\r\nuser pass\r\n",
	"add a 0 0 9\r\nuser pass\r\n",
	"set a 0 0 4\r\nuser\r\n",
	"set a 0 0 0\r\n\r\n",
	"set a 0 0 11\r\nuser pass x\r\nversion\r\n",
	"set a 0 0 9\r\nuser passXX\r\n",
	"set a 0 0 9\r\nuser  pass\r\n",
	"set a 0 0 10\r\n user pass\r\n",
	"set a 0 0 10\r\nbob secret\r\n",
	"set a 0 0 10\r\nbob:secret\r\n",
	"set a 0 0 9\r\nbob secre\r\n",
	"set a 0 0 9\r\nuser\x00pass\r\n",
	"set  a 0 0 9\r\nuser pass\r\n",
	"set a 0 0 9\nuser pass\r\nversion\n",
	"set a 0 0 x\r\n",
	"set a 0 0 -1\r\nversion\r\n",
	"set a 0 0 +9\r\nuser pass\r\nversion\r\n",
	"set a 0 0 4294967305\r\nuser pass\r\nversion\r\n",
	"set a 0 0 9x\r\n",
	"set a 0 0 9\r\nuser pass",
	"set a\r\nuser pass\r\n",
	"\x80\x0a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
	"set a 0 0 14\r\nuser pass:word\r\n",
	"set a 0 0 12\r\ncolon a:b:c\r\nversion\r\n",
	"set a 0 0 8\r\nempty \r\n",
	strings.Repeat("x", 3000),
	strings.Repeat("x", 1000) + "\r\n",
}

const testAuthFile = "user:pass\nbob:secret\ncolon:a:b:c\n"

// TestASCIIAuthMatchesMemcached plays every script against memcached -Y and
// gocached with the same file and compares the bytes.
func TestASCIIAuthMatchesMemcached(t *testing.T) {
	path := writeAuthFile(t, testAuthFile)
	ref := testutil.StartMemcached(t, "-Y", path)
	got := testutil.StartGocached(t, func(c *server.Config) { c.AuthFile = path })
	for i, script := range asciiAuthScripts {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			chunks := strings.Split(script, "|")
			var want, have []byte
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); want = converse(ref, chunks, 200*time.Millisecond) }()
			go func() { defer wg.Done(); have = converse(got, chunks, 200*time.Millisecond) }()
			wg.Wait()
			if !bytes.Equal(want, have) {
				t.Errorf("script %q:\nmemcached: %q\ngocached:  %q", script, want, have)
			}
		})
	}
}

var authStatRE = regexp.MustCompile(`STAT (auth_cmds|auth_errors|auth_enabled_ascii) \S+\r\n`)

// TestASCIIAuthStats compares the counters and the setting after failed,
// malformed and successful attempts.
func TestASCIIAuthStats(t *testing.T) {
	path := writeAuthFile(t, testAuthFile)
	ref := testutil.StartMemcached(t, "-Y", path)
	got := testutil.StartGocached(t, func(c *server.Config) { c.AuthFile = path })
	chunks := []string{
		"get x\r\n", "set a 0 0 9\r\nuser pasx\r\n", "set a 0 0 4\r\nuser\r\n",
		"set a 0 0 9\r\nuser pass\r\n", "stats\r\nstats settings\r\n",
	}
	for i, addr := range []string{ref, got} {
		out := converse(addr, chunks, 300*time.Millisecond)
		stats := strings.Join(authStatRE.FindAllString(string(out), -1), "")
		want := "STAT auth_cmds 2\r\nSTAT auth_errors 1\r\nSTAT auth_enabled_ascii " + path + "\r\n"
		if stats != want {
			t.Errorf("%s: auth stats %q, want %q", []string{"memcached", "gocached"}[i], stats, want)
		}
	}
}

func TestASCIIAuthConfigErrors(t *testing.T) {
	good := writeAuthFile(t, testAuthFile)
	for _, tc := range []struct {
		name   string
		mutate func(*server.Config)
		want   string
	}{
		{"missing", func(c *server.Config) { c.AuthFile = "/nonexistent/auth" }, "Could not open authfile [/nonexistent/auth] for reading"},
		{"blank line", func(c *server.Config) { c.AuthFile = writeAuthFile(t, "a:b\n\nc:d\n") }, "has a malformed entry. Should be 'user:password'"},
		{"no colon", func(c *server.Config) { c.AuthFile = writeAuthFile(t, "nocolon\n") }, "has a malformed entry"},
		{"binary", func(c *server.Config) { c.AuthFile, c.Protocol = good, "binary" }, "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens."},
		{"udp", func(c *server.Config) { c.AuthFile, c.UDPPort = good, 11211 }, "Cannot use UDP with ascii authentication enabled (-U 0 to disable)"},
	} {
		cfg := server.DefaultConfig()
		tc.mutate(&cfg)
		_, err := server.New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want %q", tc.name, err, tc.want)
		}
	}
	// An empty file is valid and lets nobody in.
	cfg := server.DefaultConfig()
	cfg.AuthFile = writeAuthFile(t, "")
	if _, err := server.New(cfg); err != nil {
		t.Errorf("empty auth file: %v", err)
	}
}

// TestASCIIAuthReload checks ReloadAuthFile (memcached rereads -Y on
// SIGHUP): new users get in, removed ones no longer, and a broken file
// keeps the users in use.
func TestASCIIAuthReload(t *testing.T) {
	path := writeAuthFile(t, "old:pw\n")
	s := testutil.StartGocachedServer(t, func(c *server.Config) { c.AuthFile = path })
	addr := s.Addrs()[0].String()
	try := func(user string) string {
		cred := user + " pw"
		return string(converse(addr, []string{fmt.Sprintf("set a 0 0 %d\r\n%s\r\n", len(cred), cred)}, 100*time.Millisecond))
	}
	if got := try("old"); got != "STORED\r\n" {
		t.Fatalf("old before reload: %q", got)
	}
	if err := os.WriteFile(path, []byte("new:pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadAuthFile(); err != nil {
		t.Fatal(err)
	}
	if got := try("new"); got != "STORED\r\n" {
		t.Errorf("new after reload: %q", got)
	}
	if got := try("old"); got != "CLIENT_ERROR authentication failure\r\n" {
		t.Errorf("old after reload: %q", got)
	}
	if err := os.WriteFile(path, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadAuthFile(); err == nil {
		t.Error("reload of a malformed file succeeded")
	}
	if got := try("new"); got != "STORED\r\n" {
		t.Errorf("new after a failed reload: %q", got)
	}
}
