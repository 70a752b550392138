package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gocached/gocached/protocol"
)

// TLS (-Z) with memcached's -o options:
//
//	ssl_chain_cert     server certificate chain, PEM
//	ssl_key            its private key, PEM (default: the chain file)
//	ssl_ca_cert        CAs accepted for client certificates, PEM
//	ssl_verify_mode    0 none, 1 request, 2 require, 3 require once
//	ssl_min_version    0 TLS 1.0, 1 TLS 1.1, 2 TLS 1.2 (default), 3 TLS 1.3
//	ssl_session_cache  allow session resumption (session tickets in Go)
//
// ssl_ciphers, ssl_keyformat (PEM only), ssl_wbuf_size and ssl_kernel_tls
// are accepted and shown by "stats settings" but have no effect.
// Listeners given as "notls:host:port" stay plain; the unix socket is
// never TLS, as in memcached.

// tlsState is the server's current TLS configuration, swapped whole by
// ReloadCerts; handshakes in progress keep the one they started with.
type tlsState struct {
	mu  sync.Mutex // serialises reloads
	cur atomic.Pointer[tls.Config]

	// loaded is when the certificates in use were read (Unix seconds):
	// stats' time_since_server_cert_refresh.
	loaded atomic.Int64
	// handshakeErrors counts the TLS handshakes that failed: stats'
	// ssl_handshake_errors.
	handshakeErrors atomic.Uint64
	// newSessions counts the sessions issued to clients for resumption
	// (with ssl_session_cache): stats' ssl_new_sessions.
	newSessions atomic.Uint64
	// tickets holds only the session ticket keys (crypto/tls's own,
	// rotated), shared by every listener and kept across reloads.
	tickets tls.Config
}

// wrapSession is the configurations' WrapSession: it counts the session
// and encrypts it into a ticket as crypto/tls would. (memcached counts
// OpenSSL's new-session callbacks: TLS 1.3 sends two tickets after a full
// handshake, one after a resumption; crypto/tls sends one after each.)
func (t *tlsState) wrapSession(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
	t.newSessions.Add(1)
	return t.tickets.EncryptTicket(cs, ss)
}

// unwrapSession is the configurations' UnwrapSession, decrypting what
// wrapSession encrypted; a ticket it cannot decrypt is ignored (a full
// handshake follows).
func (t *tlsState) unwrapSession(ticket []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
	return t.tickets.DecryptTicket(ticket, cs)
}

// Names of memcached's -o TLS options.
const (
	optSSLChainCert    = "ssl_chain_cert"
	optSSLKey          = "ssl_key"
	optSSLCACert       = "ssl_ca_cert"
	optSSLVerifyMode   = "ssl_verify_mode"
	optSSLMinVersion   = "ssl_min_version"
	optSSLSessionCache = "ssl_session_cache"
)

// initTLS loads the certificates at New when -Z is given.
func (s *Server) initTLS() error {
	if !s.cfg.TLS {
		return nil
	}
	if _, err := sslVerifyMode(s.cfg.Extended); err != nil {
		return err
	}
	if _, err := sslMinVersion(s.cfg.Extended); err != nil {
		return err
	}
	return s.ReloadCerts()
}

// ReloadCerts rereads the certificate chain, the key and the CA file named
// by the -o ssl_* options and uses them for every later handshake, as
// memcached's refresh_certs command (gocached also calls it on SIGHUP).
// On error the certificates in use stay. Without -Z it fails with
// memcached's "Error TLS not enabled".
func (s *Server) ReloadCerts() error {
	if !s.cfg.TLS {
		return errors.New("Error TLS not enabled")
	}
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	cfg, err := buildTLSConfig(s.cfg.Extended)
	if err != nil {
		return err
	}
	if !cfg.SessionTicketsDisabled {
		cfg.WrapSession = s.tls.wrapSession
		cfg.UnwrapSession = s.tls.unwrapSession
	}
	s.tls.cur.Store(cfg)
	s.tls.loaded.Store(s.now())
	return nil
}

// buildTLSConfig reads the files and builds a server configuration, with
// memcached's error messages (the library's reason follows the path).
func buildTLSConfig(ext map[string]string) (*tls.Config, error) {
	chainPath, keyPath := ext[optSSLChainCert], ext[optSSLKey]
	if keyPath == "" {
		keyPath = chainPath
	}
	chain, err := readPEMFile(chainPath, "CERTIFICATE")
	if err != nil {
		return nil, fmt.Errorf("Error loading the certificate chain: %s : %v", orNull(chainPath, "(null)"), err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("Error loading the key: %s : %v", orNull(keyPath, "(null)"), unwrapPath(err))
	}
	cert, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("Error loading the key: %s : %v", keyPath, err)
	}
	mode, err := sslVerifyMode(ext)
	if err != nil {
		return nil, err
	}
	minVer, err := sslMinVersion(ext)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   minVer,
		ClientAuth:   mode,
	}
	if _, ok := ext[optSSLSessionCache]; !ok {
		cfg.SessionTicketsDisabled = true
	}
	if caPath := ext[optSSLCACert]; caPath != "" {
		caPEM, err := readPEMFile(caPath, "CERTIFICATE")
		pool := x509.NewCertPool()
		if err == nil && !pool.AppendCertsFromPEM(caPEM) {
			err = errors.New("no certificate in the file")
		}
		if err != nil {
			return nil, fmt.Errorf("Error loading the CA certificate: %s : %v", caPath, err)
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readPEMFile reads a file that must hold at least one PEM block of type.
func readPEMFile(path, typ string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no file given")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if !bytes.Contains(b, []byte("-----BEGIN "+typ)) {
		return nil, fmt.Errorf("no PEM %s in the file", strings.ToLower(typ))
	}
	return b, nil
}

// sslVerifyMode maps memcached's ssl_verify_mode to crypto/tls: "request"
// verifies a certificate the client offers, "require" and "once" (require,
// not asking again on renegotiation, which crypto/tls never offers) refuse
// a client without one.
func sslVerifyMode(ext map[string]string) (tls.ClientAuthType, error) {
	switch ext[optSSLVerifyMode] {
	case "", "0":
		return tls.NoClientCert, nil
	case "1":
		return tls.VerifyClientCertIfGiven, nil
	case "2", "3":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, errors.New("Invalid ssl_verify_mode. Use help to see valid options.")
}

// sslMinVersion maps memcached's ssl_min_version (0..3) to crypto/tls.
func sslMinVersion(ext map[string]string) (uint16, error) {
	switch ext[optSSLMinVersion] {
	case "0":
		return tls.VersionTLS10, nil
	case "1":
		return tls.VersionTLS11, nil
	case "", "2":
		return tls.VersionTLS12, nil
	case "3":
		return tls.VersionTLS13, nil
	}
	return 0, errors.New("Invalid ssl_min_version. Use help to see valid options.")
}

// sslVerifyModeSetting is "stats settings"' ssl_verify_mode: memcached
// shows OpenSSL's verify flags (PEER 1, FAIL_IF_NO_PEER_CERT 2,
// CLIENT_ONCE 4), not the option's value.
func sslVerifyModeSetting(ext map[string]string) string {
	switch ext[optSSLVerifyMode] {
	case "1":
		return "1"
	case "2":
		return "3"
	case "3":
		return "7"
	}
	return "0"
}

// sslMinVersionSetting is "stats settings"' ssl_min_version.
func sslMinVersionSetting(ext map[string]string) string {
	switch ext[optSSLMinVersion] {
	case "0":
		return "tlsv1.0"
	case "1":
		return "tlsv1.1"
	case "3":
		return "tlsv1.3"
	}
	return "tlsv1.2"
}

// sslSessionCacheSetting is "stats settings"' ssl_session_cache: the
// option is a flag, given without a value.
func sslSessionCacheSetting(ext map[string]string) string {
	_, ok := ext[optSSLSessionCache]
	return yesNo(ok)
}

// wrapTLS returns l serving TLS when -Z is on and the -l entry it was
// opened for (spec) has no "notls:" prefix. The handshake happens on the
// connection's first read, in its own goroutine, never in the accept loop.
func (s *Server) wrapTLS(l net.Listener, spec string) net.Listener {
	if !s.cfg.TLS || strings.HasPrefix(spec, "notls:") {
		return l
	}
	return tls.NewListener(l, &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.tls.cur.Load(), nil
		},
	})
}

// tlsHandshake runs a TLS connection's handshake before serving it, so
// that a failed one is counted (ssl_handshake_errors); false closes the
// connection. It runs under the read deadline serve set: an idle timeout
// or the server's shutdown ends it without counting an error, and so does a
// client that closes before sending a byte (a port probe).
//
// memcached counts only the failures its first SSL_accept, right after
// accept(2), sees: a ClientHello (or plaintext, or an EOF) already there.
// Later failures (the rest of the handshake, a client certificate refused
// under ssl_verify_mode) go uncounted there; gocached counts them all.
func (c *conn) tlsHandshake(tc *tls.Conn) bool {
	err := tc.Handshake()
	if err == nil {
		return true
	}
	var ne net.Error
	if !errors.Is(err, io.EOF) && !(errors.As(err, &ne) && ne.Timeout()) && !c.shutdown.Load() {
		c.srv.tls.handshakeErrors.Add(1)
	}
	return false
}

// execRefreshCerts is the refresh_certs command: OK (unless noreply), or
// the error line, which memcached sends even with noreply.
func (c *conn) execRefreshCerts() {
	if err := c.srv.ReloadCerts(); err != nil {
		c.wbuf = append(c.wbuf, err.Error()...)
		c.wbuf = append(c.wbuf, "\r\n"...)
		return
	}
	args := c.work.req.Args
	if len(args) > 0 && string(args[len(args)-1]) == "noreply" {
		return
	}
	c.wbuf = append(c.wbuf, protocol.ReplyOK...)
}
