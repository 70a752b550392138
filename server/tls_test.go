package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/gocached/gocached/internal/testutil"
	"github.com/gocached/gocached/server"
)

// tlsConfig returns the -Z configuration using pki's server certificate,
// with the extra -o options given.
func tlsConfig(pki *testutil.TestPKI, extra map[string]string) func(*server.Config) {
	return func(c *server.Config) {
		c.TLS = true
		c.Listen = []string{"127.0.0.1:0", "notls:127.0.0.1:0"}
		c.Extended["ssl_chain_cert"] = pki.CertFile
		c.Extended["ssl_key"] = pki.KeyFile
		for k, v := range extra {
			c.Extended[k] = v
		}
	}
}

// textRoundTrip writes req on c and reads until the reply ends with end.
func textRoundTrip(t testing.TB, c net.Conn, req, end string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("write %q: %v", req, err)
	}
	r := bufio.NewReader(c)
	var out strings.Builder
	for !strings.HasSuffix(out.String(), end) {
		line, err := r.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			t.Fatalf("reply to %q: %q, %v", req, out.String(), err)
		}
	}
	return out.String()
}

func TestTLSAndPlainListeners(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	s := testutil.StartGocachedServer(t, tlsConfig(pki, nil))
	addrs := s.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("listeners %v, want a TLS and a plain one", addrs)
	}
	tlsAddr, plainAddr := addrs[0].String(), addrs[1].String()

	tc, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer tc.Close()
	if got := textRoundTrip(t, tc, "set k 5 0 5\r\nhello\r\n", "\r\n"); got != "STORED\r\n" {
		t.Fatalf("set over TLS: %q", got)
	}
	pc, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := textRoundTrip(t, pc, "get k\r\n", "END\r\n"); got != "VALUE k 5 5\r\nhello\r\nEND\r\n" {
		t.Fatalf("get over the notls listener: %q", got)
	}
	// A big value crosses several TLS records.
	big := strings.Repeat("v", 300<<10)
	if got := textRoundTrip(t, tc, "set big 0 0 307200\r\n"+big+"\r\nget big\r\n", "END\r\n"); got != "STORED\r\nVALUE big 0 307200\r\n"+big+"\r\nEND\r\n" {
		t.Fatalf("big value over TLS: %d bytes", len(got))
	}

	// A plain client on the TLS port gets no memcached reply.
	raw, err := net.Dial("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(raw, "version\r\n")
	b, _ := io.ReadAll(raw)
	if strings.Contains(string(b), "VERSION") {
		t.Errorf("plain text answered on the TLS listener: %q", b)
	}
}

// TestTLSGomemcache uses gomemcache's TLS dial, as deployed clients do.
func TestTLSGomemcache(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	s := testutil.StartGocachedServer(t, tlsConfig(pki, nil))
	mc := memcache.New(s.Addrs()[0].String())
	mc.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := tls.Dialer{Config: &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}}
		return d.DialContext(ctx, network, addr)
	}
	if err := mc.Set(&memcache.Item{Key: "g", Value: []byte("over tls"), Flags: 7}); err != nil {
		t.Fatal(err)
	}
	it, err := mc.Get("g")
	if err != nil || string(it.Value) != "over tls" || it.Flags != 7 {
		t.Fatalf("Get: %+v, %v", it, err)
	}
}

func TestTLSClientCertificates(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	s := testutil.StartGocachedServer(t, tlsConfig(pki, map[string]string{
		"ssl_verify_mode": "2", "ssl_ca_cert": pki.CAFile, "ssl_min_version": "3",
	}))
	addr := s.Addrs()[0].String()
	base := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"}

	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{pki.ClientCert}
	c, err := tls.Dial("tcp", addr, withCert)
	if err != nil {
		t.Fatalf("dial with a client certificate: %v", err)
	}
	defer c.Close()
	if got := textRoundTrip(t, c, "version\r\n", "\r\n"); got != "VERSION "+server.Version+"\r\n" {
		t.Fatalf("version with a client certificate: %q", got)
	}
	if c.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", c.ConnectionState().Version)
	}

	// Without a certificate the handshake fails; with TLS 1.3 the client
	// may learn it only at its first read.
	nc, err := tls.Dial("tcp", addr, base)
	if err == nil {
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(nc, "version\r\n")
		_, err = bufio.NewReader(nc).ReadString('\n')
	}
	if err == nil {
		t.Fatal("a client without a certificate was served with ssl_verify_mode=2")
	}

	// A certificate from another CA is refused too.
	other := testutil.NewTestPKI(t)
	foreign := base.Clone()
	foreign.Certificates = []tls.Certificate{other.ClientCert}
	fc, err := tls.Dial("tcp", addr, foreign)
	if err == nil {
		defer fc.Close()
		_ = fc.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(fc, "version\r\n")
		_, err = bufio.NewReader(fc).ReadString('\n')
	}
	if err == nil {
		t.Fatal("a client certificate of an unknown CA was accepted")
	}

	// TLS 1.2 is below ssl_min_version=3.
	old := withCert.Clone()
	old.MaxVersion = tls.VersionTLS12
	if oc, err := tls.Dial("tcp", addr, old); err == nil {
		oc.Close()
		t.Error("TLS 1.2 accepted with ssl_min_version=3")
	}
}

// TestTLSRefreshCerts covers refresh_certs and ReloadCerts (SIGHUP): a new
// certificate serves later handshakes; a broken file keeps the old one.
func TestTLSRefreshCerts(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	s := testutil.StartGocachedServer(t, tlsConfig(pki, nil))
	tlsAddr, plainAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
	peerCN := func() string {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("TLS dial: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	pc, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := textRoundTrip(t, pc, "refresh_certs\r\n", "\r\n"); got != "OK\r\n" {
		t.Fatalf("refresh_certs: %q", got)
	}
	if got := textRoundTrip(t, pc, "refresh_certs noreply\r\nversion\r\n", "\r\n"); !strings.HasPrefix(got, "VERSION") {
		t.Fatalf("refresh_certs noreply: %q", got)
	}
	if cn := peerCN(); cn != "server" {
		t.Fatalf("CN %q", cn)
	}

	certPEM, keyPEM := pki.Issue(t, "renewed", x509.ExtKeyUsageServerAuth)
	pki.Write(t, "server.pem", certPEM)
	pki.Write(t, "server.key", keyPEM)
	if got := textRoundTrip(t, pc, "refresh_certs\r\n", "\r\n"); got != "OK\r\n" {
		t.Fatalf("refresh_certs after renewal: %q", got)
	}
	if cn := peerCN(); cn != "renewed" {
		t.Fatalf("CN after refresh_certs %q, want renewed", cn)
	}

	if err := os.Remove(pki.CertFile); err != nil {
		t.Fatal(err)
	}
	want := "Error loading the certificate chain: " + pki.CertFile + " : "
	if got := textRoundTrip(t, pc, "refresh_certs noreply\r\n", "\r\n"); !strings.HasPrefix(got, want) {
		t.Fatalf("refresh_certs with the chain gone: %q, want prefix %q", got, want)
	}
	if err := s.ReloadCerts(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("ReloadCerts with the chain gone: %v", err)
	}
	if cn := peerCN(); cn != "renewed" {
		t.Fatalf("CN after a failed refresh %q, want renewed", cn)
	}
	other, _ := pki.Issue(t, "mismatch", x509.ExtKeyUsageServerAuth)
	pki.Write(t, "server.pem", other)
	if err := s.ReloadCerts(); err == nil || !strings.HasPrefix(err.Error(), "Error loading the key: "+pki.KeyFile+" : ") {
		t.Fatalf("ReloadCerts with a key of another certificate: %v", err)
	}
}

func TestTLSNotEnabled(t *testing.T) {
	ref := testutil.StartMemcached(t)
	got := testutil.StartGocached(t, nil)
	for _, req := range []string{"refresh_certs\r\n", "refresh_certs noreply\r\n"} {
		for i, addr := range []string{ref, got} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if out := textRoundTrip(t, c, req, "\r\n"); out != "Error TLS not enabled\r\n" {
				t.Errorf("%s: %q answers %q", []string{"memcached", "gocached"}[i], req, out)
			}
			c.Close()
		}
	}
}

var sslSettingRE = regexp.MustCompile(`STAT ssl_\S+ \S+\r\n`)

// TestTLSMatchesMemcached starts memcached -Z with the same files and
// options and compares the ssl_* settings, the refresh_certs replies and
// stats' TLS counters, all over TLS.
func TestTLSMatchesMemcached(t *testing.T) {
	if out, _ := exec.Command(testutil.RequireTool(t, "memcached"), "-h").CombinedOutput(); !strings.Contains(string(out), "enable-ssl") {
		if os.Getenv("CI") != "" {
			t.Fatal("the memcached in PATH is built without TLS (-Z); CI needs Debian's")
		}
		t.Skip("skipping: the memcached in PATH is built without TLS (-Z)")
	}
	pki := testutil.NewTestPKI(t)
	for _, opts := range []string{
		"",
		",ssl_verify_mode=1,ssl_ca_cert=" + pki.CAFile + ",ssl_min_version=3,ssl_session_cache",
		",ssl_verify_mode=2,ssl_ca_cert=" + pki.CAFile + ",ssl_min_version=0",
		",ssl_verify_mode=3,ssl_ca_cert=" + pki.CAFile + ",ssl_min_version=1",
	} {
		o := "ssl_chain_cert=" + pki.CertFile + ",ssl_key=" + pki.KeyFile + opts
		ref := testutil.StartMemcached(t, "-Z", "-o", o)
		got := testutil.StartGocachedServer(t, func(c *server.Config) {
			c.TLS = true
			for _, kv := range strings.Split(o, ",") {
				k, v, _ := strings.Cut(kv, "=")
				c.Extended[k] = v
			}
		}).Addrs()[0].String()
		cfg := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pki.ClientCert}}
		var replies [2]string
		for i, addr := range []string{ref, got} {
			c, err := tls.Dial("tcp", addr, cfg)
			if err != nil {
				t.Fatalf("-o %s: TLS dial %d: %v", o, i, err)
			}
			out := textRoundTrip(t, c, "stats settings\r\n", "END\r\n")
			replies[i] = strings.Join(sslSettingRE.FindAllString(out, -1), "")
			replies[i] += textRoundTrip(t, c, "refresh_certs\r\nrefresh_certs noreply\r\nversion\r\n", "VERSION "+server.Version+"\r\n")
			// The TLS counters, where stats prints them; the certificates
			// were just loaded. (ssl_handshake_errors is not compared:
			// memcached counts the start-up probe's connection when it
			// closes before memcached accepts it.)
			if m := tlsStatsRE.FindStringSubmatch(textRoundTrip(t, c, "stats\r\n", "END\r\n")); m == nil {
				replies[i] += " no TLS stats after log_watchers"
			} else {
				since, _ := strconv.Atoi(m[3])
				replies[i] += fmt.Sprintf(" ssl_new_sessions shown: %v, time_since_server_cert_refresh <= 2: %v", m[1] != "", since <= 2)
			}
			c.Close()
		}
		if replies[0] != replies[1] {
			t.Errorf("-o %s:\nmemcached: %q\ngocached:  %q", o, replies[0], replies[1])
		}
	}
}

// testClock is a settable clock for the server (Unix nanoseconds).
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() int64 { return c.ns.Load() }

// tlsStatsRE matches the TLS counters of stats with their neighbours, where
// memcached 1.6.18 prints them (with -Z only).
var tlsStatsRE = regexp.MustCompile(`STAT log_watchers \d+\r\n(STAT ssl_new_sessions \d+\r\n)?STAT ssl_handshake_errors (\d+)\r\nSTAT time_since_server_cert_refresh (\d+)\r\nSTAT unexpected_napi_ids `)

// tlsStats returns stats' ssl_handshake_errors and
// time_since_server_cert_refresh, asked on c.
func tlsStats(t *testing.T, c net.Conn) (errs, since string) {
	t.Helper()
	out := textRoundTrip(t, c, "stats\r\n", "END\r\n")
	m := tlsStatsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no TLS stats after log_watchers in %q", out)
	}
	return m[2], m[3]
}

// TestTLSStats checks ssl_handshake_errors, counting failed handshakes of
// plaintext, certificate-less and untrusted clients (not a probe that closes
// at once, nor a good client), and time_since_server_cert_refresh, reset by
// refresh_certs and ReloadCerts (SIGHUP).
func TestTLSStats(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	clk := &testClock{}
	clk.ns.Store(1_800_000_000 * int64(time.Second))
	s := testutil.StartGocachedServer(t, func(c *server.Config) {
		tlsConfig(pki, map[string]string{"ssl_verify_mode": "2", "ssl_ca_cert": pki.CAFile})(c)
		c.Store.Clock = clk
	})
	tlsAddr, plainAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
	pc, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if errs, since := tlsStats(t, pc); errs != "0" || since != "0" {
		t.Fatalf("at start: ssl_handshake_errors %s, time_since_server_cert_refresh %s", errs, since)
	}

	other := testutil.NewTestPKI(t) // a CA the server does not trust
	good := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pki.ClientCert}}
	for _, tc := range []struct {
		name   string
		client func() net.Conn // dials tlsAddr and does what the case is about
		failed bool            // the handshake fails and counts
	}{
		{"plaintext", func() net.Conn {
			c, err := net.Dial("tcp", tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(c, "stats\r\n")
			return c
		}, true},
		{"no client certificate", func() net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, true},
		{"untrusted client certificate", func() net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{other.ClientCert}})
			if err != nil {
				return nil // TLS 1.2 may see the alert already
			}
			return c
		}, true},
		{"closed at once", func() net.Conn {
			c, err := net.Dial("tcp", tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			return c
		}, false},
		{"good client", func() net.Conn {
			c, err := tls.Dial("tcp", tlsAddr, good)
			if err != nil {
				t.Fatal(err)
			}
			if got := textRoundTrip(t, c, "version\r\n", "\r\n"); got != "VERSION "+server.Version+"\r\n" {
				t.Fatalf("good client: %q", got)
			}
			_ = c.CloseWrite()
			return c
		}, false},
	} {
		before, _ := tlsStats(t, pc)
		if c := tc.client(); c != nil {
			// The server closes the connection once done with it.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
		n, _ := strconv.Atoi(before)
		if tc.failed {
			n++
		}
		// The server counts before it closes, but a good client's CloseWrite
		// ends the connection before the server's goroutine is done: poll.
		var after string
		for i := 0; i < 50; i++ {
			if after, _ = tlsStats(t, pc); after == strconv.Itoa(n) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if after != strconv.Itoa(n) {
			t.Errorf("%s: ssl_handshake_errors %s, then %s; want %d", tc.name, before, after, n)
		}
	}

	clk.ns.Add(100 * int64(time.Second))
	if _, since := tlsStats(t, pc); since != "100" {
		t.Errorf("time_since_server_cert_refresh %s 100 s after start", since)
	}
	if got := textRoundTrip(t, pc, "refresh_certs\r\n", "\r\n"); got != "OK\r\n" {
		t.Fatalf("refresh_certs: %q", got)
	}
	clk.ns.Add(5 * int64(time.Second))
	if _, since := tlsStats(t, pc); since != "5" {
		t.Errorf("time_since_server_cert_refresh %s 5 s after refresh_certs", since)
	}
	clk.ns.Add(5 * int64(time.Second))
	if err := s.ReloadCerts(); err != nil {
		t.Fatal(err)
	}
	if _, since := tlsStats(t, pc); since != "0" {
		t.Errorf("time_since_server_cert_refresh %s after ReloadCerts", since)
	}
	// A failed reload keeps the certificates, and their time.
	clk.ns.Add(7 * int64(time.Second))
	if err := os.Remove(pki.KeyFile); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadCerts(); err == nil {
		t.Fatal("ReloadCerts without the key succeeded")
	}
	if _, since := tlsStats(t, pc); since != "7" {
		t.Errorf("time_since_server_cert_refresh %s after a failed reload", since)
	}
}

// TestTLSStatsAbsentWithoutTLS: without -Z, stats has no TLS counters, as
// memcached's.
func TestTLSStatsAbsentWithoutTLS(t *testing.T) {
	c, err := net.Dial("tcp", testutil.StartGocached(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := textRoundTrip(t, c, "stats\r\n", "END\r\n")
	if strings.Contains(out, "ssl_") || strings.Contains(out, "cert_refresh") {
		t.Errorf("TLS stats without -Z: %q", out)
	}
	if !strings.Contains(out, "STAT log_watchers 0\r\nSTAT unexpected_napi_ids ") {
		t.Errorf("stats around log_watchers changed: %q", out)
	}
}

// TestTLSNewSessions checks ssl_new_sessions with ssl_session_cache: each
// TLS 1.3 handshake issues a session, a resumed one too (as memcached
// counts them), and the client resumes with it; without the option the
// stat is absent.
func TestTLSNewSessions(t *testing.T) {
	pki := testutil.NewTestPKI(t)
	for _, cache := range []bool{false, true} {
		extra := map[string]string{}
		if cache {
			extra["ssl_session_cache"] = ""
		}
		s := testutil.StartGocachedServer(t, tlsConfig(pki, extra))
		tlsAddr, plainAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
		cfg := &tls.Config{RootCAs: pki.Pool, ServerName: "127.0.0.1", ClientSessionCache: tls.NewLRUClientSessionCache(4)}
		var resumed []bool
		for i := 0; i < 3; i++ {
			c, err := tls.Dial("tcp", tlsAddr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Reading a reply reads the ticket sent after the handshake.
			textRoundTrip(t, c, "version\r\n", "\r\n")
			resumed = append(resumed, c.ConnectionState().DidResume)
			c.Close()
		}
		pc, err := net.Dial("tcp", plainAddr)
		if err != nil {
			t.Fatal(err)
		}
		out := textRoundTrip(t, pc, "stats\r\n", "END\r\n")
		pc.Close()
		m := tlsStatsRE.FindStringSubmatch(out)
		switch {
		case m == nil:
			t.Fatalf("cache %v: no TLS stats in %q", cache, out)
		case !cache && (m[1] != "" || resumed[1] || resumed[2]):
			t.Errorf("no session cache: %q, resumed %v", m[1], resumed)
		case cache && (m[1] != "STAT ssl_new_sessions 3\r\n" || resumed[0] || !resumed[1] || !resumed[2]):
			t.Errorf("session cache: %q, resumed %v", m[1], resumed)
		}
	}
}
